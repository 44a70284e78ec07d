"""Racing: slices, confidence bounds, who gets stopped, and equality with plain evaluation."""

from __future__ import annotations

import pytest

from tests.rlao.fakes import FakeEvaluator, workflow
from w4s_ray.rlao.evaluation import EvalRequest
from w4s_ray.rlao.racing import interval, race, slice_bounds


@pytest.mark.parametrize("n, fr, expected", [
    (64, [0.25, 0.5, 1.0], [16, 32, 64]),
    (10, [0.25, 0.5, 1.0], [3, 5, 10]),
    (3, [0.1, 0.2, 0.5], [1, 2, 3]),   # the last slice always reaches n
    (8, [1.0, 0.5], [4, 8]),          # order does not matter
])
def test_slice_bounds(n, fr, expected):
    assert slice_bounds(n, fr) == expected


@pytest.mark.parametrize("bound", ["wilson", "hoeffding"])
def test_interval_contains_mean_and_shrinks(bound):
    lo8, hi8 = interval(0.5, 8, 0.95, bound)
    lo64, hi64 = interval(0.5, 64, 0.95, bound)
    assert lo8 < 0.5 < hi8 and lo64 < 0.5 < hi64
    assert hi64 - lo64 < hi8 - lo8
    assert 0.0 <= interval(0.0, 5, 0.95, bound)[0] and interval(1.0, 5, 0.95, bound)[1] <= 1.0


def test_wilson_is_tighter_near_zero_than_hoeffding():
    assert interval(0.0, 16, 0.95, "wilson")[1] < interval(0.0, 16, 0.95, "hoeffding")[1]


def test_race_stops_clear_losers_and_keeps_leader_exact():
    ev = FakeEvaluator(n_items=64)
    codes = [workflow(0.05), workflow(0.9), workflow(0.5), workflow(0.85)]
    plain = FakeEvaluator(n_items=64).evaluate([EvalRequest(c, "b") for c in codes])
    res = race(ev, codes, "b", fractions=[0.25, 0.5, 1.0], confidence=0.95)
    assert [r.stopped for r in res] == [True, False, True, False]
    # survivors: exact plain accuracy, same items in the same order
    for i in (1, 3):
        assert res[i].outcome.accuracy == plain[i].accuracy
        assert res[i].outcome.item_ids == plain[i].item_ids
    assert res[0].stopped_after == 16 and res[0].calls_saved == pytest.approx(48)
    assert res[0].outcome.n == 16
    # one evaluator call per slice, each with all live candidates
    assert [len(c) for c in ev.evaluate_calls] == [4, 3, 2]


def test_race_with_one_candidate_is_a_plain_evaluation():
    ev = FakeEvaluator(n_items=20)
    res = race(ev, [workflow(0.3)], "b", fractions=[0.25, 0.5, 1.0], confidence=0.95)
    assert not res[0].stopped and res[0].outcome.n == 20
