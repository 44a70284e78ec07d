"""Broken data directories: every case is one clear DataError / one `w4s: error:` line.

GPQA is decrypted in memory here only to check that no output of ours ever contains one of its
questions; nothing of it is printed (the assertions compare booleans, never the text).
"""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import pytest

from tests.benchmarks.test_cli import run
from w4s_ray.benchmarks import data as D
from w4s_ray.benchmarks import get_benchmark
from w4s_ray.errors import DataError

DROP = "drop/drop_v0_dev.jsonl.gz"


def _zip_without_member() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("dataset/other.csv", "a,b\n1,2\n")
    return buf.getvalue()


@pytest.mark.parametrize("rel,payload", [
    (DROP, b"this is not gzip"),
    (DROP, b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 100),  # bad deflate stream
    (DROP, gzip.compress(b'{"context": "x"}\n')[:-6]),                    # truncated
    ("gpqa/dataset.zip", _zip_without_member()),
    ("gpqa/dataset.zip", b"PK\x03\x04garbage"),
    ("svamp/SVAMP.json", b""),
])
def test_corrupt_file_is_one_data_error_naming_it(tmp_data_copy, rel, payload):
    root = tmp_data_copy(replace={rel: payload})
    bench = rel.split("/")[0]
    with pytest.raises(DataError) as err:
        get_benchmark(bench, root).load("valid")
    msg = str(err.value)
    assert rel in msg and "\n" not in msg
    res = run("data", "verify", "--set", f"data.dir={root}")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert f"MISMATCH {rel}" in res.stdout


def test_unreadable_file_is_a_data_error(tmp_data_copy, monkeypatch):
    root = tmp_data_copy()

    def denied(path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(D, "sha256_file", denied)
    assert D.verify(root, ["svamp/SVAMP.json"]) == {"svamp/SVAMP.json": "unreadable"}
    with pytest.raises(DataError, match="cannot read data file"):
        get_benchmark("svamp", root).load("valid")


def test_data_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(DataError, match="is not a directory"):
        get_benchmark("gsm8k", f).load("valid")
    res = run("data", "verify", "--set", f"data.dir={f}")
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1
    assert lines[0].startswith("w4s: error: data directory") and "not a directory" in lines[0]


def test_empty_data_dir(tmp_path):
    res = run("data", "verify", "--set", f"data.dir={tmp_path}")
    assert res.returncode == 1 and "0/89 files ok" in res.stdout
    with pytest.raises(DataError, match="w4s data fetch"):
        get_benchmark("mbpp", tmp_path).load("test")


def test_unknown_split_and_benchmark():
    with pytest.raises(DataError, match="unknown split"):
        get_benchmark("gsm8k").load("training")
    with pytest.raises(DataError, match="unknown benchmark"):
        get_benchmark("gsm9k")


def test_no_gpqa_question_in_any_output(data_dir, tmp_data_copy):
    prefix = "What is the correct answer to this question: "
    bodies = [it.question[len(prefix):][:40] for it in get_benchmark("gpqa", data_dir).load("test")]
    outputs = []
    for args in (("data", "list"), ("data", "verify"), ("data", "list", "--all")):
        res = run(*args, data_dir=data_dir)
        outputs.append(res.stdout + res.stderr)
    broken = tmp_data_copy(replace={"gpqa/dataset.zip": _zip_without_member()})
    try:
        get_benchmark("gpqa", broken).load("valid")
    except DataError as exc:
        outputs.append(str(exc))
    leaked = any(body and body in out for body in bodies for out in outputs)
    assert not leaked, "a GPQA question appeared in an output"
    assert Path(data_dir, "gpqa", "dataset.zip").is_file()
