"""Run directories on shared storage (w4s_ray.storage): file:// and mounted paths are used as
they are; s3:// (a local moto server) is staged, synced, pulled back for --resume; a URI that
cannot be used is one line before anything starts; a failed upload loses nothing."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from w4s_ray import storage
from w4s_ray.errors import ConfigError


def test_paths_and_file_uris_are_local(tmp_path):
    assert storage.local_path(f"file://{tmp_path}/run") == tmp_path / "run"
    assert storage.local_path("~/x") == storage.local_path(f"{os.path.expanduser('~')}/x")
    assert not storage.is_remote(f"file://{tmp_path}") and not storage.is_remote("runs/a")
    assert storage.is_remote("s3://b/x") and storage.is_remote("gs://b/x")
    with pytest.raises(ConfigError, match="file:///abs/path"):
        storage.local_path("file://somehost/x")
    with storage.staged(f"file://{tmp_path}/run") as st:  # no staging, no sync
        assert st.path == tmp_path / "run" and not st.remote


def test_join_keeps_a_query_at_the_end():
    assert storage.join("runs", "optimize", "gsm8k") == "runs/optimize/gsm8k"
    assert storage.join("s3://b/r/", "optimize", "gsm8k") == "s3://b/r/optimize/gsm8k"
    assert storage.join("s3://b/r?endpoint_override=h:9", "collect") == \
        "s3://b/r/collect?endpoint_override=h:9"
    assert storage.display("s3://b/r?endpoint_override=h:9") == "s3://b/r"


def test_unusable_uris_are_one_line_errors(s3, tmp_path):
    cases = {
        "nosuch://x/y": "not a storage URI pyarrow can open",
        f"s3://{s3.bucket}-missing/run": "cannot write there",
        f"s3://{s3.bucket}": "not the bucket itself",
    }
    for uri, msg in cases.items():
        with pytest.raises(ConfigError) as err:
            storage.Stage(uri, staging_dir=str(tmp_path / "stage"))
        assert msg in str(err.value) and "\n" not in str(err.value), uri
    s3.write(b"x", "afile")
    with pytest.raises(ConfigError, match="is not a directory"):
        storage.Stage(s3.uri("afile"), staging_dir=str(tmp_path / "stage"))
    assert not (tmp_path / "stage").exists() or not any((tmp_path / "stage").iterdir())


def test_stage_syncs_to_s3_and_a_second_stage_pulls_it_back(s3, tmp_path):
    cfg = type("S", (), {"staging_dir": str(tmp_path / "stage"), "sync_interval_s": 0})()
    uri = s3.uri("runs", "opt")
    with storage.staged(uri, cfg) as st:
        assert st.remote and st.path.parent.parent == tmp_path / "stage"
        assert st.path.name == "opt"  # reports name a run by its directory
        (st.path / "trajectories").mkdir()
        (st.path / "trajectories" / "part-0.parquet").write_bytes(b"rows-0")
        (st.path / ".final.json.123.tmp").write_text("half")  # an atomic write in progress
        assert st.sync()  # a durable point: the part is there before the stage ends
        assert s3.files("runs", "opt") == ["trajectories/part-0.parquet"]
        (st.path / "final.json").write_text('{"best": "seed"}')
    assert s3.files("runs", "opt") == ["final.json", "trajectories/part-0.parquet"]
    assert s3.read("runs", "opt", "final.json") == b'{"best": "seed"}'
    first = st.path
    with storage.staged(uri, cfg) as again:  # e.g. --resume on another machine
        assert again.path != first
        assert (again.path / "trajectories" / "part-0.parquet").read_bytes() == b"rows-0"
        assert again.mirror.push() == 0  # what was pulled is not uploaded again


def test_files_removed_locally_are_removed_remotely(s3, tmp_path):
    """`--fresh` on a URI clears the pulled run locally: its old parts must not stay in the
    bucket, or the next pull (a --resume) would mix them with the new run's rows."""
    cfg = type("S", (), {"staging_dir": str(tmp_path / "stage"), "sync_interval_s": 0})()
    uri = s3.uri("runs", "fresh")
    with storage.staged(uri, cfg) as st:
        for k in range(3):
            (st.path / f"part-{k}.parquet").write_bytes(b"old")
    with storage.staged(uri, cfg) as again:
        for k in range(3):
            (again.path / f"part-{k}.parquet").unlink()  # what RunDir.clear() does
        (again.path / "part-0.parquet").write_bytes(b"new")
    assert s3.files("runs", "fresh") == ["part-0.parquet"]
    assert s3.read("runs", "fresh", "part-0.parquet") == b"new"


def test_a_storage_that_never_answers_is_one_line_after_the_timeout(monkeypatch, tmp_path):
    release = __import__("threading").Event()
    # e.g. gs:// offline: the client retries its credential lookup for minutes
    monkeypatch.setattr(storage, "_open_remote", lambda *a: release.wait(60))
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=r"no answer from the storage within 0.5 s"):
        storage.Stage("gs://b/run", staging_dir=str(tmp_path), check_timeout_s=0.5)
    assert time.monotonic() - t0 < 10 and not any(tmp_path.iterdir())
    release.set()


class _Broken:
    """A filesystem whose writes fail (credentials expired, bucket deleted mid-run)."""

    def open_output_stream(self, path):
        raise OSError("AWS Error ACCESS_DENIED during PutObject operation: expired token")


def test_a_failed_upload_keeps_everything_and_says_where(s3, tmp_path, capsys):
    cfg = type("S", (), {"staging_dir": str(tmp_path / "stage"), "sync_interval_s": 0})()
    with pytest.raises(storage.StorageError) as err:
        with storage.staged(s3.uri("run"), cfg) as st:
            st.mirror.remote.fs = _Broken()
            (st.path / "metrics.jsonl").write_text("{}\n")
            assert not st.sync()
            assert not st.sync()  # the same cause is warned once
            (st.path / "final.json").write_text("{}")
    assert str(st.path) in str(err.value) and "expired token" in str(err.value)
    assert err.value.exit_code != 0
    assert (st.path / "final.json").exists() and (st.path / "metrics.jsonl").exists()
    warns = [ln for ln in capsys.readouterr().err.splitlines() if "could not write" in ln]
    assert len(warns) == 1 and str(st.path) in warns[0]


def test_a_failing_stage_keeps_its_error_and_its_local_copy(s3, tmp_path, capsys):
    cfg = type("S", (), {"staging_dir": str(tmp_path / "stage"), "sync_interval_s": 0})()
    with pytest.raises(RuntimeError, match="evaluator died"):
        with storage.staged(s3.uri("run"), cfg) as st:
            (st.path / "part.parquet").write_bytes(b"done before the crash")
            st.mirror.remote.fs = _Broken()
            raise RuntimeError("evaluator died")
    assert (st.path / "part.parquet").exists()
    assert "results not written" in capsys.readouterr().err


def test_the_periodic_sync_uploads_while_the_stage_runs(s3, tmp_path):
    cfg = type("S", (), {"staging_dir": str(tmp_path / "stage"), "sync_interval_s": 0.2})()
    with storage.staged(s3.uri("run"), cfg) as st:
        (st.path / "metrics.jsonl").write_text("{}\n")
        deadline = time.monotonic() + 30
        while "metrics.jsonl" not in s3.files("run") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "metrics.jsonl" in s3.files("run")


# -- the CLI: a bad URI is one line, exit 2, before Ray ------------------------------------------
@pytest.fixture
def w4s(capsys, monkeypatch):
    """The CLI in this process (its checks import what a subprocess would, minus the start-up):
    returns (exit code, stderr, stdout); the environment it changes is restored. Starting or
    joining Ray is recorded (`_no_ray_started`), whether or not an earlier test of this
    session left a Ray running."""
    import ray

    from w4s_ray.cli import main
    from w4s_ray.runtime import ray_init

    _RAY_CALLS.clear()

    def record(name, real):
        def wrapper(*a, **kw):
            _RAY_CALLS.append(name)
            return real(*a, **kw)
        return wrapper

    from w4s_ray.runtime import evaluators, sweep, train_job

    for mod in (ray_init, evaluators, sweep, train_job):  # also where it was imported by name
        monkeypatch.setattr(mod, "init_ray", record("init_ray", ray_init.init_ray))
    monkeypatch.setattr(ray, "init", record("ray.init", ray.init))

    def run(args: list[str]) -> SimpleNamespace:
        saved = dict(os.environ)
        try:
            rc = main(args)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        out = capsys.readouterr()
        return SimpleNamespace(returncode=rc, stderr=out.err, stdout=out.out)

    return run


_RAY_CALLS: list[str] = []


def _no_ray_started() -> bool:
    return not _RAY_CALLS


def _one_error_line(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


def test_cli_refuses_bad_uris_before_ray(s3, tmp_path, w4s):
    line = _one_error_line(w4s(["optimize", "-b", "gsm8k", "--run-dir", "nosuch://b/r"]))
    assert line.startswith("w4s: error: --run-dir nosuch://b/r: not a storage URI")
    line = _one_error_line(w4s(["collect", "--benchmarks", "gsm8k",
                                 "--out", f"s3://{s3.bucket}-gone/c"]))
    assert f"--out s3://{s3.bucket}-gone/c: cannot write there" in line
    line = _one_error_line(w4s(["sweep", "--set", f"run_dir=s3://{s3.bucket}"]))
    assert "not the bucket itself" in line
    line = _one_error_line(w4s(["meta-agent", "init-tiny", "--out", s3.uri("tiny")]))
    assert "writes a local or mounted path only" in line
    line = _one_error_line(w4s(["train", "--data", s3.uri("nothing-here"),
                                 "--out", s3.uri("train")]))
    assert f"train.data {s3.uri('nothing-here')}: no such directory" in line
    assert _no_ray_started()


def test_cli_names_the_uri_when_it_already_holds_a_run(s3, tmp_path, w4s):
    s3.write(b"name: w4s\n", "run", "config.yaml")
    line = _one_error_line(w4s(["optimize", "-b", "gsm8k", "--run-dir", s3.uri("run"),
                                 "--set", f"storage.staging_dir={tmp_path / 'stage'}"]))
    assert f"run dir {s3.uri('run')} already holds a run; pass --resume" in line
    assert not any((tmp_path / "stage").iterdir())  # the refused stage left no local copy


def test_file_uris_reach_every_stage_as_local_paths(tmp_path, tiny_model_dir, w4s):
    """file:// is a local path for optimize, collect, sweep and train alike (no "file:" dir
    appears in the working dir)."""
    line = _one_error_line(w4s(["collect", "--benchmarks", "gsm8k", "--resume",
                                 "--out", f"file://{tmp_path}/c"]))
    assert f"--resume: {tmp_path}/c holds no run to resume" in line
    line = _one_error_line(w4s(["sweep", "--benchmarks", "gsm8k", "--resume",
                                 "--set", f"run_dir=file://{tmp_path}/s"]))
    assert f"--resume: {tmp_path}/s holds no sweep to resume" in line
    line = _one_error_line(w4s(["train", "--data", f"file://{tmp_path}/nothing",
                                 "--base-model", str(tiny_model_dir),
                                 "--out", f"file://{tmp_path}/t"]))
    assert f"{tmp_path}/nothing" in line and "file:" not in line.split("w4s: error:")[1]
    assert not list(tmp_path.glob("file*")) and not list(Path.cwd().glob("file:*"))
    assert _no_ray_started()


def test_a_failed_download_is_one_line_and_leaves_no_copy(s3, tmp_path, monkeypatch):
    s3.write(b"rows", "run", "trajectories", "part-0.parquet")
    real = storage.Mirror.pull

    def cut(self):  # the connection drops after the first file
        real(self)
        raise OSError("AWS Error NETWORK_CONNECTION during GetObject operation")

    monkeypatch.setattr(storage.Mirror, "pull", cut)
    with pytest.raises(ConfigError, match="cannot read what is stored there .*NETWORK"):
        storage.Stage(s3.uri("run"), staging_dir=str(tmp_path / "stage"))
    assert not any((tmp_path / "stage").iterdir())
