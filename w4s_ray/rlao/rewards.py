"""Turn rewards of both decision processes (plain functions, no Ray).

A reward compares a candidate's validation accuracy with reference points that the decision
process supplies in a `RewardContext`; the protocols differ in those points, not in the table:

- `w4s` (discrete): 1 when the accuracy beats `best`; else 0.5 when it beats `previous`, or
  `first_example` when that is set; else 0; minus `rlao.low_accuracy_penalty` (0.1) when the
  accuracy is below `rlao.low_accuracy_threshold` (0.3).
- `continuous`: (acc - best) / best. With best = 0 the protocols differ: the authors' code gives
  1 (`zero_best_reward=1.0`), the w4s-ray process the plain difference acc - best.

Reference points (built by `w4s.reward_context` and `mdp.reward_context`):

| | protocol w4s (upstream `src/main.py`) | protocol w4s-ray |
| --- | --- | --- |
| best | max over the examples and the last generated workflow at the trajectory's reset, frozen for the trajectory | best so far over the examples and every chosen workflow, updated each turn |
| previous | the last archive entry: the previous turn's chosen workflow, or the LAST example before any was generated | the previous turn's chosen workflow, or the FIRST example at turn 0 |
| first_example | the first example, while nothing has been generated (upstream's first-turn rule) | none |

A candidate without an accuracy: w4s drops it (no reward at all: `reward` is not called, the
row's reward is null and training never sees it); w4s-ray rewards it as accuracy 0.

What this does not do: decide which candidate is chosen (`w4s.choose`, `mdp.choose`) or
normalise rewards for training (`w4s_ray.train.rwr`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from w4s_ray.config import RLAOConfig


@dataclass(frozen=True)
class RewardContext:
    """The reference points one candidate's reward is measured against (module docstring)."""

    best: float
    previous: float
    first_example: float | None = None
    zero_best_reward: float | None = None  # continuous reward when best == 0; None: acc - best


def w4s_reward(
    accuracy: float, best: float, previous: float, *, first_example: float | None = None,
    threshold: float = 0.3, penalty: float = 0.1,
) -> float:
    """The discrete W4S reward: 1 / 0.5 / 0, minus `penalty` below `threshold`."""
    if accuracy > best:
        reward = 1.0
    elif accuracy > previous or (first_example is not None and accuracy > first_example):
        reward = 0.5
    else:
        reward = 0.0
    if accuracy < threshold:
        reward -= penalty
    return reward


def continuous_reward(accuracy: float, best: float, zero_best_reward: float | None = None) -> float:
    """Relative improvement over `best`; when best is 0: `zero_best_reward`, else acc - best."""
    if best <= 0.0:
        return accuracy - best if zero_best_reward is None else zero_best_reward
    return (accuracy - best) / best


RewardFn = Callable[[float, RewardContext, RLAOConfig], float]
# `rlao.reward` names one of these; a new reward registers itself and adds its name to the
# config's choices.
REWARDS: dict[str, RewardFn] = {}


def register_reward(name: str) -> Callable[[RewardFn], RewardFn]:
    """Decorator: `fn(accuracy, context, rlao_cfg) -> float` is reward `name`."""
    def deco(fn: RewardFn) -> RewardFn:
        REWARDS[name] = fn
        return fn
    return deco


@register_reward("w4s")
def _w4s(acc: float, ctx: RewardContext, rlao: RLAOConfig) -> float:
    return w4s_reward(acc, ctx.best, ctx.previous, first_example=ctx.first_example,
                      threshold=rlao.low_accuracy_threshold, penalty=rlao.low_accuracy_penalty)


@register_reward("continuous")
def _continuous(acc: float, ctx: RewardContext, rlao: RLAOConfig) -> float:
    return continuous_reward(acc, ctx.best, ctx.zero_best_reward)


def reward(accuracy: float | None, ctx: RewardContext, rlao: RLAOConfig) -> float:
    """The reward of one candidate under `rlao.reward`; `accuracy=None` counts as 0 (the
    w4s-ray treatment of a failed candidate; the w4s protocol never asks)."""
    acc = 0.0 if accuracy is None else float(accuracy)
    return REWARDS[rlao.reward](acc, ctx, rlao)
