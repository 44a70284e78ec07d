"""The same flags mean the same thing on every verb (issue #19): `--out` wherever a verb writes
a directory (older spellings kept), `--benchmarks/--benchmark/-b` one or many, one
`--resume` / `--fresh` pair; and `w4s report DIR` for any kind of run directory."""

from __future__ import annotations

import json

import pytest

from w4s_ray.cli import benchmarks_of, build_parser, main

WRITES_A_DIR = [
    ["optimize"], ["collect"], ["compare"], ["train"], ["sweep"], ["demo"],
    ["meta-agent", "init-tiny"], ["models", "prepare", "smollm2"],
]
TAKES_BENCHMARKS = [["optimize"], ["collect"], ["compare"], ["sweep"], ["eval", "-w", "x.py"],
                    ["meta-agent", "init-tiny"], ["baselines", "show", "cot"]]
RESUMABLE = [["optimize"], ["collect"], ["compare"], ["train"], ["sweep"], ["demo"]]


def _parse(argv):
    return build_parser().parse_args(argv)


@pytest.mark.parametrize("verb", WRITES_A_DIR, ids=" ".join)
def test_out_is_accepted_wherever_a_verb_writes_a_directory(verb):
    assert _parse([*verb, "--out", "d1"]).out == "d1"
    assert _parse([*verb, "-o", "d2"]).out == "d2"


@pytest.mark.parametrize("old", [["optimize", "--run-dir"], ["train", "--overwrite"]])
def test_older_spellings_still_work(old):
    args = _parse([*old, "d"] if old[1] == "--run-dir" else old)
    assert (args.out == "d") if old[1] == "--run-dir" else args.fresh


@pytest.mark.parametrize("verb", TAKES_BENCHMARKS, ids=lambda v: v[0])
def test_benchmarks_one_many_comma_or_repeated(verb):
    for flag in ("--benchmarks", "--benchmark", "-b"):
        assert benchmarks_of(_parse([*verb, flag, "gsm8k"])) == ["gsm8k"]
    args = _parse([*verb, "-b", "gsm8k,svamp", "--benchmark", "mgsm", "-b", "svamp"])
    assert benchmarks_of(args) == ["gsm8k", "svamp", "mgsm"]
    assert benchmarks_of(_parse(verb)) is None


@pytest.mark.parametrize("verb", [["optimize"], ["eval"]], ids=lambda v: v[0])
def test_a_one_benchmark_verb_refuses_many_in_one_line(verb, tmp_path, capsys):
    wf = tmp_path / "wf.py"
    wf.write_text("def solver(agent, task):\n    return {'answer': '1'}\n")
    out = ["--out", str(tmp_path / "o")] if verb[0] == "optimize" else ["-w", str(wf)]
    assert main([*verb, "-b", "gsm8k,svamp", *out]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("w4s: error: `w4s ")
    assert "runs on one benchmark" in err and "w4s sweep -b gsm8k,svamp" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("verb", RESUMABLE, ids=lambda v: v[0])
def test_one_resume_fresh_pair_that_excludes_itself(verb, capsys):
    assert _parse([*verb, "--resume"]).resume and not _parse([*verb, "--resume"]).fresh
    assert _parse([*verb, "--fresh"]).fresh and not _parse([*verb, "--fresh"]).resume
    with pytest.raises(SystemExit) as exc:
        _parse([*verb, "--resume", "--fresh"])
    assert exc.value.code == 2
    assert "not allowed with argument --resume" in capsys.readouterr().err


def test_fresh_deletes_only_what_a_run_wrote(tmp_path):
    from w4s_ray.rlao.runs import RunDir

    d = tmp_path / "run"
    for rel in ("config.yaml", "metrics.jsonl", "final.json", "report.md", "seeds/gsm8k.json",
                "trajectories/part-gsm8k-e00-0001.parquet", "workflows/turn_01_cand_0.py"):
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text("x")
    (d / "my_notes.txt").write_text("keep me")
    RunDir(d).clear()
    assert sorted(p.name for p in d.iterdir()) == ["my_notes.txt"]
    assert not RunDir(d).has_work()


# -- w4s report DIR: every kind ----------------------------------------------------------------


@pytest.fixture(scope="module")
def optimize_run(tmp_path_factory):
    from tests.rlao.fakes import FakeEvaluator, reply, workflow
    from w4s_ray.config import load_config
    from w4s_ray.meta_agent.scripted import ScriptedMetaAgent
    from w4s_ray.rlao.loop import TaskSpec
    from w4s_ray.rlao.optimize import optimize

    spec = TaskSpec("gsm8k", "math", "Grade-school math.", "a number", {"CoT": workflow(0.4)})
    d = tmp_path_factory.mktemp("kinds") / "optimize" / "gsm8k"
    optimize(load_config(None, ["rlao.candidates=2", "rlao.turns=2"]), spec, d, FakeEvaluator(),
             ScriptedMetaAgent([reply(a) for a in (0.3, 0.6, 0.8, 0.5)]), progress=False)
    return d


def _report(path, capsys) -> str:
    assert main(["report", str(path)]) == 0
    return capsys.readouterr().out.strip()


def test_report_regenerates_an_optimize_run(optimize_run, capsys):
    before = (optimize_run / "report.md").read_text()
    (optimize_run / "report.md").unlink()
    (optimize_run / "curve.png").unlink()
    assert _report(optimize_run, capsys) == f"optimize report: {optimize_run / 'report.md'}"
    assert (optimize_run / "report.md").read_text() == before
    assert (optimize_run / "curve.png").stat().st_size > 1000


def test_report_regenerates_a_sweep(optimize_run, tmp_path, capsys):
    import shutil

    root = tmp_path / "sweep"
    shutil.copytree(optimize_run, root / "gsm8k")
    (root / "sweep.json").write_text(json.dumps({"benchmarks": {"gsm8k": {"status": "done"}}}))
    assert _report(root, capsys) == f"sweep report: {root / 'sweep_report.md'}"
    text = (root / "sweep_report.md").read_text()
    assert "gsm8k" in text and (root / "sweep_valid.png").exists()


def test_report_regenerates_a_comparison(tmp_path, capsys):
    from dataclasses import asdict

    from w4s_ray.rlao.policy_eval import Sample

    d = tmp_path / "cmp"
    d.mkdir()
    cells = []
    for model, acc in (("warm", 0.4), ("trained", 0.7)):
        for seed in (0, 1):
            got = [Sample(model, "gsm8k", seed, i, True, acc, None, 0.001) for i in range(2)]
            cells.append(json.dumps({"samples": [asdict(s) for s in got]}))
    (d / "samples.jsonl").write_text("\n".join(cells) + "\n")
    (d / "settings.json").write_text(json.dumps({"models": {"warm": "a", "trained": "b"},
                                                 "samples": 2, "seeds": [0, 1]}))
    assert _report(d, capsys) == f"compare report: {d / 'compare.md'}"
    summary = json.loads((d / "compare.json").read_text())
    assert summary["per_model"]["trained"]["mean_accuracy"] == pytest.approx(0.7)
    assert "trained" in (d / "compare.md").read_text() and (d / "compare.png").exists()


def test_report_regenerates_a_training_summary(tmp_path, capsys):
    from w4s_ray.config import load_config
    from w4s_ray.train.rwr import BuildStats
    from w4s_ray.train.trainer import TrainResult, write_reports

    d = tmp_path / "train"
    d.mkdir()
    hist = [{"step": s, "loss": 2.0 - 0.1 * s, "ce": 2.0, "lr": 1e-4, "action_tokens": 10,
             "step_s": 0.5} for s in range(1, 6)]
    write_reports(TrainResult(d, d / "model", 5, hist, BuildStats(rows=4, kept=4), 3.0, 0),
                  load_config(None))
    before = (d / "train_summary.md").read_text()
    (d / "train_summary.md").unlink()
    (d / "loss.png").unlink()
    assert _report(d, capsys) == f"train report: {d / 'train_summary.md'}"
    assert (d / "train_summary.md").read_text() == before and (d / "loss.png").exists()


@pytest.mark.parametrize("make", ["missing", "empty", "file"])
def test_report_on_a_directory_that_is_no_run_is_one_error_line(make, tmp_path, capsys):
    p = tmp_path / "x"
    if make == "empty":
        p.mkdir()
    elif make == "file":
        p.write_text("hello")
    assert main(["report", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("w4s: error: ")
    assert ("is not a w4s run directory" in err) if make == "empty" else ("run dir" in err)


def test_models_prepare_starts_over_with_fresh_or_its_older_name():
    for flag in ("--fresh", "--force"):
        assert _parse(["models", "prepare", "smollm2", flag]).fresh
    assert not _parse(["models", "prepare", "smollm2"]).fresh
