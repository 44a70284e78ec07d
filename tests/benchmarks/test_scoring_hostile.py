"""Scorer edge cases checked against the official scorers' behaviour, and junk predictions."""

from __future__ import annotations

import pytest

from w4s_ray.benchmarks.scoring import (
    as_text,
    is_equiv,
    parse_choice,
    score_choice,
    score_drop,
    score_math,
    score_numeric,
)

CHOICES = ["Paris", "London", "Berlin", "Rome"]


@pytest.mark.parametrize("pred,gold,want", [
    ("5", "five", 0.0),               # the official evaluator does not map number words
    ("50%", "50", 1.0), ("1,000", "1000", 1.0), ("2.0", "2", 1.0),
    ("the Vikings.", "Vikings", 1.0), ("Bears, Packers", "Packers, Bears", 1.0),
    ("Bears and Packers", "Bears", 0.5), ("-3", "3", 1.0),
])
def test_drop_matches_official_normalisation(pred, gold, want):
    assert score_drop(pred, [gold]) == want


def test_drop_multi_span_list_and_alternatives():
    assert score_drop(["Packers", "Bears"], ["Bears"]) == 0.5
    assert score_drop("Bears", ["Packers", "Bears"]) == 1.0   # max over `|` alternatives
    assert score_drop("x", ["", " "]) == 0.0


@pytest.mark.parametrize("a,b,want", [
    ("50\\%", "50", True),
    ("50%", "50", False),             # Hendrycks strips only "\%"
    ("a\\text{ b}\\text{ c}", "a", False),   # two units: Hendrycks' assert -> raw equality
    ("\\frac", "\\frac", True), ("x\\sqrt", "x\\sqrt", True),
    ("10\\!000", "10000", True), ("90^\\circ", "90", True), ("\\left(1,2\\right)", "(1,2)", True),
    ("x = 5", "5", True), ("5\\text{ cm}", "5", True), ("1/2", "\\frac{1}{2}", True),
    ("0.5", "\\dfrac{1}{2}", True), ("\\frac{1}{3}", "0.33", False),
])
def test_is_equiv_as_hendrycks(a, b, want):
    assert is_equiv(a, b) is want


def test_math_last_boxed_wins_and_fbox():
    assert score_math("\\boxed{5} no wait \\boxed{\\frac{1}{2}}", "\\frac12") == 1.0
    assert score_math("so \\fbox{7}", "7") == 1.0
    assert score_math("$\\boxed 5$ done", "5") == 1.0


@pytest.mark.parametrize("pred", [
    "A, C", "A or C", "(A) and (C)", "Answer: A, B", "The answer is (A) or (B).", "A) Paris C) Berlin",
])
def test_choice_several_letters_is_no_choice(pred):
    assert parse_choice(pred, 4, CHOICES) is None


@pytest.mark.parametrize("pred", [
    "The answer is (C)", "C.", "answer: c", '{"answer": "C"}', "Berlin", "C) Berlin",
    "(A) is wrong and (B) is wrong, so the answer is (C).", ["C"], {"answer": "C"},
])
def test_choice_formats(pred):
    assert score_choice(pred, "C", 4, CHOICES) == 1.0


class _Lying:
    def __eq__(self, other):
        return True

    def __hash__(self):
        raise RuntimeError("no hash")

    def __str__(self):
        return "5"


class _LyingStr(str):
    def __str__(self):
        return "5"

    def __eq__(self, other):
        return True

    __hash__ = str.__hash__


JUNK = [None, True, float("nan"), float("inf"), _Lying(), _LyingStr("x"), object(),
        {"answer": {"answer": "5"}}, "9" * 10_000_000, [[[[]]]], b"\xff\xfe"]


@pytest.mark.parametrize("junk", JUNK, ids=lambda j: type(j).__name__)
def test_junk_scores_zero_and_never_raises(junk):
    assert score_numeric(junk, 5.0) == 0.0
    assert score_math(junk, "5") == 0.0
    assert score_drop(junk, ["5"]) == 0.0
    assert score_choice(junk, "A", 4, CHOICES) == 0.0


def test_data_types_score_their_real_value():
    assert score_numeric(5, 5.0) == score_numeric(b"5", 5.0) == score_numeric([5], 5.0) == 1.0
    assert as_text(_Lying()) == ""   # an unknown object's __str__ is never called
