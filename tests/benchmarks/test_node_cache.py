"""`data.node_cache`: built splits shared by the processes of one machine, keyed by the data
files and the building code, never for GPQA, never loaded from a file that is not ours."""

from __future__ import annotations

import os
import pickle

import pytest

from w4s_ray.benchmarks import get_benchmark, node_cache
from w4s_ray.benchmarks.base import _build_cached
from w4s_ray.benchmarks.gpqa import GPQA


class Fake:
    node_cache = True
    files = ("fake/rows.txt",)


class Secret(Fake):
    node_cache = False


@pytest.fixture
def cache(tmp_path):
    node_cache.configure(True, tmp_path / "cache")
    yield tmp_path / "cache"
    node_cache.configure(False)


def _builder(calls, value="built"):
    def build():
        calls.append(1)
        return {"valid": (value,)}
    return build


def test_built_once_per_machine_then_rebuilt_when_a_file_changes(cache, tmp_path):
    (tmp_path / "fake").mkdir()
    rows = tmp_path / "fake" / "rows.txt"
    rows.write_text("a")
    calls: list[int] = []
    first = node_cache.load_or_build(Fake, str(tmp_path), list(Fake.files), _builder(calls))
    again = node_cache.load_or_build(Fake, str(tmp_path), list(Fake.files), _builder(calls))
    assert first == again == {"valid": ("built",)} and len(calls) == 1
    assert len(list(cache.glob("Fake-*.pkl"))) == 1
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    rows.write_text("ab")  # another size: another version of the data
    out = node_cache.load_or_build(Fake, str(tmp_path), list(Fake.files), _builder(calls, "v2"))
    assert out == {"valid": ("v2",)} and len(calls) == 2


def test_a_class_that_forbids_it_is_never_written(cache, tmp_path):
    calls: list[int] = []
    for _ in range(2):
        node_cache.load_or_build(Secret, str(tmp_path), list(Secret.files), _builder(calls))
    assert len(calls) == 2 and not list(cache.glob("*.pkl"))
    assert GPQA.node_cache is False


def test_an_entry_others_could_write_is_ignored(cache, tmp_path):
    calls: list[int] = []
    node_cache.load_or_build(Fake, str(tmp_path), list(Fake.files), _builder(calls))
    (entry,) = cache.glob("Fake-*.pkl")
    entry.write_bytes(pickle.dumps({"valid": ("planted",)}))
    os.chmod(entry, 0o666)
    out = node_cache.load_or_build(Fake, str(tmp_path), list(Fake.files), _builder(calls))
    assert out == {"valid": ("built",)} and len(calls) == 2


def test_off_builds_in_the_process_and_writes_nothing(tmp_path):
    node_cache.configure(False)
    calls: list[int] = []
    node_cache.load_or_build(Fake, str(tmp_path), list(Fake.files), _builder(calls))
    assert calls == [1] and not node_cache.enabled()


def test_a_real_benchmark_loads_the_same_items_from_the_cache(cache, data_dir, monkeypatch):
    from w4s_ray.benchmarks.drop import DROP

    _build_cached.cache_clear()
    fresh = get_benchmark("drop", data_dir).load("test")
    _build_cached.cache_clear()  # another process, as far as the in-memory cache goes

    def no_build(self, data_dir):
        raise AssertionError("built again")

    monkeypatch.setattr(DROP, "build", no_build)
    cached = get_benchmark("drop", data_dir).load("test")  # from the file the first call wrote
    assert list(cache.glob("DROP-*.pkl")) and cached == fresh
    _build_cached.cache_clear()


def test_processes_building_at_once_build_once(cache, tmp_path):
    """Two builders racing for the same entry: the second waits for the first's file."""
    import threading
    import time

    calls: list[int] = []

    def slow():
        calls.append(1)
        time.sleep(0.3)
        return {"valid": ("built",)}

    outs: list[dict] = []
    threads = [threading.Thread(target=lambda: outs.append(node_cache.load_or_build(
        Fake, str(tmp_path), list(Fake.files), slow))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outs == [{"valid": ("built",)}] * 3 and len(calls) == 1
