"""The W4S reward table, the first-example rule and the continuous variant (both best=0 cases)."""

from __future__ import annotations

import pytest

from w4s_ray.config import RLAOConfig
from w4s_ray.rlao.rewards import RewardContext, continuous_reward, reward, w4s_reward


@pytest.mark.parametrize(
    "acc, best, prev, expected",
    [
        (0.80, 0.70, 0.60, 1.0),    # beats the best so far
        (0.65, 0.70, 0.60, 0.5),    # beats only the previous turn
        (0.60, 0.70, 0.60, 0.0),    # ties the previous: no credit
        (0.70, 0.70, 0.50, 0.5),    # ties the best, beats the previous
        (0.40, 0.70, 0.60, 0.0),    # worse than both
        (0.25, 0.20, 0.10, 0.9),    # new best but below 0.3: 1 - 0.1
        (0.25, 0.50, 0.20, 0.4),    # beats previous, below 0.3: 0.5 - 0.1
        (0.10, 0.50, 0.40, -0.1),   # worse and below 0.3
        (0.30, 0.50, 0.40, 0.0),    # exactly the threshold: no penalty
        (0.0, 0.0, 0.0, -0.1),      # zero everywhere
    ],
)
def test_w4s_reward_table(acc, best, prev, expected):
    assert w4s_reward(acc, best, prev) == pytest.approx(expected)


def test_first_example_rule():
    # 0.5 also for beating the first example, when the context sets one.
    assert w4s_reward(0.5, 0.8, 0.6, first_example=0.4) == 0.5
    assert w4s_reward(0.5, 0.8, 0.6, first_example=None) == 0.0
    assert w4s_reward(0.4, 0.8, 0.6, first_example=0.4) == 0.0  # a tie earns nothing


def test_constants_come_from_config():
    spec = RLAOConfig(low_accuracy_threshold=0.5, low_accuracy_penalty=0.2)
    ctx = RewardContext(best=0.9, previous=0.9)
    assert reward(0.45, ctx, spec) == pytest.approx(-0.2)
    assert reward(0.95, ctx, spec) == pytest.approx(1.0)


def test_failed_candidate_counts_as_zero_accuracy():
    ctx = RewardContext(best=0.5, previous=0.4)
    assert reward(None, ctx, RLAOConfig()) == pytest.approx(-0.1)
    assert reward(None, ctx, RLAOConfig(reward="continuous")) == pytest.approx(-1.0)


@pytest.mark.parametrize(
    "acc, best, expected",
    [(0.6, 0.5, 0.2), (0.4, 0.5, -0.2), (0.5, 0.5, 0.0), (0.3, 0.0, 0.3), (0.0, 0.0, 0.0)],
)
def test_continuous_reward_w4s_ray(acc, best, expected):
    assert continuous_reward(acc, best) == pytest.approx(expected)
    ctx = RewardContext(best=best, previous=0.0)
    assert reward(acc, ctx, RLAOConfig(reward="continuous")) == pytest.approx(expected)


@pytest.mark.parametrize("acc, best, expected",
                         [(0.6, 0.5, 0.2), (0.3, 0.0, 1.0), (0.0, 0.0, 1.0)])
def test_continuous_reward_upstream_zero_best_is_one(acc, best, expected):
    # src/main.py: (acc - best) / best if best > 0 else 1
    ctx = RewardContext(best=best, previous=0.0, zero_best_reward=1.0)
    assert reward(acc, ctx, RLAOConfig(reward="continuous")) == pytest.approx(expected)


def test_every_configurable_reward_is_registered():
    import typing

    from w4s_ray.rlao.rewards import REWARDS

    choices = typing.get_args(RLAOConfig.model_fields["reward"].annotation)
    assert set(choices) == set(REWARDS)
