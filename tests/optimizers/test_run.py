"""`optimizers.run.run_search` (what `w4s optimize --method adas|aflow` runs) without Ray: a fake
evaluator behind the real evaluation seam, the simulator's meta model, the run directory,
resume from a torn record file, a budget stop, and the single test evaluation."""

from __future__ import annotations

import json

import pytest

from tests.optimizers.fakes import PHI, acc_of
from w4s_ray.config import load_config
from w4s_ray.errors import BudgetExceeded, ConfigError, DataError
from w4s_ray.meta_agent.scripted import SeedVariantsMetaAgent
from w4s_ray.optimizers.pool import SeamEvaluate
from w4s_ray.optimizers.run import SearchDir, run_search
from w4s_ray.workflow.evaluate import EvalResult


class Bench:
    name, kind = "gsm8k", "math"
    task_description = "Grade-school math word problems."
    answer_format = "A number."


class SeamFake:
    """The `rlao.evaluation.Evaluator` protocol: EvalRequests in, EvalResults out."""

    def __init__(self, budget_requests: int | None = None) -> None:
        self.requests = []
        self.budget_requests = budget_requests

    def evaluate(self, requests):
        if self.budget_requests is not None and \
                len(self.requests) + len(requests) > self.budget_requests:
            raise BudgetExceeded("executor budget of $0.01 spent")
        self.requests += list(requests)
        out = []
        for r in requests:
            n = r.limit or (len(r.item_ids) if r.item_ids else 8)
            acc = acc_of(r.code, 0.5)
            scores = [1.0 if (k * PHI + 0.1 * r.seed) % 1.0 < acc else 0.0 for k in range(n)]
            out.append(EvalResult(r.benchmark, r.split, accuracy=sum(scores) / n, n=n,
                                  scores=scores, cost_usd=0.001 * n, calls=n,
                                  feedback="Validation accuracy" if r.split == "valid" else ""))
        return out

    def item_ids(self, benchmark, split):
        return [f"{split}-{i}" for i in range(20)]


def _cfg(*extra):
    return load_config(None, ["rlao.test_limit=5", "optimizers.adas.initial=[cot, cot_sc]",
                              "optimizers.adas.bootstrap_samples=200",
                              "optimizers.aflow.validation_rounds=2",
                              "optimizers.aflow.dry_run_items=0", *extra])


@pytest.mark.parametrize("method", ["adas", "aflow"])
def test_search_runs_persists_and_tests_only_the_chosen_workflow(tmp_path, method):
    ev = SeamFake()
    final = run_search(_cfg(), method, Bench(), tmp_path / "run", ev, SeedVariantsMetaAgent(),
                       progress=False, iterations=2)
    rd = SearchDir(tmp_path / "run")
    records = rd.read_records()
    assert final["method"] == method and final["iterations"] == (2 if method == "adas" else 3)
    tests = [r for r in ev.requests if r.split == "test"]
    assert len(tests) == 1 and tests[0].item_ids == [f"test-{i}" for i in range(5)]
    assert tests[0].code == (tmp_path / "run" / "final_workflow.py").read_text()
    assert final["test_n"] == 5 and len(final["test_scores"]) == 5
    assert 0 <= final["test_ci"][0] <= final["test_accuracy"] <= final["test_ci"][1] <= 1
    assert final["dollars"] == pytest.approx(sum(r.limit or len(r.item_ids or []) or 8
                                                 for r in ev.requests) * 0.001)
    assert all(r["wall_s"] is not None for r in records)
    assert json.loads(rd.status.read_text())["status"] == "done"
    assert "| step |" in rd.report.read_text() and rd.curve.stat().st_size > 1000
    if method == "adas":  # the simulator's meta model answered every ADAS prompt usefully
        assert all(r["status"] == "added" for r in records if r["type"] == "generation")


def test_resume_drops_a_torn_tail_and_equals_an_uninterrupted_run(tmp_path):
    whole = tmp_path / "whole"
    run_search(_cfg(), "adas", Bench(), whole, SeamFake(), SeedVariantsMetaAgent(),
               progress=False, iterations=3)
    part = tmp_path / "part"
    run_search(_cfg(), "adas", Bench(), part, SeamFake(), SeedVariantsMetaAgent(),
               progress=False, iterations=1)
    (part / "final.json").unlink()
    with open(part / "records.jsonl", "a") as fh:
        fh.write('{"type": "generation", "generation": 2, "stat')  # killed mid-append
    with pytest.raises(ConfigError, match="--resume"):
        run_search(_cfg(), "adas", Bench(), part, SeamFake(), SeedVariantsMetaAgent(),
                   progress=False, iterations=3)
    run_search(_cfg(), "adas", Bench(), part, SeamFake(), SeedVariantsMetaAgent(),
               resume=True, progress=False, iterations=3)

    def key(d):
        return [(r["type"], r.get("fitness"), (r.get("solution") or {}).get("code"))
                for r in SearchDir(d).read_records()]

    assert key(part) == key(whole)


def test_corrupt_record_in_the_middle_is_a_data_error(tmp_path):
    run_search(_cfg(), "aflow", Bench(), tmp_path / "r", SeamFake(), SeedVariantsMetaAgent(),
               progress=False, iterations=1)
    path = tmp_path / "r" / "records.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(["{not json", *lines[1:]]) + "\n")
    with pytest.raises(DataError, match="line 1"):
        run_search(_cfg(), "aflow", Bench(), tmp_path / "r", SeamFake(),
                   SeedVariantsMetaAgent(), resume=True, progress=False, iterations=1)


@pytest.mark.parametrize("method, kept", [
    ("adas", ["initial", "initial", "generation"]),  # 3 requests: the archive, one generation
    ("aflow", ["round"]),                             # round 1's 2 runs; round 2 needs 2 more
])
def test_budget_stop_keeps_records_and_writes_status_and_report(tmp_path, method, kept):
    ev = SeamFake(budget_requests=3)
    with pytest.raises(BudgetExceeded):
        run_search(_cfg(), method, Bench(), tmp_path / "r", ev, SeedVariantsMetaAgent(),
                   progress=False, iterations=3)
    rd = SearchDir(tmp_path / "r")
    assert [r["type"] for r in rd.read_records()] == kept
    assert json.loads(rd.status.read_text())["status"] == "budget"
    assert "Stopped (budget)" in rd.report.read_text() and not rd.final.exists()
    assert json.loads(rd.cost.read_text())["total_usd"] > 0
    assert not any(r.split == "test" for r in ev.requests)


def test_seam_is_validation_only_and_maps_failures():
    ev = SeamFake()
    seam = SeamEvaluate(ev)
    with pytest.raises(ValueError, match="validation-only"):
        seam(["def solver(agent, task):\n    return {}\n"], "gsm8k", "test")
    out = seam(["# acc=1.0", "# acc=0.0"], "gsm8k", seeds=[0, 3], limit=4)
    assert [o.accuracy for o in out] == [1.0, 0.0] and [r.seed for r in ev.requests] == [0, 3]


def test_simulated_meta_model_answers_aflow_prompts_with_untried_graphs():
    from w4s_ray.optimizers import aflow_graph as G
    from w4s_ray.optimizers.aflow import parse_reply
    from w4s_ray.optimizers.aflow_prompts import format_experience, optimize_prompt

    cand = G.initial_candidate("math", "A number.")
    tried = [{"round": 2, "modification": "answer_generate then format the final answer",
              "score": 0.4}]
    prompt = optimize_prompt(question_type="math", kind="math", answer_format="A number.",
                             experience=format_experience(1, 0.5, tried), score=0.5,
                             graph=cand.graph, prompts=G.prompt_source(cand.prompts),
                             operators=G.operator_description("math"), log="")
    seen = set()
    for seed in range(12):
        reply = SeedVariantsMetaAgent().generate([{"role": "user", "content": prompt}], 1,
                                                 seed=seed)[0]
        mod, graph, prompts = parse_reply(reply)
        G.check_candidate(graph, prompts, "math")
        seen.add(mod)
    assert "answer_generate then format the final answer" not in seen and len(seen) >= 2
