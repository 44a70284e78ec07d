"""Every baseline evaluated through the workflow runtime (sandbox child, scoring in the parent)
on a few validation items of one benchmark per family.

Fast tests use `OracleLM` (answers correctly, records requests) to check that each workflow
runs cleanly, returns its answer in a scoreable form and makes the calls its method
prescribes (count, temperature, samples, roles). The slow test runs them against the
simulator over HTTP and requires a score above 0 with no item errors.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.baselines.oracle import OracleLM
from w4s_ray.baselines import BASELINES, FAMILIES, FAMILY_VALUES, render_baseline
from w4s_ray.workflow.evaluate import EvalRequest, evaluate

ITEMS = 2


def run(code, bm, lm, sandbox_cfg, eval_cfg, limit=ITEMS):
    req = EvalRequest(code=code, benchmark=bm.name, split="valid", limit=limit)
    return asyncio.run(evaluate(req, bm, lm, sandbox_cfg, eval_cfg))


def n_roles(family: str) -> int:
    return len(FAMILY_VALUES[family]["DEBATE_ROLES"].split("|"))


# calls per item with a critic that accepts the first answer
EXPECTED_CALLS = {
    "cot": lambda f: 1,
    "cot_sc": lambda f: 2 if f == "reading" else 1,
    "self_refine": lambda f: 2,
    "llm_debate": lambda f: 2 * n_roles(f) + 1,
    "step_back": lambda f: 2,
    "quality_diversity": lambda f: 5,
    "role_assignment": lambda f: 2,
}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", list(BASELINES))
def test_baseline_runs_and_makes_its_calls(name, family, family_benchmarks, sandbox_cfg,
                                           eval_cfg):
    bm = family_benchmarks[family]
    lm = OracleLM([bm])
    res = run(render_baseline(name, bm.kind, bm.answer_format), bm, lm, sandbox_cfg, eval_cfg)
    assert res.errors == {} and res.error is None, res.item_errors
    assert res.accuracy == 1.0, (res.answers, res.item_ids)
    reqs = lm.requests
    assert len(reqs) == ITEMS * EXPECTED_CALLS[name](family)
    temps = sorted({r["temperature"] for r in reqs})
    if name == "cot_sc":
        assert [r["n"] for r in reqs if r["temperature"] == 0.8] == [5] * ITEMS
        assert temps == ([0.1, 0.8] if family == "reading" else [0.8])
    elif name in ("llm_debate", "quality_diversity"):
        assert temps == ([0.1, 0.8] if name == "llm_debate" else [0.1, 0.5])
        finals = [r for r in reqs if r["temperature"] == 0.1]
        assert len(finals) == ITEMS
    else:
        assert temps == [0.5] and {r["n"] for r in reqs} == {1}
    # Every call shows the task and asks for JSON keys, the answer key of the family included.
    key = FAMILY_VALUES[family]["ANSWER_KEY"]
    asks = [r["messages"][0]["content"] for r in reqs]
    assert sum(f"'{key}'" in a for a in asks) >= ITEMS
    assert all(r["messages"][-1]["content"].startswith("# Your Task:\n") for r in reqs)


def test_debaters_play_their_roles_and_see_each_other(family_benchmarks, sandbox_cfg,
                                                      eval_cfg):
    bm = family_benchmarks["math"]
    lm = OracleLM([bm])
    run(render_baseline("llm_debate", bm.kind, bm.answer_format), bm, lm, sandbox_cfg,
        eval_cfg, limit=1)
    systems = [r["messages"][0]["content"] for r in lm.requests]
    for role in ("Math Professor", "Grade School Teacher", "Math Enthusiast"):
        assert sum(s.startswith(f"You are a helpful {role}.") for s in systems) == 2
    second_round = [r["messages"][-1]["content"] for r in lm.requests[3:6]]
    assert all("(yourself)" in m and m.count("### thinking of") == 3 for m in second_round)


def test_self_refine_stops_after_five_critiques(family_benchmarks, sandbox_cfg, eval_cfg):
    bm = family_benchmarks["math"]
    lm = OracleLM([bm], verdict="False")
    res = run(render_baseline("self_refine", bm.kind, bm.answer_format), bm, lm, sandbox_cfg,
              eval_cfg, limit=1)
    assert res.errors == {}
    assert len(lm.requests) == 1 + 5 * 2
    last = lm.requests[-1]["messages"][-1]["content"]
    assert last.count("### feedback #") == 5  # every critique is kept in the context


def test_role_assignment_routes_to_the_chosen_expert(family_benchmarks, sandbox_cfg, eval_cfg):
    bm = family_benchmarks["math"]
    for choice, role in (("The Grade School Teacher.", "Grade School Teacher"),
                         ("someone else", "Assistant")):
        lm = OracleLM([bm], choice=choice)
        run(render_baseline("role_assignment", bm.kind, bm.answer_format), bm, lm,
            sandbox_cfg, eval_cfg, limit=1)
        router, expert = (r["messages"][0]["content"] for r in lm.requests)
        assert "['choice']" in router
        assert expert.startswith(f"You are a helpful {role}.")


def test_cot_sc_votes_for_the_majority(family_benchmarks, sandbox_cfg, eval_cfg):
    bm = family_benchmarks["math"]
    item = bm.load("valid")[0]
    wrong = str(int(item.meta["gold_value"]) + 1)

    def reply(msgs, t, j, occ):  # samples 0 and 3 wrong, three right (one written "N.0")
        gold = str(int(item.meta["gold_value"]))
        answer = {0: wrong, 3: wrong, 4: gold + ".0"}.get(j, gold)
        return json.dumps({"thinking": "t", "answer": answer})

    from tests.workflow.fake_lm import FakeLM

    res = run(render_baseline("cot_sc", bm.kind, bm.answer_format), bm, FakeLM(reply),
              sandbox_cfg, eval_cfg, limit=1)
    assert res.scores == [1.0]


@pytest.fixture(scope="module")
def full_sim(data_dir):
    """The simulator over every benchmark on a free port (module scope: indexing takes s)."""
    from w4s_ray.config import SimConfig
    from w4s_ray.executor.sim.launch import start_sim

    handle = start_sim(SimConfig(latency="none"), data_dir, port=0)
    yield handle
    handle.stop()


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_every_baseline_scores_above_zero_on_the_simulator(family, family_benchmarks, full_sim,
                                                           tmp_path, sandbox_cfg, eval_cfg):
    from w4s_ray.config import CacheConfig, ExecutorConfig
    from w4s_ray.executor.client import ExecutorClient

    bm = family_benchmarks[family]
    cfg = ExecutorConfig(api_base=full_sim.url, cache=CacheConfig(path=str(tmp_path / "c.db")))
    for name in BASELINES:
        code = render_baseline(name, bm.kind, bm.answer_format)
        with ExecutorClient(cfg) as client:
            res = run(code, bm, client, sandbox_cfg, eval_cfg, limit=4)
        # never print items (GPQA must not reach logs; these benchmarks are fine, but keep it)
        assert res.n == 4 and res.errors == {} and res.error is None, (name, res.item_errors)
        assert res.accuracy > 0, (name, res.scores)
        assert res.calls >= 4 and res.cost_usd > 0
