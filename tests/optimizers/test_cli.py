"""`w4s optimize --method adas|aflow` and `w4s sweep --methods` refuse bad input with one
`w4s: error:` line and exit 2, before Ray starts and before anything is written."""

from __future__ import annotations

import pytest

from w4s_ray.cli import main

SIM_META = ["--set", "meta_agent.backend=scripted", "--set", "meta_agent.model=seed-variants"]


@pytest.mark.parametrize("argv, message", [
    (["sweep", "--methods", "cot,dspy", "--benchmarks", "gsm8k"], "unknown method 'dspy'"),
    (["sweep", "--methods", ",", "--benchmarks", "gsm8k"], "no method names given"),
    (["optimize", "--method", "adas", "--resume", *SIM_META], "holds no run to resume"),
    (["optimize", "--method", "adas", "--set", "optimizers.adas.initial=[cot, bogus]",
      *SIM_META], "unknown baseline 'bogus'"),
    (["optimize", "--method", "aflow", "--set", "optimizers.meta_agent.backend=scripted",
      "--set", "optimizers.meta_agent.model=/no/such/replies.json"],
     "optimizers.meta_agent.model"),
    (["optimize", "--method", "adas", "--turns", "-1", *SIM_META], "--turns must be >= 0"),
])
def test_bad_input_is_one_line_and_nothing_is_written(tmp_path, capsys, argv, message):
    run = tmp_path / "run"
    extra = ["--set", f"run_dir={run}"] if argv[0] == "sweep" else ["--run-dir", str(run)]
    rc = main([*argv, *extra, "--set", "executor.api_base=http://127.0.0.1:9/v1"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 2 and len(err) == 1 and err[0].startswith("w4s: error: "), err
    assert message in err[0]
    assert not run.exists()


def test_resume_of_another_method_is_refused(tmp_path, capsys):
    from w4s_ray.config import load_config
    from w4s_ray.rlao.runs import RunDir

    sets = [a for a in SIM_META if a != "--set"]
    RunDir(tmp_path / "run").prepare(load_config(None, ["optimizers.method=adas", *sets]),
                                     False)
    rc = main(["optimize", "--method", "aflow", "--resume", "--run-dir", str(tmp_path / "run"),
               *SIM_META])
    err = capsys.readouterr().err
    assert rc == 2 and "optimizers.method is 'aflow' but the run" in err
