"""The official scoring rules (`eval.scoring: official`) and the format hints (pure, no I/O).

One named rule per benchmark family, re-implemented from the upstream code it comes from:

- GSM8K, MGSM, SVAMP, GSM-Plus: `aflow_last_number` + `aflow_equal` — AFlow
  `benchmark/gsm8k.py` `GSM8KBenchmark.extract_number` / `calculate_score`: every match of
  `[-+]?\\d+(?:,\\d{3})*(?:\\.\\d+)?|\\d+\\.\\d+`, the LAST one with its commas removed, as a
  float; correct when |gold - value| <= 1e-6 (absolute). No `$`, `%`, fraction or scientific
  notation handling: "72/2" reads as 2, "3.6e1" as 1, "2.392e-06" as -6.
- GSM-Hard: `w4s_float` + `|gold - value| < 0.1` — W4S `src/tasks/gsmhard/task_gsmhard.py`
  `score_gsmhard`: `float()` of the WHOLE answer string; anything `float()` refuses ("The answer
  is 5", "$5", "5,000", "\\boxed{5}") is wrong.
- MMLU-Pro, GPQA: `adas_choice` — ADAS `_mmlu/search.py` / `_gpqa/search.py`
  `evaluate_forward_fn`: the answer if it IS one option letter (exact, case-sensitive, no
  stripping), else the first letter L in letter order such that "L)" occurs in the answer
  ("(B) or (A)" is A; "B.", "**B**", "b", "Answer: B" and the option's text are nothing).
- MATH: `hendrycks_is_equiv` on `official_math_answer` — Hendrycks `math_equivalence.py`
  `is_equiv` (string equality after `_strip_string`, raw equality where it raises) on the
  content of the last `\\boxed{}`, or on the whole answer when it has none. No numeric
  equality: "7.0" is not "7", an unboxed "$7$" is not "7".
- DROP (official F1, max over golds) and HumanEval/MBPP (pass@1) have one rule for both modes;
  they live in `scoring.py` / `code_exec.py`.

Predictions arrive as `str(answer)` from the sandbox child, as upstream scores `str(...)` of
the answer; other objects passed directly are read with `scoring.as_text` (never their own
`__str__`).

Format hints (`*_format_hint`): when an answer the official rule rejects has the right VALUE
by the lenient rule (`scoring.py`), a one-line hint says which format the official rule needs,
so the meta-agent can teach its workflows the format. A hint never contains the gold.
"""

from __future__ import annotations

import math
import re
from typing import Any

from w4s_ray.benchmarks import scoring as lenient
from w4s_ray.benchmarks.scoring import (
    LETTERS,
    as_text,
    last_boxed_only_string,
    remove_boxed,
    strip_string,
    tail,
)

# ---------------------------------------------------------------------------------- numbers

# AFlow GSM8KBenchmark.extract_number's pattern, unchanged.
_AFLOW_NUMBER_RE = re.compile(r"[-+]?\d+(?:,\d{3})*(?:\.\d+)?|\d+\.\d+")
AFLOW_TOL = 1e-6
GSM_HARD_TOL = 0.1


def aflow_last_number(text: str) -> float | None:
    """The last number of `text` as AFlow reads it (commas dropped), or None."""
    matches = _AFLOW_NUMBER_RE.findall(text)
    if not matches:
        return None
    try:
        return float(matches[-1].replace(",", ""))
    except ValueError:
        return None


def aflow_equal(value: float | None, gold: float) -> bool:
    return value is not None and abs(gold - value) <= AFLOW_TOL


def score_aflow_number(prediction: Any, gold: float) -> float:
    """GSM8K / MGSM / SVAMP / GSM-Plus official score."""
    return 1.0 if aflow_equal(aflow_last_number(as_text(prediction)), gold) else 0.0


def w4s_float(text: str) -> float | None:
    """`float(answer)` as W4S's score_gsmhard calls it; None where float() raises."""
    try:
        return float(text)
    except (ValueError, OverflowError):
        return None


def score_w4s_gsm_hard(prediction: Any, gold: float) -> float:
    """GSM-Hard official score: float() of the whole answer within 0.1 of the gold."""
    value = w4s_float(as_text(prediction))
    # NaN compares False, as upstream; inf is simply far away.
    return 1.0 if value is not None and abs(gold - value) < GSM_HARD_TOL else 0.0


# ---------------------------------------------------------------------------------- choices


def adas_choice(text: str, n_options: int) -> str | None:
    """The letter ADAS's parser reads from `text` (see module doc), or None."""
    letters = LETTERS[:n_options]
    if len(text) == 1 and text in letters:
        return text
    for letter in letters:
        if letter + ")" in text:
            return letter
    return None


def score_adas_choice(prediction: Any, gold_letter: str, n_options: int) -> float:
    return 1.0 if adas_choice(as_text(prediction), n_options) == gold_letter else 0.0


# ---------------------------------------------------------------------------------- MATH


def hendrycks_is_equiv(a: str | None, b: str | None) -> bool:
    """Hendrycks `is_equiv`: equality after `_strip_string`; raw equality where it raises."""
    if a is None or b is None:
        return False
    try:
        return strip_string(a) == strip_string(b)
    except Exception:  # noqa: BLE001 - upstream's bare except: compare the raw strings
        return a == b


def official_math_answer(text: str) -> str:
    """The content of the last complete \\boxed{} of `text`, else the whole text."""
    boxed = last_boxed_only_string(text)
    if boxed is None:
        return text
    content = remove_boxed(boxed)
    return text if content is None else content


def score_hendrycks_math(prediction: Any, gold_answer: str) -> float:
    # The tail bounds the work on megabyte answers; a boxed answer is at the end anyway.
    pred = official_math_answer(tail(as_text(prediction)))
    return 1.0 if hendrycks_is_equiv(pred, gold_answer) else 0.0


# ---------------------------------------------------------------------------------- hints
#
# Each hint function is called only for an answer the official rule rejected. It returns None
# unless the lenient rule credits the answer (the value is right), and then names the format
# the official rule needs. Hints name the rule, never the gold.

_SCI_RE = re.compile(r"\d[eE][-+]?\d")
_FRAC_RE = re.compile(r"\d\s*/\s*\d|\\[dt]?frac")
_BARE_DOT_RE = re.compile(r"(?<![\d.])\.\d")


def number_format_hint(prediction: Any, gold: float) -> str | None:
    """GSM8K / MGSM / SVAMP / GSM-Plus: right value, but not as AFlow's last-number rule reads."""
    text = as_text(prediction)
    if lenient.score_numeric(text, gold) < 1.0:
        return None
    read = aflow_last_number(text)
    if "\u2212" in tail(text, 200):
        why = "the minus sign must be the ASCII '-'"
    elif _FRAC_RE.search(tail(text, 200)):
        why = "a fraction is read as its last number (its denominator); write a decimal"
    elif _SCI_RE.search(tail(text, 200)):
        why = "scientific notation is read as its exponent; write the number out in digits"
    elif _BARE_DOT_RE.search(tail(text, 200)):
        why = "a decimal needs a digit before the point (a leading 0)"
    elif read is None or not math.isclose(read, gold, rel_tol=1e-6, abs_tol=1e-9):
        why = "the scorer takes the LAST number in the answer; end with the plain final number"
    else:
        why = "it must equal the reference within 1e-6 (absolute); give the exact value"
    return ("value right but rejected by its format: " + why + ".")


def gsm_hard_format_hint(prediction: Any, gold: float) -> str | None:
    """GSM-Hard: right value, but the whole answer is not a plain float()."""
    if lenient.score_numeric(prediction, gold, GSM_HARD_TOL) < 1.0:
        return None
    return ("value right but rejected by its format: the whole answer must be one plain "
            "number that Python's float() reads: no words, units, $, thousands commas, "
            "\\boxed{} or LaTeX.")


def choice_format_hint(prediction: Any, gold_letter: str, n_options: int,
                       choices: list[str] | None = None) -> str | None:
    """MMLU-Pro / GPQA: right option, but not the letter alone (nor "L)" in the answer)."""
    if lenient.parse_choice(prediction, n_options, choices) != gold_letter:
        return None
    return ("option right but rejected by its format: the answer must be the option's "
            "capital letter alone (one character: no spaces, punctuation, markdown, words or "
            "option text), or contain the letter followed by ')' as in (X).")


def math_format_hint(prediction: Any, gold_answer: str) -> str | None:
    """MATH: right value by numeric or `$`-stripping leniency, but not string-equivalent."""
    if lenient.score_math(prediction, gold_answer) < 1.0:
        return None
    return ("value right but rejected by its format: the final answer must be in \\boxed{} "
            "and match the reference as a string after LaTeX normalisation: exact simplified "
            "form, integers without a decimal point, fractions as \\frac{a}{b}, no $ or words.")
