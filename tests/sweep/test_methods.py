"""`sweep.methods.run_methods` and `sweep.table` without Ray: every method of one benchmark on
a fake evaluator; a failing method is recorded and the others run; the table reads the files."""

from __future__ import annotations

import json

import pytest

from tests.optimizers.test_run import Bench, SeamFake
from w4s_ray.config import load_config
from w4s_ray.errors import BudgetExceeded, ConfigError
from w4s_ray.meta_agent.scripted import SeedVariantsMetaAgent
from w4s_ray.sweep.layout import SweepLayout
from w4s_ray.sweep.methods import check_methods, run_methods
from w4s_ray.sweep.table import collect, write_table

METHODS = ["cot", "step_back", "adas", "aflow"]


class AflowDown(SeedVariantsMetaAgent):
    """The simulator's meta model, except that AFlow's optimizer endpoint is broken."""

    def generate(self, messages, n, *, seed=None):
        if "<operator_description>" in messages[0]["content"]:
            raise RuntimeError("optimizer endpoint returned garbage")
        return super().generate(messages, n, seed=seed)


def _cfg(tmp_path, *extra):
    return load_config(None, [
        f"run_dir={tmp_path}", "rlao.test_limit=4", f"sweep.methods=[{', '.join(METHODS)}]",
        "optimizers.adas.initial=[cot]", "optimizers.adas.generations=1",
        "optimizers.adas.bootstrap_samples=100", "optimizers.aflow.max_rounds=1",
        "optimizers.aflow.validation_rounds=1", "optimizers.aflow.dry_run_items=0", *extra])


def test_a_failing_method_is_recorded_and_the_others_complete(tmp_path):
    cfg = _cfg(tmp_path)
    layout = SweepLayout(tmp_path)
    status = run_methods(cfg, Bench(), layout, SeamFake(), None, AflowDown, resume=False)
    assert status == {"cot": "done", "step_back": "done", "adas": "done", "aflow": "failed"}
    err = json.loads((tmp_path / "gsm8k" / "methods" / "aflow.error.json").read_text())
    assert "garbage" in err["error"]
    data = collect(tmp_path, ["gsm8k"], METHODS)
    assert data["cells"]["aflow"]["gsm8k"]["status"] == "failed"
    assert {m: data["cells"][m]["gsm8k"]["test_n"] for m in METHODS[:3]} == {
        "cot": 4, "step_back": 4, "adas": 4}
    md = write_table(tmp_path, ["gsm8k"], METHODS).read_text()
    assert "FAILED: optimizer endpoint returned garbage" in md
    assert "W4S gain" not in md  # no W4S row without w4s among the methods
    # Resume: done methods are not evaluated again; the failed one runs and now succeeds.
    ev = SeamFake()
    status = run_methods(cfg, Bench(), layout, ev, None, SeedVariantsMetaAgent, resume=True)
    assert status == {m: "done" for m in METHODS}
    assert not (tmp_path / "gsm8k" / "methods" / "aflow.error.json").exists()
    assert all(r.tag.startswith("aflow") for r in ev.requests)


def test_budget_stops_the_benchmark(tmp_path):
    with pytest.raises(BudgetExceeded):
        run_methods(_cfg(tmp_path), Bench(), SweepLayout(tmp_path),
                    SeamFake(budget_requests=3), None, SeedVariantsMetaAgent, resume=False)


def test_best_baseline_and_gain_from_files(tmp_path):
    def put(path, acc):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"test_accuracy": acc, "test_scores": [acc] * 4,
                                    "test_n": 4, "dollars": 0.1, "wall_s": 3.0}))

    put(tmp_path / "b" / "methods" / "cot.json", 0.5)
    put(tmp_path / "b" / "methods" / "step_back.json", 0.75)
    put(tmp_path / "b" / "adas" / "final.json", 0.75)  # a tie: the first in order is marked
    put(tmp_path / "b" / "final.json", 1.0)
    data = collect(tmp_path, ["b", "c"], ["cot", "step_back", "adas", "w4s"])
    assert data["best_baseline"] == {"b": "step_back", "c": None}
    assert data["w4s_gain"]["b"] == pytest.approx(0.25) and data["w4s_gain"]["c"] is None
    assert data["cells"]["cot"]["c"]["status"] == "not run"
    md = write_table(tmp_path, ["b", "c"], ["cot", "step_back", "adas", "w4s"]).read_text()
    assert "75.0 ± 0.0†" in md and "+25.0 vs Step-back Abstraction" in md


def test_unknown_or_empty_methods_are_one_error():
    with pytest.raises(ConfigError, match="unknown method 'dspy'"):
        check_methods(["cot", "dspy"])
    with pytest.raises(ConfigError, match="no method"):
        check_methods([])
    assert check_methods(["w4s", "cot", "w4s"]) == ["w4s", "cot"]


def test_a_methods_sweep_is_not_overwritten_and_fresh_discards_its_results(tmp_path, monkeypatch):
    """Stored baseline and search results count as an earlier sweep: a new sweep into the same
    run_dir is refused without --resume/--fresh, and --fresh deletes them (a stored result is
    otherwise taken as done and reported again as this sweep's)."""
    from w4s_ray.runtime.sweep import prepare_sweep
    from w4s_ray.sweep.methods import clear_methods, method_dirs

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cfg = _cfg(tmp_path, "benchmarks=[gsm8k]")
    layout = SweepLayout(tmp_path)
    run_methods(cfg, Bench(), layout, SeamFake(), None, SeedVariantsMetaAgent, resume=False)
    assert all(d.exists() for d in method_dirs(layout, "gsm8k"))
    with pytest.raises(ConfigError, match=r"already holds a sweep \(gsm8k\).*--fresh"):
        prepare_sweep(cfg, ["gsm8k"], resume=False)
    prepare_sweep(cfg, ["gsm8k"], resume=False, fresh=True)  # accepted; nothing deleted yet
    assert all(d.exists() for d in method_dirs(layout, "gsm8k"))
    clear_methods(layout, "gsm8k")  # what run_sweep does once every check has passed
    assert not any(d.exists() for d in method_dirs(layout, "gsm8k"))
    ev = SeamFake()
    run_methods(cfg, Bench(), layout, ev, None, SeedVariantsMetaAgent, resume=False)
    assert {r.tag.split("-")[0].split(":")[0] for r in ev.requests} >= {"adas", "aflow"}
