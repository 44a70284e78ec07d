"""State transitions of the W4S decision process, including failed candidates and turns."""

from __future__ import annotations

import pytest

from w4s_ray.config import RLAOConfig
from w4s_ray.rlao import mdp


def _examples():
    return [
        mdp.ArchiveEntry("CoT", "def solver(agent, task): ...", 0.40, "cot feedback"),
        mdp.ArchiveEntry("CoT-SC", "def solver(agent, task): ...", 0.55, "sc feedback"),
    ]


def _cand(i, acc, err=None, code="def solver(agent, task): pass", stopped=False):
    return mdp.Candidate(i, f"action {i}", None if err == "nocode" else code,
                         acc, None if acc is None else f"fb {i}",
                         err if err not in (None, "nocode") else ("no code" if err else None),
                         stopped)


def test_initial_state_best_is_best_example_previous_is_first():
    s = mdp.initial_state("gsm8k", "desc", _examples())
    assert s.best.name == "CoT-SC" and s.best_accuracy == 0.55
    assert s.previous_accuracy == 0.40
    assert s.turn == 0 and s.history == () and s.last_failure is None


def test_initial_state_without_examples():
    s = mdp.initial_state("b", "d", [])
    assert s.best is None and s.best_accuracy == 0.0 and s.previous_accuracy == 0.0


def test_advance_chooses_best_and_updates_everything():
    s0 = mdp.initial_state("gsm8k", "desc", _examples())
    cands = [_cand(0, 0.5), _cand(1, 0.7), _cand(2, None, "nocode"), _cand(3, 0.6)]
    assert mdp.rewards(s0, cands, RLAOConfig()) == [0.5, 1.0, -0.1, 1.0]
    s1, pos = mdp.advance(s0, cands)
    assert pos == 1
    assert s1.turn == 1 and len(s1.history) == 1
    step = s1.history[0]
    assert step.action == "action 1" and step.entry.val_accuracy == 0.7 and step.best_before == 0.55
    assert s1.best_accuracy == 0.7 and s1.best.turn == 1 and s1.best.candidate == 1
    assert s1.previous_accuracy == 0.7
    # The next turn's rewards compare with the new best (0.7) and the previous turn (0.7).
    assert mdp.rewards(s1, [_cand(0, 0.65), _cand(1, 0.75)], RLAOConfig()) == [0.0, 1.0]


def test_worse_turn_lowers_previous_but_keeps_best():
    s1, _ = mdp.advance(mdp.initial_state("b", "d", _examples()), [_cand(0, 0.7)])
    s2, pos = mdp.advance(s1, [_cand(0, 0.3), _cand(1, 0.5)])
    assert pos == 1 and s2.best_accuracy == 0.7 and s2.previous_accuracy == 0.5
    assert mdp.rewards(s2, [_cand(0, 0.6)], RLAOConfig()) == [0.5]


def test_ties_go_to_lowest_index_and_equal_best_is_not_replaced():
    s0 = mdp.initial_state("b", "d", _examples())
    s1, pos = mdp.advance(s0, [_cand(0, 0.55), _cand(1, 0.55)])
    assert pos == 0
    assert s1.best.name == "CoT-SC"  # equal accuracy does not displace the earlier best


def test_all_failed_turn_does_not_advance_state():
    s1, _ = mdp.advance(mdp.initial_state("b", "d", _examples()), [_cand(0, 0.7)])
    failed = [_cand(0, None, "nocode"), _cand(1, 0.9, "RuntimeError: x")]
    assert not failed[1].valid
    s2, pos = mdp.advance(s1, failed)
    assert pos is None
    assert s2.history == s1.history and s2.best == s1.best
    assert s2.previous_accuracy == s1.previous_accuracy
    assert s2.turn == s1.turn + 1
    assert s2.last_failure == "no code"
    # A later successful turn clears the failure note.
    s3, _ = mdp.advance(s2, [_cand(0, 0.2)])
    assert s3.last_failure is None and len(s3.history) == 2


def test_stopped_candidates_are_never_chosen():
    s0 = mdp.initial_state("b", "d", _examples())
    s1, pos = mdp.advance(s0, [_cand(0, 0.9, stopped=True), _cand(1, 0.6)])
    assert pos == 1 and s1.best_accuracy == 0.6


@pytest.mark.parametrize("k, expected", [(0, 0), (1, 1), (2, 2), (5, 3)])
def test_history_window(k, expected):
    s = mdp.initial_state("b", "d", _examples())
    for acc in (0.6, 0.7, 0.8):
        s, _ = mdp.advance(s, [_cand(0, acc)])
    win = s.window(k)
    assert len(win) == expected
    if expected:
        assert win[-1].entry.val_accuracy == 0.8
