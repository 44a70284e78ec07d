"""Turn rewards of the W4S decision process (plain functions, no Ray).

`w4s` is the discrete reward of the W4S code: 1 when a candidate's validation accuracy beats
the best accuracy seen so far (seeds and every earlier chosen workflow), else 0.5 when it beats
the previous turn's chosen workflow (at the first turn: the first example workflow), else 0;
minus a penalty (0.1) when the accuracy is below a threshold (0.3). `continuous` is the relative
gain over the best so far, (acc - best) / best; with best = 0 it is the plain gain acc - best,
so it stays finite and keeps its order.

A failed candidate (no code, crashed self-check, workflow-level error) has no accuracy; it is
rewarded as if it scored 0, which is the lowest reward a valid candidate could get. Training can
still tell them apart by the `valid` column of the trajectory rows.

What this does not do: decide which candidate is chosen (see `mdp.choose`), or normalise rewards
for training (see `w4s_ray.train.rwr`).
"""

from __future__ import annotations

from collections.abc import Callable

from w4s_ray.config import RLAOConfig


def w4s_reward(
    accuracy: float, best_so_far: float, previous: float, *,
    threshold: float = 0.3, penalty: float = 0.1,
) -> float:
    """The discrete W4S reward: 1 / 0.5 / 0, minus `penalty` below `threshold`."""
    if accuracy > best_so_far:
        reward = 1.0
    elif accuracy > previous:
        reward = 0.5
    else:
        reward = 0.0
    if accuracy < threshold:
        reward -= penalty
    return reward


def continuous_reward(accuracy: float, best_so_far: float) -> float:
    """Relative improvement over the best so far; the plain difference when best is 0."""
    if best_so_far <= 0.0:
        return accuracy - best_so_far
    return (accuracy - best_so_far) / best_so_far


RewardFn = Callable[[float, float, float, RLAOConfig], float]
# `rlao.reward` names one of these; a new reward registers itself and adds its name to the
# config's choices.
REWARDS: dict[str, RewardFn] = {}


def register_reward(name: str) -> Callable[[RewardFn], RewardFn]:
    """Decorator: `fn(accuracy, best_so_far, previous, rlao_cfg) -> float` is reward `name`."""
    def deco(fn: RewardFn) -> RewardFn:
        REWARDS[name] = fn
        return fn
    return deco


@register_reward("w4s")
def _w4s(acc: float, best_so_far: float, previous: float, rlao: RLAOConfig) -> float:
    return w4s_reward(acc, best_so_far, previous, threshold=rlao.low_accuracy_threshold,
                      penalty=rlao.low_accuracy_penalty)


@register_reward("continuous")
def _continuous(acc: float, best_so_far: float, previous: float, rlao: RLAOConfig) -> float:
    return continuous_reward(acc, best_so_far)


def reward(
    accuracy: float | None, best_so_far: float, previous: float, rlao: RLAOConfig
) -> float:
    """The reward of one candidate under `rlao.reward` (and its low-accuracy threshold and
    penalty); `accuracy=None` (a failed candidate) counts as 0."""
    acc = 0.0 if accuracy is None else float(accuracy)
    return REWARDS[rlao.reward](acc, best_so_far, previous, rlao)
