"""The sqlite completion cache: keys, persistence, concurrency."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import threading

import pytest

from w4s_ray.errors import ExecutorError
from w4s_ray.executor.cache import CacheEntry, CompletionCache, sample_key

MSG = [{"role": "user", "content": "What is 2+2?"}]


def key(**kw):
    args = dict(endpoint="e", messages=MSG, temperature=0.7, max_tokens=100,
                response_format=None, seed=0, occurrence=0, index=0)
    args.update(kw)
    return sample_key(**args)


def test_key_depends_on_everything_that_changes_the_reply():
    base = key()
    variants = [key(endpoint="e2"), key(messages=[{"role": "user", "content": "What is 2+3?"}]),
                key(temperature=0.0), key(max_tokens=50),
                key(response_format={"type": "json_object"}), key(seed=1), key(occurrence=1),
                key(index=1)]
    assert len({base, *variants}) == len(variants) + 1
    assert key() == base  # deterministic


def test_roundtrip_and_persistence(tmp_path):
    path = tmp_path / "c.sqlite"
    c = CompletionCache(path)
    c.put_many("m", {"k1": CacheEntry("four", 10, 2, 0.001)})
    c.close()
    again = CompletionCache(path)
    assert again.get_many(["k1", "k2"]) == {"k1": CacheEntry("four", 10.0, 2.0, 0.001)}
    assert len(again) == 1


def test_first_writer_wins(tmp_path):
    c = CompletionCache(tmp_path / "c.sqlite")
    c.put_many("m", {"k": CacheEntry("first", 1, 1, 0.1)})
    c.put_many("m", {"k": CacheEntry("second", 1, 1, 0.1)})
    assert c.get_many(["k"])["k"].text == "first"


def test_threads_share_one_cache(tmp_path):
    c = CompletionCache(tmp_path / "c.sqlite")

    def work(t: int) -> None:
        for i in range(50):
            c.put_many("m", {f"{t}-{i}": CacheEntry(str(i), 1, 1, 0.0)})
            assert c.get_many([f"{t}-{i}"])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(c) == 400


def _writer(path: str, tag: int) -> None:
    c = CompletionCache(path)
    for i in range(100):
        c.put_many("m", {f"{tag}-{i}": CacheEntry("x", 1, 1, 0.0)})


def test_processes_share_one_cache(tmp_path):
    path = str(tmp_path / "c.sqlite")
    CompletionCache(path)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, t)) for t in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(CompletionCache(path)) == 300
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def _open_at_once(path: str, barrier) -> None:
    barrier.wait(30)
    CompletionCache(path)


def test_processes_opening_a_new_cache_at_once_all_start(tmp_path):
    """Every evaluator actor of a node opens the cache as it starts. Two first opens racing to
    switch a new file to WAL used to get "database is locked" without waiting, and the actor
    died (CI saw a sweep's benchmark fail this way)."""
    ctx = mp.get_context("fork")
    for trial in range(12):
        path = str(tmp_path / f"c{trial}.sqlite")
        barrier = ctx.Barrier(8)
        procs = [ctx.Process(target=_open_at_once, args=(path, barrier)) for _ in range(8)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * 8, f"trial {trial}"


class _BusyAtFirst(sqlite3.Connection):
    """A connection whose WAL switch answers as a losing racer's does, the first `busy` times."""

    busy = 0

    def execute(self, sql, *args):
        if sql == "PRAGMA journal_mode=WAL" and _BusyAtFirst.busy > 0:
            _BusyAtFirst.busy -= 1
            raise sqlite3.OperationalError("database is locked")
        return super().execute(sql, *args)


def _connect_busy(monkeypatch, times: int) -> None:
    import w4s_ray.executor.cache as cache_mod

    real = sqlite3.connect
    _BusyAtFirst.busy = times
    monkeypatch.setattr(cache_mod.sqlite3, "connect",
                        lambda *a, **kw: real(*a, factory=_BusyAtFirst, **kw))


def test_a_first_open_that_loses_the_wal_race_retries(tmp_path, monkeypatch):
    _connect_busy(monkeypatch, times=3)
    c = CompletionCache(tmp_path / "c.sqlite")
    monkeypatch.undo()
    assert _BusyAtFirst.busy == 0
    c.put_many("m", {"k": CacheEntry("x", 1, 1, 0.0)})
    assert len(c) == 1
    assert sqlite3.connect(c.path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_cache_locked_past_the_timeout_is_a_clear_error(tmp_path, monkeypatch):
    import w4s_ray.executor.cache as cache_mod

    monkeypatch.setattr(cache_mod, "_OPEN_TIMEOUT_S", 0.2)
    _connect_busy(monkeypatch, times=10**6)
    with pytest.raises(ExecutorError, match="database is locked"):
        CompletionCache(tmp_path / "c.sqlite")


def test_corrupt_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "c.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ExecutorError, match="not a usable sqlite file"):
        CompletionCache(bad)


def test_a_cache_file_of_an_older_version_is_never_read(tmp_path):
    """Version-1 files keyed answers on the model name alone (any endpoint). Their rows stay in
    the old table, untouched; the current version neither reads nor overwrites them."""
    import hashlib
    import json

    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE completions (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
                "prompt_tokens REAL NOT NULL, completion_tokens REAL NOT NULL, "
                "cost_usd REAL NOT NULL, model TEXT NOT NULL, created REAL NOT NULL)")
    v1_blob = json.dumps(["gpt-4o-mini", MSG, 0.7, 100, None, 0, 0, 0], sort_keys=True,
                         ensure_ascii=False, separators=(",", ":"), default=str)
    v1_key = hashlib.sha256(v1_blob.encode()).hexdigest()
    old.execute("INSERT INTO completions VALUES (?, 'simulated answer', 1, 1, 0.1, "
                "'gpt-4o-mini', 0)", (v1_key,))
    old.commit()
    old.close()
    c = CompletionCache(path)
    assert len(c) == 0 and c.get_many([v1_key]) == {}
    assert c.get_many([key(endpoint="gpt-4o-mini")]) == {}
    c.put_many("gpt-4o-mini", {key(): CacheEntry("new", 1, 1, 0.0)}, "e")
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM completions").fetchone()[0] == 1
