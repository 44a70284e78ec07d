"""Drawing m different programs per turn (`rlao.redraw_repeats`, rlao/redraw.py): repeats of a
seed, an earlier choice or another candidate are drawn again; the default draws once."""

from __future__ import annotations

import pytest

from tests.rlao.fakes import FakeEvaluator
from w4s_ray.config import RLAOConfig
from w4s_ray.meta_agent.base import MetaAgent
from w4s_ray.rlao.candidates import extract
from w4s_ray.rlao.loop import Episode, TaskSpec
from w4s_ray.rlao.redraw import draw_distinct


def program(k: int, acc: float = 0.6, comment: str = "") -> str:
    """A workflow whose PROGRAM is told apart by k (the fake evaluator reads `# acc=`)."""
    return (f"def solver(agent, task):\n    # acc={acc} {comment}\n    k = {k}\n"
            f"    return {{'answer': str(k)}}\n")


def reply(k: int, acc: float = 0.6, comment: str = "") -> str:
    return f"Analysis: variant {k}.\n```python\n{program(k, acc, comment)}```"


class Script(MetaAgent):
    name = "script"

    def __init__(self, calls):
        super().__init__()
        self.calls = list(calls)
        self.asked: list[tuple[int, int | None]] = []

    def generate(self, messages, n, *, seed=None):
        self.asked.append((n, seed))
        return self.calls.pop(0)[:n]


MSGS = [{"role": "user", "content": "write a workflow"}]


def test_default_draws_once_and_keeps_every_copy():
    agent = Script([[reply(1), reply(1), reply(0)]])
    d = draw_distinct(agent.generate, MSGS, 3, 100, [program(0)], 0, extract)
    assert d.replies == [reply(1), reply(1), reply(0)] and d.seeds == [100, 101, 102]
    assert d.redrawn == 0 and agent.asked == [(3, 100)]


def test_repeats_of_a_seed_and_of_the_batch_are_drawn_again_until_new():
    # reply 1 repeats the seed (only a comment differs), reply 2 repeats reply 0
    agent = Script([[reply(5), reply(0, comment="same program"), reply(5)],
                    [reply(7), reply(5)],   # round 1: one new program, one repeat again
                    [reply(8)]])            # round 2: the last repeat gets a new program
    d = draw_distinct(agent.generate, MSGS, 3, 100, [program(0)], 2, extract)
    assert d.replies == [reply(5), reply(7), reply(8)]
    assert d.redrawn == 2 and d.repeats_left == 0
    assert [n for n, _ in agent.asked] == [3, 2, 1]
    assert len({s for _, s in agent.asked}) == 3  # each round its own seed
    assert d.seeds[0] == 100 and d.seeds[1] == agent.asked[1][1]
    assert d.seeds[2] == agent.asked[2][1]


def test_a_model_that_only_copies_keeps_its_copies_after_the_rounds():
    agent = Script([[reply(0), reply(0)], [reply(0), "no code here"], [reply(0), reply(0)]])
    d = draw_distinct(agent.generate, MSGS, 2, 1, [program(0)], 2, extract)
    assert d.replies == [reply(0), reply(0)] and d.repeats_left == 2 and d.redrawn == 0
    assert len(agent.asked) == 3  # 1 + 2 rounds, then it stops


def test_a_reply_without_code_is_not_a_repeat():
    agent = Script([["no code", "no code"]])
    d = draw_distinct(agent.generate, MSGS, 2, 1, [], 3, extract)
    assert d.replies == ["no code", "no code"] and agent.asked == [(2, 1)]


@pytest.mark.parametrize("protocol", ["w4s", "w4s-ray"])
def test_a_turn_evaluates_distinct_programs_and_counts_the_redraws(protocol):
    spec = TaskSpec("gsm8k", "math", "Grade-school math.", "a number",
                    {"CoT": program(0, 0.4), "SC": program(1, 0.5)})
    agent = Script([[reply(0, 0.4), reply(2, 0.7), reply(2, 0.7)],  # a seed copy, a twin
                    [reply(3, 0.8), reply(4, 0.6)]])
    ev = FakeEvaluator()
    ep = Episode(spec, RLAOConfig(protocol=protocol, candidates=3, redraw_repeats=1), "e0",
                 ev, agent)
    ep.start(ep.evaluate_seeds())
    res = ep.run_turn()
    assert res.metrics["distinct"] == 3 and res.metrics["redrawn"] == 2
    assert [r["code"] for r in res.rows] == [program(3, 0.8), program(2, 0.7), program(4, 0.6)]
    assert res.rows[0]["seed"] == agent.asked[1][1]  # the row records the draw it came from
    evaluated = [job.code for call in ev.evaluate_calls[1:] for job in call]
    assert sorted(evaluated) == sorted(r["code"] for r in res.rows)  # no copy was evaluated
