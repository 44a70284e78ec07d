"""The W4S reward table and the continuous variant."""

from __future__ import annotations

import pytest

from w4s_ray.config import RLAOConfig
from w4s_ray.rlao.rewards import continuous_reward, reward, w4s_reward


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


def test_constants_come_from_config():
    spec = RLAOConfig(low_accuracy_threshold=0.5, low_accuracy_penalty=0.2)
    assert reward(0.45, 0.9, 0.9, spec) == pytest.approx(-0.2)
    assert reward(0.95, 0.9, 0.9, spec) == pytest.approx(1.0)


def test_failed_candidate_counts_as_zero_accuracy():
    spec = RLAOConfig()
    assert reward(None, 0.5, 0.4, spec) == pytest.approx(-0.1)
    assert reward(None, 0.5, 0.4, RLAOConfig(reward="continuous")) == pytest.approx(-1.0)


@pytest.mark.parametrize(
    "acc, best, expected",
    [(0.6, 0.5, 0.2), (0.4, 0.5, -0.2), (0.5, 0.5, 0.0), (0.3, 0.0, 0.3), (0.0, 0.0, 0.0)],
)
def test_continuous_reward(acc, best, expected):
    assert continuous_reward(acc, best) == pytest.approx(expected)
    assert reward(acc, best, 0.0, RLAOConfig(reward="continuous")) == pytest.approx(expected)


def test_every_configurable_reward_is_registered():
    import typing

    from w4s_ray.rlao.rewards import REWARDS

    choices = typing.get_args(RLAOConfig.model_fields["reward"].annotation)
    assert set(choices) == set(REWARDS)
