"""The w4s-ray turn loop (`rlao.protocol: w4s-ray`) against a fake evaluator: turns, self-check
repairs, failures, rows, replay, budget, racing. The default protocol: test_loop_w4s.py."""

from __future__ import annotations

import pytest

from tests.rlao.fakes import FakeEvaluator, reply, workflow
from w4s_ray.config import RacingConfig, RLAOConfig
from w4s_ray.errors import BudgetExceeded
from w4s_ray.meta_agent.base import MetaAgent
from w4s_ray.meta_agent.scripted import ScriptedMetaAgent
from w4s_ray.rlao.loop import Episode, TaskSpec, derive_seed
from w4s_ray.rlao.trajectories import COLUMNS, to_table

SPEC = TaskSpec("gsm8k", "math", "Grade-school math.", "a number",
                {"CoT": workflow(0.4), "SC": workflow(0.5, calls=5)})


class TurnScript(MetaAgent):
    """Replies per call, in order; records what it was asked."""

    name = "turn-script"

    def __init__(self, calls: list[list[str]]):
        super().__init__()
        self.calls = list(calls)
        self.seen: list[tuple[list[dict], int, int | None]] = []

    def generate(self, messages, n, *, seed=None):
        self.seen.append((messages, n, seed))
        return self.calls.pop(0)[:n]


def _episode(agent, ev=None, **kw):
    rlao = RLAOConfig(**{"protocol": "w4s-ray", "candidates": 3, "max_repairs": 2, **kw})
    ep = Episode(SPEC, rlao, "gsm8k-e00", ev or FakeEvaluator(), agent)
    ep.start(ep.evaluate_seeds())
    return ep


def test_turn_rows_rewards_and_one_concurrent_evaluation():
    ev = FakeEvaluator()
    agent = TurnScript([[reply(0.6), reply(0.8), reply(0.15)]])
    ep = _episode(agent, ev)
    seeds_acc = ep.state.best_accuracy
    n_eval_before = len(ev.evaluate_calls)
    res = ep.run_turn()
    assert len(ev.evaluate_calls) == n_eval_before + 1  # all survivors in ONE call
    assert len(ev.evaluate_calls[-1]) == 3
    assert [r["candidate"] for r in res.rows] == [0, 1, 2]
    assert all(r["valid"] for r in res.rows)
    accs = [r["val_accuracy"] for r in res.rows]
    assert accs[1] > seeds_acc > accs[2]
    assert [r["chosen"] for r in res.rows] == [False, True, False]
    assert res.rows[1]["reward"] == 1.0
    assert res.rows[2]["reward"] == pytest.approx(-0.1)  # worse and below 0.3
    assert {r["seed"] for r in res.rows} == {agent.seen[0][2] + i for i in range(3)}
    assert agent.seen[0][2] == derive_seed(0, "w4s", "gsm8k-e00", 0)
    assert set(res.rows[0]) == set(COLUMNS)
    to_table(res.rows)  # matches the Arrow schema
    assert ep.state.turn == 1 and ep.state.best_accuracy == accs[1]
    assert res.metrics["valid"] == 3 and res.metrics["best_val_accuracy"] == accs[1]
    assert res.metrics["calls"] == sum(r["eval_calls"] for r in res.rows) > 0


def test_no_code_from_every_candidate_is_a_clear_failed_turn():
    ev = FakeEvaluator()
    agent = TurnScript([["I would use voting."] * 3, [reply(0.9)] * 3])
    ep = _episode(agent, ev)
    n_eval = len(ev.evaluate_calls)
    res = ep.run_turn()
    assert len(ev.evaluate_calls) == n_eval  # nothing to evaluate
    assert [n for _, n, _ in agent.seen] == [3]  # a reply without any code block is final
    assert all(not r["valid"] and r["error"].startswith("no code") for r in res.rows)
    assert all(r["code"] is None and r["val_accuracy"] is None for r in res.rows)
    assert res.chosen is None and res.metrics["valid"] == 0
    assert ep.state.turn == 1 and ep.state.history == ()
    # The next prompt says what went wrong; the next turn works normally.
    res2 = ep.run_turn()
    assert [n for _, n, _ in agent.seen] == [3, 3]  # no repair request in between
    assert "could be evaluated" in agent.seen[1][0][-1]["content"]
    assert res2.chosen == 0 and ep.state.last_failure is None


def test_self_check_failure_is_repaired_by_the_meta_agent():
    ev = FakeEvaluator()
    fixed = reply(0.7, analysis="Fixed the division.")
    agent = TurnScript([[reply(0.7, "crash"), reply(0.5), reply(0.6)], [fixed]])
    ep = _episode(agent, ev)
    res = ep.run_turn()
    r0 = res.rows[0]
    assert r0["repair_count"] == 1 and r0["valid"] and r0["action"] == fixed
    assert "crash" not in r0["code"]
    assert agent.seen[1][1] == 1  # a repair asks for one reply
    # The repair prompt is built from the structured failure the self-check returned.
    repair = agent.seen[1][0][-1]["content"]
    assert "ZeroDivisionError: division by zero" in repair
    assert "Failing line 3 of your workflow: `x = 1 / 0`" in repair
    assert "# crash" in repair and "def solver(agent, task):" in repair  # the failed workflow
    assert res.rows[0]["chosen"]


def test_repairs_are_bounded():
    ev = FakeEvaluator()
    still = reply(0.7, "crash")
    agent = TurnScript([[still, reply(0.5), "no code"], [still], [still]])
    ep = _episode(agent, ev, max_repairs=2)
    res = ep.run_turn()
    r0 = res.rows[0]
    assert r0["repair_count"] == 2 and not r0["valid"]
    assert r0["error"].startswith("self-check failed after 2 repair(s)")
    assert res.rows[1]["chosen"] and not res.rows[2]["valid"]


def test_syntax_error_goes_to_repair():
    agent = TurnScript([["```python\ndef solver(agent, task)\n    pass\n```", reply(0.2),
                         reply(0.2)], [reply(0.9)]])
    ep = _episode(agent)
    res = ep.run_turn()
    assert res.rows[0]["repair_count"] == 1 and res.rows[0]["valid"]


def test_workflow_level_evaluation_failure_is_an_invalid_candidate():
    agent = TurnScript([[reply(0.9, "evalfail"), reply(0.5), reply(0.45)]])
    ep = _episode(agent)
    res = ep.run_turn()
    assert not res.rows[0]["valid"] and "evaluation failed" in res.rows[0]["error"]
    assert res.rows[1]["chosen"]


def test_replay_rebuilds_the_same_state():
    script = [[reply(0.6), reply(0.8), "x"], ["x", "y", "z"], [reply(0.3), reply(0.9), reply(0.2)]]
    ep = _episode(TurnScript([list(t) for t in script]))
    rows = []
    for _ in range(3):
        rows += ep.run_turn().rows
    fresh = Episode(SPEC, ep.rlao, "gsm8k-e00", FakeEvaluator(), TurnScript([]))
    fresh.start(fresh.evaluate_seeds())
    fresh.replay(list(reversed(rows)))
    assert fresh.state == ep.state


def test_budget_exceeded_leaves_state_untouched():
    ev = FakeEvaluator(budget_calls=300)
    agent = TurnScript([[reply(0.6, calls=9)] * 3])
    ep = _episode(agent, ev)
    before = ep.state
    with pytest.raises(BudgetExceeded):
        ep.run_turn()
    assert ep.state is before


def test_same_seed_same_rows():
    replies = [reply(a) for a in (0.2, 0.5, 0.7, 0.9, 0.35)]

    def run():
        ep = _episode(ScriptedMetaAgent(replies))
        return [{k: v for k, v in r.items() if k != "created_at"}
                for _ in range(2) for r in ep.run_turn().rows]

    assert run() == run()


def test_racing_off_matches_plain_and_racing_picks_same_winner_cheaper():
    script = [reply(0.05, calls=4), reply(0.9, calls=4), reply(0.1, calls=4)]

    def run(racing: bool):
        ev = FakeEvaluator(n_items=64)
        ep = _episode(TurnScript([list(script)]), ev,
                      racing=RacingConfig(enabled=racing, slices=[0.25, 0.5, 1.0]))
        calls0 = ev.executor_calls
        res = ep.run_turn()
        return res, ev.executor_calls - calls0

    plain, plain_calls = run(False)
    raced, raced_calls = run(True)
    assert [r["chosen"] for r in plain.rows] == [r["chosen"] for r in raced.rows]
    assert raced.rows[1]["val_accuracy"] == plain.rows[1]["val_accuracy"]
    assert [r["racing_stopped"] for r in raced.rows] == [True, False, True]
    assert not any(r["racing_stopped"] for r in plain.rows)
    assert raced_calls < plain_calls
    assert raced.metrics["racing_calls_saved"] > 0


@pytest.mark.parametrize("key, value", [("candidates", 0), ("history_window", -1),
                                        ("max_repairs", -2)])
def test_bad_settings_are_config_errors(key, value):
    """The bounds are the schema's: an episode cannot be configured out of them."""
    from w4s_ray.config import load_config
    from w4s_ray.errors import ConfigError

    with pytest.raises(ConfigError, match=f"rlao.{key}: Input should be greater than"):
        load_config(None, [f"rlao.{key}={value}"])
