"""The `w4s` entry point: help on every verb, one-line errors with non-zero exits."""

from __future__ import annotations

import subprocess
import sys

import pytest

from w4s_ray.cli import build_parser, main


def _verbs():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sorted(sub.choices)


def test_top_level_help_runs_fast_in_a_subprocess():
    out = subprocess.run([sys.executable, "-m", "w4s_ray", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0
    assert "VERB" in out.stdout


@pytest.mark.parametrize("verb", _verbs())
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as exc:
        main([verb, "--help"])
    assert exc.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_bad_override_is_one_line_and_nonzero():
    if "data" not in _verbs():
        pytest.skip("data verb not present")
    out = subprocess.run([sys.executable, "-m", "w4s_ray", "data", "list", "--set", "nosuch.key=1"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert lines == ["w4s: error: --set nosuch.key: unknown key 'nosuch'"]


def _foreign_run_dir(root):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from w4s_ray.rlao.trajectories import COLUMNS

    (root / "trajectories").mkdir(parents=True)
    pq.write_table(pa.table({c: ["text"] for c in COLUMNS}),
                   root / "trajectories" / "part-gsm8k-e00-0000.parquet")
    return root


@pytest.mark.parametrize("case", [
    "report-file", "report-empty", "report-foreign-parquet", "optimize-zero-candidates",
    "optimize-negative-turns", "collect-out-is-file", "collect-unknown-benchmark",
    "collect-foreign-parquet", "data-dir-is-file", "eval-bad-window",
])
def test_bad_input_is_exactly_one_error_line(case, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = {
        "report-file": ["report", str(afile)],
        "report-empty": ["report", str(empty)],
        "report-foreign-parquet": ["report", str(_foreign_run_dir(tmp_path / "r1"))],
        "optimize-zero-candidates": ["optimize", "--set", "rlao.candidates=0"],
        "optimize-negative-turns": ["optimize", "--turns", "-2",
                                    "--run-dir", str(tmp_path / "o")],
        "collect-out-is-file": ["collect", "--benchmarks", "gsm8k", "--out", str(afile)],
        "collect-unknown-benchmark": ["collect", "--benchmarks", "gsm8k,nope"],
        "collect-foreign-parquet": ["collect", "--benchmarks", "gsm8k", "--resume", "--out",
                                    str(_foreign_run_dir(tmp_path / "r2"))],
        "data-dir-is-file": ["data", "verify", "--set", f"data.dir={afile}"],
        "eval-bad-window": ["eval", "--workflow", str(afile), "--set", "rlao.history_window=-1"],
    }[case]
    if argv[0] not in _verbs():
        pytest.skip(f"{argv[0]} verb not present")
    code = main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code != 0
    assert len(lines) == 1 and lines[0].startswith("w4s: error: "), err
    assert "Traceback" not in err


def test_unknown_verb_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-verb"])
    assert exc.value.code == 2


# -- issue #14: version, verbosity, --resume on a directory without a run ---------------------


def test_version_prints_the_installed_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"w4s {version('w4s-ray')}"


@pytest.mark.parametrize("argv", [["--verbose", "--quiet", "data", "list"],
                                  ["optimize", "--verbose", "--quiet"]])
def test_verbose_and_quiet_exclude_each_other(argv, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == "w4s: error: --verbose and --quiet exclude each other"


@pytest.mark.parametrize("verb, flag", [("optimize", "--run-dir"), ("collect", "--out")])
def test_resume_on_a_directory_without_a_run_is_an_error(verb, flag, tmp_path, capsys):
    empty = tmp_path / "typo"
    argv = [verb, flag, str(empty), "--resume", "--benchmark" if verb == "optimize"
            else "--benchmarks", "gsm8k"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--resume" in err and "holds no run to resume" in err
    assert not empty.exists()


def test_sweep_resume_without_a_sweep_is_an_error(tmp_path, capsys):
    assert main(["sweep", "--benchmarks", "gsm8k", "--resume", "--set",
                 f"run_dir={tmp_path / 'nothing'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds no sweep to resume" in err and not (tmp_path / "nothing").exists()
