"""The w4s decision process (`rlao.w4s`) against an independent re-statement of upstream's
reward loop (`upstream_reference.py`): frozen best within a trajectory, the first-turn rule,
dropped candidates, resets every `history_window` turns."""

from __future__ import annotations

import random

import pytest

from tests.rlao.upstream_reference import upstream_rewards
from w4s_ray.config import RLAOConfig
from w4s_ray.rlao import w4s
from w4s_ray.rlao.mdp import ArchiveEntry, Candidate


def _examples(accs):
    return [ArchiveEntry(f"ex{i}", f"def solver(agent, task): return {i}", a, f"fb{i}")
            for i, a in enumerate(accs)]


def _cands(accs, drop=0.05):
    """Candidates as the w4s loop hands them over: survivors valid, the rest dropped."""
    out = []
    for i, a in enumerate(accs):
        ok = a is not None and a > drop
        out.append(Candidate(i, f"action {i}", "def solver(agent, task): pass", a,
                             f"fb {i}", None if ok else "dropped"))
    return out


def _ours(example_accs, turns, window=2, reward="w4s"):
    rlao = RLAOConfig(reward=reward, history_window=window)
    state = w4s.initial_state("b", "d", _examples(example_accs), window)
    rewards, chosen = [], []
    for accs in turns:
        cands = _cands(accs)
        rw = w4s.rewards(state, cands, rlao)
        rewards.append([r for r in rw if r is not None])
        state, pos = w4s.advance(state, cands)
        chosen.append(pos)
    return rewards, chosen, state


def test_first_turn_rule_last_and_first_example():
    # Examples 0.5, 0.2, 0.4 (best 0.5, first 0.5, last 0.4).
    rewards, _, _ = _ours([0.5, 0.2, 0.4], [[0.45, 0.6, 0.35, 0.3]])
    # 0.45 beats the LAST example (0.4): 0.5; 0.35 beats neither first nor last: 0.
    assert rewards[0] == [0.5, 1.0, 0.0, 0.0]
    rewards, _, _ = _ours([0.3, 0.5, 0.2], [[0.4, 0.25]])
    # 0.4 beats the FIRST example (0.3) although not the last (0.2)... and the last too.
    assert rewards[0] == [0.5, 0.5 - 0.1]


def test_best_is_frozen_within_a_trajectory_and_reset_after():
    ex = [0.4, 0.5]
    # Turn 0 reaches 0.7; turn 1 (same trajectory) is measured against 0.5, not 0.7.
    rewards, chosen, state = _ours(ex, [[0.7], [0.6], [0.65]])
    assert rewards[0] == [1.0]
    assert rewards[1] == [1.0]  # 0.6 > frozen 0.5 although below the 0.7 just found
    # Turn 2 starts a new trajectory: best = max(examples + last generated 0.6) = 0.6.
    assert rewards[2] == [1.0]
    assert state.trajectory == 1 and state.reference_best == 0.6
    rewards, _, _ = _ours(ex, [[0.7], [0.6], [0.55]])
    # New trajectory: best 0.6 (last generated), previous = last entry 0.6 -> 0.55 earns 0.
    assert rewards[2] == [0.0]


def test_previous_is_the_last_entry_within_a_trajectory():
    rewards, _, _ = _ours([0.6, 0.5], [[0.55], [0.58]])
    # Turn 0: 0.55 < best 0.6, > last example 0.5 -> 0.5. Turn 1: 0.58 > last entry 0.55.
    assert rewards == [[0.5], [0.5]]


def test_dropped_candidates_get_no_reward_and_are_never_chosen():
    rewards, chosen, state = _ours([0.4], [[None, 0.04, 0.05, 0.3, 0.2]])
    # Only 0.3 and 0.2 survive (None: no working code; 0.04 and 0.05: <= 0.05). Neither beats
    # the example (0.4); 0.2 is below 0.3.
    assert rewards == [[0.0, pytest.approx(-0.1)]]
    assert chosen == [3] and state.generated[-1].val_accuracy == 0.3


def test_continuous_reward_and_best_zero_case():
    rewards, _, _ = _ours([0.0], [[0.2, 0.4]], reward="continuous")
    assert rewards == [[1.0, 1.0]]  # upstream: 1 when the reference best is 0
    rewards, _, _ = _ours([0.5], [[0.6, 0.4]], reward="continuous")
    assert rewards[0] == pytest.approx([0.2, -0.2])


def test_a_turn_without_survivor_is_an_error():
    state = w4s.initial_state("b", "d", _examples([0.4]))
    with pytest.raises(w4s.TurnFailed):
        w4s.advance(state, _cands([None, 0.01]))


@pytest.mark.parametrize("window", [1, 2, 3])
@pytest.mark.parametrize("reward", ["w4s", "continuous"])
def test_random_accuracy_sequences_match_upstream(window, reward):
    rng = random.Random(window * 7 + len(reward))
    for _ in range(200):
        ex = [round(rng.choice([0.0, rng.random()]), 2) for _ in range(rng.randint(1, 3))]
        turns = []
        for _ in range(rng.randint(1, 7)):
            accs = [rng.choice([None, 0.03, 0.05, round(rng.random(), 2),
                                round(rng.random(), 2)]) for _ in range(rng.randint(1, 5))]
            if not any(a is not None and a > 0.05 for a in accs):
                accs.append(round(rng.uniform(0.06, 1.0), 2))  # the re-sampled attempt
            turns.append(accs)
        ours, ours_chosen, _ = _ours(ex, turns, window, reward)
        theirs, their_chosen = upstream_rewards(
            ex, turns, window=window, reward_type="continuous" if reward == "continuous"
            else "discrete")
        assert ours == [pytest.approx(t) for t in theirs], (ex, turns)
        assert ours_chosen == their_chosen, (ex, turns)


def test_final_choice_is_by_validation_over_examples_and_generated():
    _, _, state = _ours([0.5, 0.8], [[0.6], [0.7]])
    assert state.best.name == "ex1"
    _, _, state = _ours([0.5], [[0.6], [0.9], [0.7]])
    assert state.best.turn == 2  # numbered from 1: the seeds are turn 0
