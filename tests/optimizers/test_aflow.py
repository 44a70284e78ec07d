"""AFlow search loop: selection, expansion with experience, evaluation, convergence, resume.
Scripted optimizer models and a fake evaluator (no Ray, no executor)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from tests.optimizers.fakes import FakeEvaluate, FnMeta, drop_timing
from w4s_ray.errors import BudgetExceeded, ConfigError, DataError
from w4s_ray.optimizers.aflow import (
    AflowSearch,
    AflowSettings,
    AflowTask,
    best_round,
    check_convergence,
    parse_reply,
    select_parent,
    selection_probabilities,
    state_after,
    top_rounds,
)

TASK = AflowTask("gsm8k", "math", "A single number.")
PROMPT = 'SOLVE_PROMPT = """Solve the problem step by step."""'


def graph(acc: float, *extra: str) -> str:
    lines = ["class Workflow(Operators):", "    def __call__(self, problem):",
             f"        # acc={acc}"] + [f"        # {e}" for e in extra] + [
             "        r = self.custom(input=problem, instruction=prompt_custom.SOLVE_PROMPT)",
             "        return r['response']"]
    return "\n".join(lines) + "\n"


def reply(modification: str, graph_src: str, prompt: str = PROMPT) -> str:
    return (f"Idea: {modification}.\n<modification>{modification}</modification>\n"
            f"<graph>\n{graph_src}</graph>\n<prompt>\n{prompt}\n</prompt>")


def settings(**kw) -> AflowSettings:
    return AflowSettings(**{"max_rounds": 4, "validation_rounds": 3, **kw})


def seeded_optimizer(acc=lambda seed: round(0.2 + (seed % 7) / 10, 2)) -> FnMeta:
    return FnMeta(lambda messages, seed: reply(f"change {seed % 10_000}", graph(acc(seed))))


def run(search: AflowSearch, records=()) -> list[dict]:
    out: list[dict] = []
    search.run(list(records), out.append)
    return out


def rounds(scores: list[float]) -> list[dict]:
    return [{"round": i + 1, "score": s} for i, s in enumerate(scores)]


# -- selection ---------------------------------------------------------------------------------

def test_selection_probabilities_match_the_formula_on_a_worked_example():
    scores = [0.80, 0.75, 0.70, 0.50]
    # By hand: softmax of 0.2 * (100 * score - 80) = exp(0), exp(-1), exp(-2), exp(-6) ...
    w = [math.exp(0), math.exp(-1), math.exp(-2), math.exp(-6)]
    expected = [0.3 * 0.25 + 0.7 * x / sum(w) for x in w]
    got = selection_probabilities(scores, alpha=0.2, lambda_=0.3)
    assert got == pytest.approx(expected, abs=1e-12)
    assert got == pytest.approx([0.5399, 0.2460, 0.1379, 0.0762], abs=1e-4)
    assert selection_probabilities(scores, lambda_=1.0) == pytest.approx([0.25] * 4)
    assert selection_probabilities([0.5, 0.5]) == pytest.approx([0.5, 0.5])


def test_parent_is_drawn_from_the_top_sample_rounds_with_those_probabilities():
    rs = rounds([0.40, 0.80, 0.10, 0.75, 0.70, 0.50])
    s = AflowSettings(sample=4)
    assert [r["round"] for r in top_rounds(rs, 4)] == [2, 4, 5, 6]
    rng = np.random.default_rng(0)
    draws = [select_parent(rs, s, rng)[0]["round"] for _ in range(6000)]
    freq = [draws.count(r) / len(draws) for r in (2, 4, 5, 6)]
    assert freq == pytest.approx([0.5399, 0.2460, 0.1379, 0.0762], abs=0.02)
    assert 1 not in draws and 3 not in draws
    _, info = select_parent(rs, s, np.random.default_rng(1))
    assert info["candidates"] == [[2, 0.8], [4, 0.75], [5, 0.7], [6, 0.5]]


# -- convergence -------------------------------------------------------------------------------

def test_convergence_after_five_rounds_without_change_of_the_top3_mean():
    means = [0.5, 0.6, 0.7, 0.8] + [0.1] * 5  # Y: .5 .55 .6 .7 then .7 five times
    per_round = [[m, m] for m in means]
    assert check_convergence(per_round[:8]) == (False, None, None)
    assert check_convergence(per_round) == (True, 4, 8)
    # A new top-3 entry moves Y and resets the count (z = 0: any change counts).
    again = per_round[:7] + [[0.9, 0.9]] + [[0.1, 0.1]] * 4
    assert check_convergence(again)[0] is False
    assert check_convergence(again + [[0.1, 0.1]]) == (True, 8, 12)
    assert check_convergence(per_round[:3], top_k=3) == (False, None, None)  # < k + 1 rounds


def test_convergence_tolerates_changes_within_z_standard_errors():
    # Round means .6 .65 .7 .1 .72, each (but the 4th) with std .1. By hand, top-3 mean Y:
    # .6, .625, .65, .65, .69; sigma_Y = sqrt(sum std^2) / 3: .033, .047, .058, .058, .058.
    noisy = [[0.5, 0.7], [0.55, 0.75], [0.6, 0.8], [0.1, 0.1], [0.62, 0.82]]
    # z = 0: only round 4 (Y unchanged) is stable, so one such round is the longest streak.
    assert check_convergence(noisy, top_k=3, z=0.0, consecutive=1) == (True, 3, 3)
    assert check_convergence(noisy, top_k=3, z=0.0, consecutive=2) == (False, None, None)
    # z = 1: moves of .025 are within 1 * sqrt(.047^2 + .033^2) = .058 (and .075): stable
    # from round 2 on.
    assert check_convergence(noisy, top_k=3, z=1.0, consecutive=2) == (True, 1, 2)


def test_search_stops_at_convergence():
    # Every expansion is worse than round 1, so the top-3 mean stops moving after round 3.
    meta = seeded_optimizer(acc=lambda seed: 0.1)
    s = settings(max_rounds=20)
    state = AflowSearch(TASK, s, meta, FakeEvaluate(default_acc=0.6)).run([], lambda r: None)
    assert state.converged and state.convergence == (3, 7)
    assert len(state.rounds) == 8 < s.max_rounds + 1
    unbounded = settings(max_rounds=9, check_convergence=False)
    state = AflowSearch(TASK, unbounded, seeded_optimizer(acc=lambda seed: 0.1),
                        FakeEvaluate(default_acc=0.6)).run([], lambda r: None)
    assert len(state.rounds) == 10  # round 1 + max_rounds


# -- rounds ------------------------------------------------------------------------------------

def test_every_candidate_is_evaluated_validation_rounds_times_and_averaged():
    ev = FakeEvaluate(default_acc=0.5)
    records = run(AflowSearch(TASK, settings(max_rounds=1, validation_rounds=5),
                              seeded_optimizer(), ev))
    r1, r2 = records
    full = [c for c in ev.calls if c["limit"] is None]
    assert [len(c["codes"]) for c in full] == [5, 5]
    assert all(c["seeds"] == [0, 1, 2, 3, 4] and len(set(c["codes"])) == 1 for c in full)
    assert {c["split"] for c in ev.calls} == {"valid"}
    for r in (r1, r2):
        assert len(r["scores"]) == 5 and r["score"] == pytest.approx(np.mean(r["scores"]))
    assert len(set(r1["scores"])) > 1  # different sample seeds, different runs
    # The dry run before the full evaluation: one item.
    dry = [c for c in ev.calls if c["limit"] == 1]
    assert len(dry) == 1 and dry[0]["codes"] == full[1]["codes"][:1]
    assert r1["round"] == 1 and r1["parent"] is None and "custom(" in r1["graph"]
    assert r2["parent"] == 1 and r2["modification"].startswith("change ")


def test_expansion_prompt_carries_parent_score_experience_and_failures():
    mods = iter(["add a review step", "ensemble three answers"])
    meta = FnMeta(lambda messages, seed: reply(next(mods), graph(0.1)))
    s = settings(max_rounds=2, sample=1)  # sample=1: the parent is always the best round
    records = run(AflowSearch(TASK, s, meta, FakeEvaluate(default_acc=0.6)))
    first, second = (m[0]["content"] for m, _ in meta.requests)
    r1 = records[0]
    assert r1["graph"].strip() in first and r1["graph"].strip() in second
    assert f"<score>{r1['score']:.4f}</score>" in second
    assert "No modification of this graph (round 1) has been tried yet." in first
    assert re.search(r"- add a review step \(score 0\.\d{4}, did not improve\)", second)
    assert "do NOT repeat" in second
    assert "failures: item 3 answered 7" in second  # the parent's validation failures
    assert "self.programmer(problem: str" in second  # math operators are described
    assert "A single number." in second


def test_duplicate_and_invalid_expansions_are_rejected_and_redrawn():
    replies = iter([
        reply("add a review step", graph(0.1)),                      # round 2
        reply("Add a review  step", graph(0.7)),                     # duplicate of round 2
        "I would change the prompt.",                                # no graph
        reply("go async", graph(0.7).replace("def __call__", "async def __call__")),
        reply("new prompt", graph(0.7).replace("SOLVE_PROMPT", "OTHER_PROMPT")),
        reply("crashy", graph(0.7, "itemfail")),                     # dry run fails
        reply("ensemble", graph(0.7)),
    ])
    meta = FnMeta(lambda messages, seed: next(replies))
    records = run(AflowSearch(TASK, settings(max_rounds=2, sample=1), meta,
                              FakeEvaluate(default_acc=0.6)))
    r3 = records[2]
    assert r3["modification"] == "ensemble" and r3["attempts"] == 6
    reasons = [x["reason"] for x in r3["rejections"]]
    assert reasons[0].startswith("duplicate modification of round 1")
    assert reasons[1] == "the reply has no <graph>...</graph>"
    assert "plain def" in reasons[2]
    assert "prompt_custom.OTHER_PROMPT" in reasons[3]
    assert reasons[4].startswith("dry run failed: exception: KeyError")
    assert len({x["seed"] for x in r3["rejections"]}) == 5  # each attempt asks anew


def test_round_is_skipped_after_max_generation_retries():
    meta = FnMeta(lambda messages, seed: "no tags at all")
    ev = FakeEvaluate(default_acc=0.5)
    records = run(AflowSearch(TASK, settings(max_rounds=2, max_generation_retries=3), meta, ev))
    assert [r["type"] for r in records] == ["round", "skipped", "skipped"]
    assert [r["round"] for r in records] == [1, 2, 3]
    assert len(records[1]["rejections"]) == 3
    state = state_after(records)
    assert state.skipped == [2, 3] and state.next_round == 4 and len(state.rounds) == 1
    assert best_round(state)["round"] == 1


def test_resume_after_a_kill_equals_the_uninterrupted_run():
    def fresh():
        return AflowSearch(TASK, settings(max_rounds=5), seeded_optimizer(),
                           FakeEvaluate(default_acc=0.5))

    full = run(fresh())
    assert len(full) == 6
    for kill_after in (1, 2, 4):
        persisted: list[dict] = []

        def on_record(rec, persisted=persisted, kill_after=kill_after):
            if len(persisted) == kill_after:
                raise KeyboardInterrupt
            persisted.append(rec)

        with pytest.raises(KeyboardInterrupt):
            fresh().run([], on_record)
        rest = run(fresh(), persisted)
        assert drop_timing(persisted + rest) == drop_timing(full), kill_after


def test_budget_stop_keeps_finished_rounds():
    ev = FakeEvaluate(default_acc=0.5, budget_calls=3 + 1 + 3)  # rounds 1 and 2 only
    persisted: list[dict] = []
    with pytest.raises(BudgetExceeded):
        AflowSearch(TASK, settings(), seeded_optimizer(), ev).run([], persisted.append)
    assert [r["round"] for r in persisted] == [1, 2]
    rest = run(AflowSearch(TASK, settings(), seeded_optimizer(), FakeEvaluate(default_acc=0.5)),
               persisted)
    assert [r["round"] for r in rest] == [3, 4, 5]


def test_state_after_rejects_inconsistent_records():
    records = run(AflowSearch(TASK, settings(max_rounds=2), seeded_optimizer(),
                              FakeEvaluate(default_acc=0.5)))
    with pytest.raises(DataError, match="jump from 2 to 3"):
        state_after([records[0], records[2]])
    with pytest.raises(DataError, match="round 1 must be"):
        state_after([{**records[0], "type": "skipped"}])
    with pytest.raises(DataError, match="unknown record type"):
        state_after([{"type": "other", "round": 1}])


def test_parse_reply_takes_the_last_tags():
    text = ("<graph>echo</graph> my answer: <modification> m </modification>"
            "<graph>\n```python\nclass Workflow(Operators): pass\n```\n</graph>")
    mod, g, p = parse_reply(text)
    assert mod == "m" and g.startswith("```python") and p == ""
    with pytest.raises(ValueError):
        parse_reply("<modification>m</modification>")


def test_settings_are_validated():
    with pytest.raises(ConfigError, match="validation_rounds"):
        AflowSettings(validation_rounds=0)
    with pytest.raises(ConfigError, match="lambda"):
        AflowSettings(lambda_=1.5)
