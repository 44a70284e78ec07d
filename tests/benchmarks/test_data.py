"""Manifest, verify, fetch (offline and through a local HTTP server), and bad data files."""

from __future__ import annotations

import functools
import gzip
import http.server
import threading

import pytest

from w4s_ray.benchmarks import data as D
from w4s_ray.benchmarks import get_benchmark
from w4s_ray.benchmarks.base import _build_cached
from w4s_ray.errors import DataError


def test_manifest_matches_the_shared_sha256sums(data_dir):
    sums = dict(reversed(line.split(None, 1)) for line in
                (data_dir / "SHA256SUMS").read_text().splitlines() if line.strip())
    sums = {p.strip(): h for p, h in sums.items()}
    assert {e.path: e.sha256 for e in D.manifest()} == sums
    for e in D.manifest():
        assert e.url and e.url.startswith("https://raw.githubusercontent.com/")
        assert len(e.source_commit) == 40


def test_verify_all_ok(data_dir):
    result = D.verify(data_dir)
    assert len(result) == 89 and set(result.values()) == {"ok"}


def test_verify_reports_missing_and_mismatch(tmp_data_copy):
    root = tmp_data_copy(replace={"svamp/SVAMP.json": b"[]"}, omit={"math/math_test.jsonl"})
    result = D.verify(root)
    assert result["svamp/SVAMP.json"] == "mismatch"
    assert result["math/math_test.jsonl"] == "missing"
    assert sum(v == "ok" for v in result.values()) == 87


def test_corrupt_file_is_one_clear_data_error(tmp_data_copy, data_dir):
    raw = (data_dir / "gsm_hard/gsmhardv2.jsonl").read_bytes()
    root = tmp_data_copy(replace={"gsm_hard/gsmhardv2.jsonl": raw[: len(raw) // 2]})
    with pytest.raises(DataError) as err:
        get_benchmark("gsm_hard", root).load("valid")
    msg = str(err.value)
    assert "gsm_hard/gsmhardv2.jsonl" in msg and "\n" not in msg and "fetch" in msg
    # the other benchmarks of the same dir are unaffected
    assert len(get_benchmark("svamp", root).load("valid")) == 128


def test_corrupt_gzip_is_one_clear_data_error(tmp_data_copy):
    root = tmp_data_copy(replace={"drop/drop_v0_dev.jsonl.gz": b"\x1f\x8b not really gzip"})
    with pytest.raises(DataError, match="drop_v0_dev.jsonl.gz"):
        get_benchmark("drop", root).load("test")


def test_missing_file_names_file_and_fetch_command(tmp_data_copy):
    root = tmp_data_copy(omit={"mbpp/mbpp_public_test.jsonl"})
    with pytest.raises(DataError) as err:
        get_benchmark("mbpp", root).load("valid")
    msg = str(err.value)
    assert "mbpp/mbpp_public_test.jsonl" in msg and "w4s data fetch" in msg


def test_readers_catch_garbled_content_even_without_checksum(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a.jsonl").write_text('{"a": 1}\nnot json\n')
    with pytest.raises(DataError, match="line 2 is not JSON"):
        D.read_jsonl(tmp_path, "x/a.jsonl")
    (tmp_path / "x" / "b.json").write_text("[1, 2")
    with pytest.raises(DataError, match="invalid JSON"):
        D.read_json(tmp_path, "x/b.json")


def test_fetch_offline_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    # Port 9 on loopback refuses connections: the same code path as having no network.
    monkeypatch.setattr(D, "RAW_BASE", "http://127.0.0.1:9")
    with pytest.raises(DataError) as err:
        D.fetch(tmp_path / "d", paths=["svamp/SVAMP.json"], timeout=5)
    assert str(err.value).startswith("cannot reach 127.0.0.1:9: offline?")
    assert not any((tmp_path / "d").rglob("*")) if (tmp_path / "d").exists() else True


def test_fetch_into_an_unwritable_place_says_so_before_downloading(tmp_path, monkeypatch):
    # Were it to download first, the unreachable host would be the error: the real cause
    # (nowhere to store the files) must come first, in one line.
    monkeypatch.setattr(D, "RAW_BASE", "http://127.0.0.1:9")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(DataError) as err:
        D.fetch(blocker / "d", paths=["svamp/SVAMP.json"], timeout=5)
    assert str(err.value).startswith(f"cannot write the data files to {blocker / 'd'} (")
    assert "\n" not in str(err.value)


@pytest.fixture()
def fake_github(tmp_path, data_dir):
    """A local server laid out like raw.githubusercontent.com/<repo>/<commit>/<path>."""
    root = tmp_path / "upstream"
    for rel in ("svamp/SVAMP.json", "gsm_plus/gsmplus_testmini.jsonl.gz", "gpqa/dataset.zip"):
        e = D.entry(rel)
        dest = root / e.source_repo / e.source_commit / e.source_path
        dest.parent.mkdir(parents=True, exist_ok=True)
        src = data_dir / rel
        # gzip entries are plain upstream: serve the decompressed bytes
        dest.write_bytes(gzip.decompress(src.read_bytes()) if e.gzip else src.read_bytes())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_fetch_downloads_gzips_and_verifies(fake_github, tmp_path, monkeypatch):
    base, upstream = fake_github
    monkeypatch.setattr(D, "RAW_BASE", base)
    dest = tmp_path / "fetched"
    paths = ["svamp/SVAMP.json", "gsm_plus/gsmplus_testmini.jsonl.gz", "gpqa/dataset.zip"]
    result = D.fetch(dest, paths=paths, timeout=10)
    assert result == {p: "fetched" for p in paths}
    assert D.verify(dest, paths) == {p: "ok" for p in paths}
    # idempotent: a second fetch downloads nothing
    assert D.fetch(dest, paths=paths, timeout=10) == {p: "ok" for p in paths}
    # an upstream that changed is refused, and the good local file is kept
    e = D.entry("svamp/SVAMP.json")
    (upstream / e.source_repo / e.source_commit / e.source_path).write_bytes(b"[]")
    with pytest.raises(DataError, match="does not match the manifest"):
        D.fetch(dest, paths=["svamp/SVAMP.json"], timeout=10, force=True)
    assert D.verify(dest, ["svamp/SVAMP.json"]) == {"svamp/SVAMP.json": "ok"}
    assert not list(dest.rglob("*.tmp"))


def test_fetch_http_404_is_a_data_error(fake_github, tmp_path, monkeypatch):
    base, _ = fake_github
    monkeypatch.setattr(D, "RAW_BASE", base)
    with pytest.raises(DataError, match="HTTP 404"):
        D.fetch(tmp_path / "d", paths=["math/math_test.jsonl"], timeout=10)


def test_build_cache_is_keyed_by_data_dir(tmp_data_copy, data_dir):
    root = tmp_data_copy()
    a = get_benchmark("svamp", data_dir).load("valid")
    b = get_benchmark("svamp", root).load("valid")
    assert [x.id for x in a] == [x.id for x in b] and a[0] is not b[0]
    assert _build_cached.cache_info().currsize >= 2
