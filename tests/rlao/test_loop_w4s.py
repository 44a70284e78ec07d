"""The w4s turn loop (`rlao.protocol: w4s`, the default) on a fake evaluator: the trajectory
chat and its resets, repairs on any exception with upstream's repair chat, spliced actions,
dropped candidates, re-sampled turns, replay, and an optimize run whose every logged reward
equals upstream's computation from the logged accuracies."""

from __future__ import annotations

import json

import pytest

from tests.rlao.fakes import FakeEvaluator, reply, workflow
from tests.rlao.upstream_reference import upstream_rewards
from w4s_ray.config import PaperFigure, RLAOConfig, load_config
from w4s_ray.meta_agent.base import MetaAgent
from w4s_ray.meta_agent.scripted import ScriptedMetaAgent
from w4s_ray.rlao import w4s
from w4s_ray.rlao.loop import Episode, TaskSpec, derive_seed
from w4s_ray.rlao.optimize import optimize
from w4s_ray.rlao.trajectories import COLUMNS, read_rows, to_table

SPEC = TaskSpec("gsm8k", "math", "Grade-school math.", "a number",
                {"CoT": workflow(0.4), "SC": workflow(0.5, calls=3)})


class TurnScript(MetaAgent):
    """Replies per call, in order; records what it was asked."""

    name = "turn-script"

    def __init__(self, calls):
        super().__init__()
        self.calls = list(calls)
        self.seen: list[tuple[list[dict], int, int | None]] = []

    def generate(self, messages, n, *, seed=None):
        self.seen.append((messages, n, seed))
        return self.calls.pop(0)[:n]


def _episode(agent, ev=None, **kw):
    rlao = RLAOConfig(**{"candidates": 3, **kw})
    ep = Episode(SPEC, rlao, "gsm8k-e00", ev or FakeEvaluator(), agent)
    ep.start(ep.evaluate_seeds())
    return ep


def test_trajectory_chat_grows_then_resets_to_the_archive():
    agent = TurnScript([[reply(0.6), reply(0.8), reply(0.7)], [reply(0.5)] * 3,
                        [reply(0.9)] * 3])
    ep = _episode(agent)
    r0 = ep.run_turn()
    r1 = ep.run_turn()
    r2 = ep.run_turn()
    m0, m1, m2 = (json.loads(r.rows[0]["prompt_messages"]) for r in (r0, r1, r2))
    assert [m["role"] for m in m0] == ["system", "user"]
    # Within the trajectory: the chosen (spliced) reply and its observation are appended.
    assert [m["role"] for m in m1] == ["system", "user", "assistant", "user"]
    assert m1[:2] == m0 and m1[2]["content"] == r0.rows[1]["action"]
    assert "# acc=0.8" in m1[2]["content"]
    assert "evaluation feedback" in m1[3]["content"]
    # The observation compares with the trajectory's frozen best (the best example).
    best_example = max(e.val_accuracy for e in ep.state.examples)
    assert f"from {best_example:.2f} to" in m1[3]["content"]
    # Turn 2 starts a new trajectory: a fresh chat over examples + the last generated workflow.
    assert [m["role"] for m in m2] == ["system", "user"]
    archive = m2[1]["content"]
    assert archive.count('"feedback"') == 1  # only the last entry carries feedback
    assert '"name": "turn 2 candidate 0"' in archive and '"name": "turn 1 candidate 1"' not in archive
    assert [r["trajectory"] for r in (r0.rows[0], r1.rows[0], r2.rows[0])] == [0, 0, 1]
    assert all(r["protocol"] == "w4s" for r in r0.rows)
    assert set(r0.rows[0]) == set(COLUMNS)
    to_table(r0.rows + r1.rows + r2.rows)


def test_any_exception_is_repaired_with_upstreams_chat_and_the_fix_is_spliced():
    original = "My analysis: divide.\n```python\n" + workflow(0.7, "crash") + "```\nDone."
    fixed = reply(0.7, analysis="Removed the division.")
    agent = TurnScript([[original, reply(0.5), reply(0.6)], [fixed]])
    ep = _episode(agent)
    res = ep.run_turn()
    r0 = res.rows[0]
    assert r0["repair_count"] == 1 and r0["valid"] and not r0["dropped"]
    # The stored action is the ORIGINAL reply with the repaired code spliced in.
    assert r0["action"].startswith("My analysis: divide.") and r0["action"].endswith("Done.")
    assert "# crash" not in r0["action"] and "# acc=0.7" in r0["action"]
    assert r0["code"] in r0["action"]
    # The repair chat: the turn's last user message, the reply, the error with the
    # no-try/except instruction; one reply asked for.
    chat, n, _ = agent.seen[1]
    assert n == 1 and [m["role"] for m in chat] == ["user", "assistant", "user"]
    assert chat[0] == json.loads(r0["prompt_messages"])[-1]
    assert chat[1]["content"] == original
    assert "ZeroDivisionError: division by zero" in chat[2]["content"]
    assert "try/except" in chat[2]["content"] and "root cause" in chat[2]["content"]
    assert "Failing line 3 of your workflow: `x = 1 / 0`" in chat[2]["content"]


def test_repairs_are_bounded_then_the_candidate_is_dropped():
    still = reply(0.7, "crash")
    agent = TurnScript([[still, reply(0.5), "no code at all"], [still], ["no code"],
                        [still], ["still none"]])
    ep = _episode(agent, max_repairs=2)
    res = ep.run_turn()
    r0, r2 = res.rows[0], res.rows[2]
    assert r0["repair_count"] == 2 and r0["dropped"] and not r0["valid"]
    assert r0["reward"] is None and r0["error"].startswith("dropped after 2 repair(s)")
    # A reply without code is repaired too (upstream's extraction raises into its debug loop).
    assert r2["repair_count"] == 2 and r2["dropped"] and r2["code"] is None
    assert res.rows[1]["chosen"] and res.rows[1]["reward"] is not None
    # The repair chat grows with each round.
    assert [len(chat) for chat, _, _ in agent.seen[1:]] == [3, 3, 5, 5]


def test_low_accuracy_candidates_are_dropped_but_logged():
    agent = TurnScript([[reply(0.02), reply(0.6), reply(0.0)]])
    ep = _episode(agent)
    res = ep.run_turn()
    assert [r["dropped"] for r in res.rows] == [True, False, True]
    assert res.rows[0]["val_accuracy"] is not None and res.rows[0]["val_accuracy"] <= 0.05
    assert res.rows[0]["reward"] is None and "<= 0.05" in res.rows[0]["error"]
    assert res.metrics["dropped"] == 2 and res.metrics["valid"] == 1


def test_a_turn_whose_candidates_all_fail_is_resampled_then_stops():
    bad = [reply(0.01)] * 3
    agent = TurnScript([list(bad), [reply(0.02), reply(0.6), reply(0.01)]])
    ep = _episode(agent)
    res = ep.run_turn()
    assert [r["attempt"] for r in res.rows] == [0, 0, 0, 1, 1, 1]
    assert [r["candidate"] for r in res.rows] == list(range(6))
    assert res.rows[4]["chosen"] and res.metrics["attempts"] == 2
    seeds = [s for _, _, s in agent.seen]
    assert seeds[0] == derive_seed(0, "w4s", "gsm8k-e00", 0)
    assert seeds[1] == derive_seed(0, "w4s", "gsm8k-e00", 0, "attempt", 1)
    # Three failed attempts: the run stops with a clear error; the state is untouched.
    agent2 = TurnScript([list(bad)] * 3)
    ep2 = _episode(agent2)
    before = ep2.state
    with pytest.raises(w4s.TurnFailed, match="all 9 candidates of 3 attempt"):
        ep2.run_turn()
    assert ep2.state is before


def test_replay_rebuilds_the_same_state():
    # Turn 0: a drop by accuracy, a survivor, a reply repaired twice then dropped. Turn 1: a
    # failed attempt, then a good one. Turn 2: a new trajectory.
    script = [[reply(0.01), reply(0.6), "x"], ["x"], ["x"], [reply(0.02)] * 3,
              [reply(0.9), reply(0.2), reply(0.7)], [reply(0.3)] * 3]
    ep = _episode(TurnScript([list(t) for t in script]))
    rows = []
    for _ in range(3):
        rows += ep.run_turn().rows
    fresh = Episode(SPEC, ep.rlao, "gsm8k-e00", FakeEvaluator(), TurnScript([]))
    fresh.start(fresh.evaluate_seeds())
    fresh.replay(list(reversed(rows)))
    assert fresh.state == ep.state


def test_validation_noise_items_are_requested_when_set():
    ev = FakeEvaluator()
    ep = Episode(SPEC, RLAOConfig(candidates=2), "gsm8k-e00", ev,
                 TurnScript([[reply(0.6)] * 2]), extra_items=10)
    ep.start(ep.evaluate_seeds())
    ep.run_turn()
    assert all(j.extra_items == 10 for call in ev.evaluate_calls for j in call)


def _cfg(**over):
    sets = [f"{k}={v}" for k, v in {"rlao.candidates": 4, "rlao.turns": 5, **over}.items()]
    return load_config(None, sets)


@pytest.mark.parametrize("reward", ["w4s", "continuous"])
def test_optimize_logged_rewards_equal_upstreams_from_logged_accuracies(tmp_path, reward):
    """Acceptance: a scripted meta-agent whose candidates beat the examples; every reward in
    the trajectory rows equals upstream's computation from the accuracies in the rows."""
    replies = [reply(a) for a in (0.45, 0.55, 0.62, 0.7, 0.78, 0.86, 0.93, 0.3, 0.02)]
    replies += ["no code here", reply(0.8, "crash")]
    d = tmp_path / "run"
    cfg = _cfg(**{"rlao.reward": reward})
    cfg.paper = [PaperFigure(benchmark="gsm8k", value=86.5, executor="gpt-3.5-turbo"),
                 PaperFigure(benchmark="gsm_hard", value=61.8)]
    optimize(cfg, SPEC, d, FakeEvaluator(), ScriptedMetaAgent(replies), progress=False)
    rows = read_rows(d / "trajectories")
    seeds = json.loads((d / "seeds" / "gsm8k.json").read_text())
    turns = sorted({r["turn"] for r in rows})
    assert turns == [1, 2, 3, 4, 5]  # seeds are turn 0
    by_turn = [[r for r in rows if r["turn"] == t] for t in turns]
    # Upstream sees the surviving candidates of the attempt that produced some.
    last_attempt = [[r for r in grp if r["attempt"] == max(x["attempt"] for x in grp)]
                    for grp in by_turn]
    accs = [[None if r["dropped"] and r["val_accuracy"] is None else r["val_accuracy"]
             for r in grp] for grp in last_attempt]
    want, want_chosen = upstream_rewards(
        [s["val_accuracy"] for s in seeds], accs, window=2,
        reward_type="continuous" if reward == "continuous" else "discrete")
    got = [[r["reward"] for r in grp if not r["dropped"]] for grp in last_attempt]
    assert got == [pytest.approx(w) for w in want]
    assert [next(i for i, r in enumerate(g) if r["chosen"]) for g in last_attempt] == want_chosen
    assert all(r["reward"] is None for r in rows if r["dropped"])
    # The candidates do beat the examples (positive rewards after the first turn).
    assert any(r["reward"] is not None and r["reward"] > 0 for r in rows if r["turn"] > 1)
    final = json.loads((d / "final.json").read_text())
    assert final["protocol"] == "w4s" and final["test_ci95"]["low"] <= final["test_accuracy"]
    assert final["test_ci95"]["high"] >= final["test_accuracy"]
    # The paper's figure for THIS benchmark only, printed next to the measured one.
    assert [(f["benchmark"], f["value"]) for f in final["paper"]] == [("gsm8k", 86.5)]
    report = (d / "report.md").read_text()
    assert "## Paper vs measured" in report
    row = next(x for x in report.splitlines() if x.startswith("| gsm8k | accuracy | 86.5 |"))
    assert f"{100 * final['test_accuracy']:.1f} (" in row and "gsm_hard" not in report
