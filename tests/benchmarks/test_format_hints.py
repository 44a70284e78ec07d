"""Format hints: an answer the official rule rejects although its value is right gets a hint
naming the format; a wrong value gets none; no hint ever contains the gold."""

from __future__ import annotations

import pytest

from w4s_ray.benchmarks import Item, get_benchmark


def num_item(value: float) -> Item:
    return Item("t/1", "q", str(value), {"gold_value": value})


@pytest.mark.parametrize("pred,needle", [
    ("The answer is 2187", "float()"), ("\\boxed{2187}", "float()"), ("2,187", "float()"),
    ("$2187", "float()"), ("2187 dollars", "float()"),
])
def test_gsm_hard_hints(pred, needle, data_dir):
    bm = get_benchmark("gsm_hard", data_dir)
    item = num_item(2187.0)
    assert bm.score(item, pred) == 0.0
    hint = bm.format_hint(item, pred)
    assert hint and needle in hint and "value right" in hint and "2187" not in hint
    assert bm.format_hint(item, "The answer is 2190") is None   # wrong value: no hint


@pytest.mark.parametrize("name", ["gsm8k", "mgsm", "svamp", "gsm_plus"])
@pytest.mark.parametrize("pred,gold,needle", [
    ("72/2", 36, "fraction"), ("\\frac{73}{2}", 36.5, "fraction"), ("3.6e1", 36, "scientific"),
    ("−36", -36, "ASCII"), (".5", 0.5, "digit before the point"),
    ("1000000.5", 1000000, "1e-6"),
])
def test_numeric_hints(name, pred, gold, needle, data_dir):
    bm = get_benchmark(name, data_dir)
    item = num_item(float(gold))
    assert bm.score(item, pred) == 0.0
    hint = bm.format_hint(item, pred)
    assert hint and needle in hint and "value right" in hint
    assert str(abs(gold)) not in hint
    assert abs(gold) < 10 or str(int(abs(gold))) not in hint
    assert bm.format_hint(item, "71/2") is None
    assert bm.format_hint(item, "36 (checked in 2 steps)") is None  # lenient reads 2 as well


@pytest.mark.parametrize("name,n", [("mmlu_pro", 10), ("gpqa", 4)])
@pytest.mark.parametrize("pred", ["**D**", "D.", "Answer: D", "d", " D", "option text 3"])
def test_choice_hints(name, n, pred, data_dir):
    bm = get_benchmark(name, data_dir)
    item = Item("t/1", "q", "D", {"choices": [f"option text {k}" for k in range(n)]})
    assert bm.score(item, pred) == 0.0
    hint = bm.format_hint(item, pred)
    assert hint and "letter alone" in hint and "D" not in hint.replace("(X)", "")
    assert bm.format_hint(item, pred.replace("D", "B").replace("d", "b")
                          .replace("text 3", "text 1")) is None


@pytest.mark.parametrize("pred", ["7.0", "$7$", "\\boxed{7.0}"])
def test_math_hints(pred, data_dir):
    bm = get_benchmark("math", data_dir)
    item = Item("t/1", "q", "7", {})
    assert bm.score(item, pred) == 0.0
    hint = bm.format_hint(item, pred)
    assert hint and "\\boxed{}" in hint
    assert bm.format_hint(item, "8.0") is None


def test_single_rule_benchmarks_give_no_hints(data_dir):
    drop = get_benchmark("drop", data_dir)
    assert drop.format_hint(Item("t", "q", "3", {"golds": ["3"]}), "three") is None


def test_hints_never_raise_on_junk(data_dir):
    for name in ("gsm8k", "gsm_hard", "math", "mmlu_pro"):
        bm = get_benchmark(name, data_dir)
        item = bm.load("valid")[0]
        for junk in (None, object(), b"\xff", "x" * 200_000, ["1", "2"], {"answer": 3}):
            hint = bm.format_hint(item, junk)
            assert hint is None or isinstance(hint, str)
