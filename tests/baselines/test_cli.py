"""`w4s baselines list|show` in-process through `w4s_ray.cli.main`."""

from __future__ import annotations

from w4s_ray.baselines import BASELINES
from w4s_ray.cli import main


def test_list_prints_one_row_per_baseline(capsys):
    assert main(["baselines", "list"]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("| ")]
    assert lines[0].split("|")[1].strip() == "name"
    names = [ln.split("|")[1].strip() for ln in lines[1:]]
    assert names == list(BASELINES)
    assert "5 samples T=0.8" in out and "math, reading, multiple_choice, code" in out


def test_show_writes_a_workflow_that_eval_reads(tmp_path, capsys, data_dir):
    from w4s_ray.commands.eval import read_workflow

    out = tmp_path / "debate.py"
    assert main(["baselines", "show", "llm_debate", "--benchmark", "drop", "-o", str(out)]) == 0
    code = read_workflow(str(out))
    assert "Reading Comprehension Specialist" in code
    assert main(["baselines", "show", "cot", "-b", "humaneval"]) == 0
    assert "answer_key = 'code'" in capsys.readouterr().out


def test_bad_names_are_one_error_line(capsys):
    assert main(["baselines", "show", "nope", "-b", "gsm8k"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["w4s: error: unknown baseline 'nope'; known: " + ", ".join(BASELINES)]
    assert main(["baselines", "show", "cot", "-b", "nope"]) == 2
    assert capsys.readouterr().err.startswith("w4s: error: unknown benchmark 'nope'")
