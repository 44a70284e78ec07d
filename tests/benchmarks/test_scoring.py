"""Lenient scorer rules and edge cases (pure functions plus the benchmark `score` guard).

The pure functions here are the lenient rules (`scoring.py`); benchmark-level checks of the
lenient behaviour pass `"lenient"` explicitly. The official rules are tested per benchmark in
test_official_*.py; junk handling below runs under the default (official) scoring.
"""

from __future__ import annotations

import math

import pytest

from w4s_ray.benchmarks import Item, get_benchmark
from w4s_ray.benchmarks.scoring import (
    as_text,
    drop_em_f1,
    extract_code,
    is_equiv,
    last_number,
    parse_choice,
    score_drop,
    score_math,
    score_numeric,
)

# --- numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize("pred,gold", [
    ("The answer is 65,960.", 65960), ("$1,234.50", 1234.5), ("18.0", 18), ("18.000", 18),
    ("Answer: -3", -3), ("so x = 2.392e-06", 2.392e-06), ("It is 1/2 of the cake", 0.5),
    ("\\frac{3}{4}", 0.75), ("\\boxed{42}", 42), ("42%", 42), ("−7", -7), (".5", 0.5),
    (42, 42), (42.0, 42), ("First 3 then 5 then finally 12", 12),
])
def test_numeric_match(pred, gold):
    assert score_numeric(pred, gold) == 1.0


@pytest.mark.parametrize("pred,gold", [
    ("65,96", 65960), ("18.5", 18), ("1,234", 1.234), ("no number", 5), ("", 0), (None, 0),
    ("12 and then 13", 12),
])
def test_numeric_mismatch(pred, gold):
    assert score_numeric(pred, gold) == 0.0


def test_last_number_reads_thousands_and_sign():
    assert last_number("went from 1,000 to -2,500,000 units") == -2_500_000
    assert last_number("version 3 of 4.") == 4


def test_gsm_hard_tolerance_is_w4s_rule(data_dir):
    bm = get_benchmark("gsm_hard", data_dir)
    item = Item("x", "q", "100.04", {"gold_value": 100.04})
    assert bm.score(item, "100") == 1.0          # |delta| = 0.04 < 0.1
    assert bm.score(item, "100.2") == 0.0


def test_gsm_hard_small_targets_accept_zero_as_documented(data_dir):
    """Known issue kept for comparability: |target| < 0.1 makes the answer 0 correct."""
    bm = get_benchmark("gsm_hard", data_dir)
    counts = {s: sum(bm.score(it, "0") for it in bm.load(s)) for s in ("valid", "test")}
    assert counts == {"valid": 7, "test": 16}


def test_gsm_plus_fraction_gold_is_read_as_a_value_when_lenient(data_dir):
    bm = get_benchmark("gsm_plus", data_dir)
    frac = [it for s in ("valid", "test") for it in bm.load(s) if "/" in it.answer]
    for it in frac:
        assert bm.score(it, f"The answer is {it.answer}", "lenient") == 1.0
        assert bm.score(it, f"{it.meta['gold_value']}", "lenient") == 1.0
        denominator = it.answer.split("/")[1]
        if float(denominator) != it.meta["gold_value"]:
            assert bm.score(it, f"about {denominator}", "lenient") == 0.0


def test_gsm8k_thousands_separator_golds(data_dir):
    bm = get_benchmark("gsm8k", data_dir)
    sep = [it for s in ("valid", "test") for it in bm.load(s) if "," in it.meta["answer_raw"]]
    assert len(sep) == 14
    for it in sep:
        assert bm.score(it, f"The total is {it.meta['answer_raw']} dollars.") == 1.0
        assert bm.score(it, it.answer) == 1.0


# --- multiple choice ------------------------------------------------------------------------


@pytest.mark.parametrize("pred", [
    "B", "(B)", "b)", "B.", "**B**", "Answer: B", "answer: b", "The answer is B.",
    "The answer is (B).", '{"answer": "B"}', '{"reasoning": "x", "answer": "(B)"}',
    "I think it's A or C at first, but the correct answer is B", "Final answer: option B",
    "B) Paris", "Paris", "paris.",
])
def test_choice_formats(pred):
    choices = ["London", "Paris", "Rome", "Berlin"]
    assert parse_choice(pred, 4, choices) == "B"


@pytest.mark.parametrize("pred", ["", "E", "(E)", "I do not know", "A B C D", None, {"x": 1}])
def test_choice_invalid_or_ambiguous(pred):
    assert parse_choice(pred, 4, ["w", "x", "y", "z"]) is None


def test_mmlu_pro_accepts_letters_up_to_j_when_lenient(data_dir):
    bm = get_benchmark("mmlu_pro", data_dir)
    ten = next(it for it in bm.load("valid") if len(it.meta["choices"]) == 10)
    for fmt in ("{}", "({})", "Answer: {}", "The answer is ({}).", '{{"answer": "{}"}}'):
        assert bm.score(ten, fmt.format(ten.answer), "lenient") == 1.0
    wrong = next(c for c in "ABCDEFGHIJ" if c != ten.answer)
    assert bm.score(ten, wrong, "lenient") == 0.0


# --- DROP -----------------------------------------------------------------------------------


def test_drop_numbers_and_normalisation():
    assert score_drop("3", ["3"]) == 1.0
    assert score_drop("3.0", ["3"]) == 1.0           # numbers compared as floats
    assert score_drop("three", ["3"]) == 0.0
    assert score_drop("The Vikings", ["Vikings"]) == 1.0  # articles dropped
    assert score_drop("vikings!", ["Vikings"]) == 1.0     # punctuation, case
    assert score_drop("2004", ["2005"]) == 0.0            # numbers must match exactly
    assert score_drop("4 yards", ["4"]) == pytest.approx(0.67)


def test_drop_max_over_alternatives():
    assert score_drop("Pakistani and Filipino",
                      "Pakistanis and Filipinos|Pakistani and Filipino".split("|")) == 1.0


def test_drop_multi_span_alignment():
    em, f1 = drop_em_f1(["Tom Brady", "Peyton Manning"], ["Peyton Manning", "Tom Brady"])
    assert (em, f1) == (1.0, 1.0)
    em, f1 = drop_em_f1(["Tom Brady"], ["Peyton Manning", "Tom Brady"])
    assert em == 0.0 and f1 == 0.5
    # numbers: a span only counts when its numbers match
    assert drop_em_f1(["10 yards"], ["12 yards"])[1] == 0.0
    assert score_drop(["Tom Brady", "Peyton Manning"], ["Tom Brady"]) == 0.5


def test_drop_real_items_gold_scores_one(data_dir):
    bm = get_benchmark("drop", data_dir)
    for it in bm.load("valid")[:50]:
        assert bm.score(it, it.meta["golds"][-1]) == 1.0


# --- MATH -----------------------------------------------------------------------------------


@pytest.mark.parametrize("pred,gold", [
    ("so $\\boxed{\\dfrac{1}{2}}$", "\\frac{1}{2}"),
    ("\\boxed{\\tfrac12}", "\\frac{1}{2}"),
    ("\\boxed{0.5}", "\\frac{1}{2}"),
    ("\\boxed{1/2}", "\\frac{1}{2}"),
    ("\\boxed{10 \\text{ cm}}", "10"),
    ("\\boxed{ 3 , 4 }", "3,4"),
    ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("\\boxed{90^\\circ}", "90"),
    ("\\boxed{x = 5}", "5"),
    ("\\boxed{\\sqrt2}", "\\sqrt{2}"),
    ("\\boxed{50\\%}", "50"),
    ("first \\boxed{3} then \\boxed{0.75}", "\\frac{3}{4}"),
    ("\\frac{3}{4}", "\\frac34"),
    ("\\boxed{\\$18.90}", "18.90"),
])
def test_math_equivalences(pred, gold):
    assert score_math(pred, gold) == 1.0


@pytest.mark.parametrize("pred,gold", [
    ("\\boxed{\\frac{1}{3}}", "\\frac{1}{2}"), ("\\boxed{3}", "\\frac{3}{4}"),
    ("the answer is 12, since ...", "12"), ("", "1"), ("\\boxed{", "1"),
])
def test_math_non_equivalences(pred, gold):
    assert score_math(pred, gold) == 0.0


def test_is_equiv_is_hendrycks_strip_string():
    assert is_equiv("\\frac{1}{2}", "0.5")
    assert is_equiv("\\left(1,2\\right)", "(1,2)")
    assert not is_equiv(None, "1")


def test_math_full_reference_solution_scores_one(data_dir):
    bm = get_benchmark("math", data_dir)
    for it in bm.load("valid"):
        assert bm.score(it, it.meta["solution"]) == 1.0


# --- code extraction ------------------------------------------------------------------------


def test_extract_code_picks_block_defining_entry_point():
    text = ("Here is a helper:\n```python\ndef helper():\n    pass\n```\nand the solution:\n"
            "```python\ndef solve(x):\n    return x\n```\nUsage:\n```python\nsolve(1)\n```")
    assert extract_code(text, "solve").startswith("def solve(x):")
    assert extract_code("def f():\n    return 1\n", "f") == "def f():\n    return 1\n"
    assert extract_code("```python\ndef f():\n    return 1\n", "f").startswith("def f")


# --- junk never raises, always in [0, 1] -----------------------------------------------------


class Liar:
    def __eq__(self, other):
        return True

    def __str__(self):
        return "B"


class Hostile:
    def __str__(self):
        raise RuntimeError("no")

    __repr__ = __str__


class LyingStr(str):
    def __eq__(self, other):
        return True

    def __str__(self):
        return "A"

    __hash__ = str.__hash__


def test_as_text_resists_hostile_objects():
    assert as_text(Hostile()) == ""
    assert as_text(LyingStr("C")) == "C"
    assert type(as_text(LyingStr("C"))) is str
    assert as_text(None) == "" and as_text(True) == ""
    assert as_text(float("nan")) == ""
    assert as_text({"answer": 5}) == "5"


JUNK = [None, {}, {"a": 1}, [], [1, 2], object(), Hostile(), Liar(), float("inf"), b"\x00\xff",
        "x" * 3_000_000, "9" * 100_000, True, ("tuple",), LyingStr("zzz"), 10 ** 400]


@pytest.mark.parametrize("name", ["mgsm", "gsm8k", "gsm_hard", "gsm_plus", "svamp", "math",
                                  "drop", "mmlu_pro", "gpqa", "humaneval", "mbpp"])
def test_junk_predictions_score_in_range_and_mostly_zero(name, data_dir):
    bm = get_benchmark(name, data_dir)
    item = bm.load("valid")[0]
    for junk in JUNK:
        s = bm.score(item, junk)
        assert isinstance(s, float) and 0.0 <= s <= 1.0 and not math.isnan(s)
    assert bm.score(item, None) == 0.0
    assert bm.score(item, Hostile()) == 0.0


def test_lying_eq_cannot_fake_a_choice(data_dir):
    bm = get_benchmark("gpqa", data_dir)
    item = bm.load("valid")[0]
    wrong = next(c for c in "ABCD" if c != item.answer)
    assert bm.score(item, LyingStr(wrong)) == 0.0
    assert bm.score(item, Liar()) == (1.0 if item.answer == "B" else 0.0)
