"""ADAS and AFlow end to end on the simulator: scripted meta models, the real workflow runtime
(sandbox children, HTTP to the simulator, scoring), a reduced search, and a resume that
replays from the records. Slow: a simulator process and a few dozen sandbox evaluations."""

from __future__ import annotations

import json

import pytest

from tests.optimizers.fakes import FnMeta
from tests.optimizers.inprocess import InProcessEvaluate
from w4s_ray.baselines import render_baseline
from w4s_ray.config import CacheConfig, EvalConfig, ExecutorConfig, SandboxConfig
from w4s_ray.optimizers.adas import AdasSearch, AdasSettings, AdasTask, best_entry
from w4s_ray.optimizers.aflow import AflowSearch, AflowSettings, AflowTask, best_round

pytestmark = pytest.mark.slow


@pytest.fixture
def evaluator(gsm8k, sim_server, tmp_path):
    cfg = ExecutorConfig(api_base=sim_server.url,
                         cache=CacheConfig(path=str(tmp_path / "cache.sqlite")))
    return lambda: InProcessEvaluate(gsm8k, cfg, SandboxConfig(item_timeout_s=60),
                                     EvalConfig(max_inflight_per_evaluator=8))


def test_adas_reduced_search_on_the_simulator(gsm8k, evaluator):
    sc = render_baseline("cot_sc", "math", gsm8k.answer_format)

    def fn(messages, seed):
        # Proposals: self-consistency with a seed-chosen sample count; the revised design
        # (after reflexion 2) crashes on every item, the repair drops the crash.
        n = 3 + 2 * (seed % 3)
        code = sc.replace("samples = 5", f"samples = {n}")
        if len(messages) == 6:
            code = code.replace("    samples = ", "    raise RuntimeError('boom')\n    samples = ")
        return json.dumps({"thought": f"vote over {n}", "name": f"SC-{n}", "code": code})

    task = AdasTask.from_benchmark(gsm8k, ["cot", "cot_sc"])
    s = AdasSettings(generations=2, valid_limit=6, bootstrap_samples=2000, run_id="e2e")
    records: list[dict] = []
    state = AdasSearch(task, s, FnMeta(fn), evaluator()).run([], records.append)
    assert [r["type"] for r in records] == ["initial", "initial", "generation", "generation"]
    assert all(r["status"] == "added" for r in records[2:])
    for gen in records[2:]:
        assert [s["step"] for s in gen["steps"]][-1] == "repair1"
        assert "RuntimeError: boom" in gen["messages"][-1]["content"]  # the traceback went back
        assert gen["evaluations"][0]["accuracy"] == 0.0
    assert len(state.archive) == 4 and 0 < best_entry(state)["accuracy"] <= 1
    assert all(r["outcome"]["cost_usd"] > 0 for r in records[:2])
    # Resume from the first three records: same final archive, served from the cache.
    rest: list[dict] = []
    AdasSearch(task, s, FnMeta(fn), evaluator()).run(records[:3], rest.append)
    def archive(recs):
        return [(r.get("name") or r["solution"]["name"], r["fitness"]) for r in recs]

    assert archive(records[:3] + rest) == archive(records)
    assert rest[0]["eval_cost_usd"] == 0.0  # every executor call replayed from the cache


def test_aflow_reduced_search_on_the_simulator(gsm8k, evaluator):
    graph = ("class Workflow(Operators):\n    def __call__(self, problem):\n"
             "        drafts = [self.answer_generate(input=problem)['answer'] "
             "for _ in range({k})]\n"
             "        return self.sc_ensemble(solutions=drafts, problem=problem)['response']\n")

    def fn(messages, seed):
        k = 2 + seed % 3
        return (f"<modification>ensemble of {k} answers</modification>"
                f"<graph>{graph.format(k=k)}</graph><prompt></prompt>")

    ev = evaluator()
    s = AflowSettings(max_rounds=2, validation_rounds=2, valid_limit=5, run_id="e2e")
    records: list[dict] = []
    state = AflowSearch(AflowTask.from_benchmark(gsm8k), s, FnMeta(fn), ev).run(
        [], records.append)
    assert [r["round"] for r in state.rounds] == [1, 2, 3]
    assert all(len(r["scores"]) == 2 and r["runs"][0]["error"] is None for r in state.rounds)
    assert best_round(state)["score"] > 0
    assert {split for split, _, _ in ev.requests} == {"valid"}
    assert {seed for _, seed, limit in ev.requests if limit == 5} == {0, 1}
