"""The lenient answer matching (`eval.scoring: lenient`) and helpers shared by both modes.

The official rules (`official.py`, the default) reuse `as_text`, the DROP F1 (the one DROP
rule), the Hendrycks MATH helpers and `extract_code` from here; everything else below is the
tolerant matching, kept unchanged so earlier numbers can be reproduced.

- `as_text`: any prediction -> a plain `str`, never raising (junk -> "").
- Numbers (GSM family, MGSM, SVAMP): the last number in the text, thousands separators and
  `$`/`%` dropped, scientific notation and simple fractions (`1/2`, `\\frac{1}{2}`) read;
  compared numerically (exact up to float round-off, or |delta| < tol for GSM-Hard).
- Multiple choice: the chosen option letter, parsed from "B", "(B)", "b)", "Answer: B",
  "The answer is (B).", `{"answer": "B"}`, or the exact text of one option.
- DROP: the official DROP evaluator's F1 (allennlp `drop_eval.py`, as in simple-evals/ADAS):
  answer normalisation (lower, punctuation, articles, numbers as floats), bag-of-tokens F1,
  number matching, multi-span alignment by a maximum-weight assignment; max over gold
  alternatives.
- MATH: the last `\\boxed{}` and Hendrycks' `is_equiv` (`strip_string`), plus a numeric
  comparison when both sides are plain numbers or simple fractions.

Each scorer returns a float in [0, 1] and never raises on junk input.
"""

from __future__ import annotations

import json
import math
import re
import string
from decimal import Decimal
from fractions import Fraction
from typing import Any

# Scorers look at most at this many trailing characters: a multi-megabyte prediction must not
# make scoring slow, and every rule here reads the answer near the end.
MAX_SCAN_CHARS = 20_000


def as_text(pred: Any) -> str:
    """A plain str for any prediction, never raising; junk gives "".

    Only data types are read (str, int, float, bytes, Fraction, Decimal, and lists/tuples/dicts
    of them), each through the base type's own methods: a subclass's overridden `__str__` or
    `__eq__` cannot change what is scored, and no method of an unknown object is ever called
    (its `__str__` would run foreign code in the scoring process).
    """
    try:
        if pred is None or isinstance(pred, bool):
            return ""
        if isinstance(pred, str):
            return str.__str__(pred)
        if isinstance(pred, int):
            return int.__repr__(pred)
        if isinstance(pred, float):
            return float.__repr__(pred) if math.isfinite(pred) else ""
        if isinstance(pred, (bytes, bytearray)):
            return bytes(pred[-MAX_SCAN_CHARS:]).decode("utf-8", "replace")
        if type(pred) in (Fraction, Decimal):
            return str(pred)
        if isinstance(pred, dict):
            # A workflow that returned its whole dict by mistake: take its "answer" if present.
            value = dict.get(pred, "answer")
            return "" if isinstance(value, dict) else as_text(value)
        if isinstance(pred, (list, tuple)):
            seq = list.__getitem__(pred, slice(-1000, None)) if isinstance(pred, list) else (
                tuple.__getitem__(pred, slice(-1000, None)))
            return ", ".join(t for t in (as_text(x) for x in seq) if t)
        return ""
    except Exception:  # noqa: BLE001 - hostile objects score 0, never crash the evaluator
        return ""


def tail(text: str, n: int = MAX_SCAN_CHARS) -> str:
    return text[-n:] if len(text) > n else text


# ---------------------------------------------------------------------------------------------
# numbers

_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?"
_NUMBER_RE = re.compile(rf"(?<![\w.])(-|−)?\s?\$?\s?({_NUM})")
_FRAC_TEX_RE = re.compile(r"\\[dt]?frac\s*\{\s*(-?\d+)\s*\}\s*\{\s*(-?\d+)\s*\}")
_SLASH_FRAC_RE = re.compile(r"(-?\d+)\s*/\s*(\d+)$")


def parse_number(text: str) -> float | None:
    """A whole string as a number ("1,234", "-3.5", "2.392e-06", "1/2", "$5", "40%"), else None."""
    s = text.strip().replace("−", "-").rstrip(".").strip()
    s = s.removeprefix("$").removesuffix("%").strip()
    m = _FRAC_TEX_RE.fullmatch(s)
    if m:
        return _ratio(m.group(1), m.group(2))
    m = re.fullmatch(r"(-?\d+)\s*/\s*(\d+)", s)
    if m:
        return _ratio(m.group(1), m.group(2))
    if re.fullmatch(rf"-?(?:{_NUM})", s):
        try:
            return float(s.replace(",", ""))
        except ValueError:
            return None
    return None


def _ratio(a: str, b: str) -> float | None:
    try:
        return float(Fraction(int(a), int(b)))
    except (ZeroDivisionError, ValueError):
        return None


def last_number(text: str) -> float | None:
    """The last number written in `text` (see module doc), or None."""
    s = tail(text)
    s = _FRAC_TEX_RE.sub(lambda m: f"{m.group(1)}/{m.group(2)}", s)
    matches = list(_NUMBER_RE.finditer(s))
    if not matches:
        return None
    m = matches[-1]
    sign = -1.0 if m.group(1) else 1.0
    raw = m.group(2).replace(",", "")
    # "1/2" written as a fraction: the last number is the denominator of a slash fraction.
    before = s[: m.start()].rstrip()
    if before.endswith("/") and not m.group(1):
        fm = re.search(r"(-|−)?(\d+)\s*/\s*$", before)
        if fm and "." not in raw:
            val = _ratio(fm.group(2), raw)
            if val is not None:
                return -val if fm.group(1) else val
    try:
        val = float(raw)
    except ValueError:
        return None
    return sign * val if math.isfinite(val) else None


def numbers_equal(pred: float | None, gold: float | None, abs_tol: float | None = None) -> bool:
    if pred is None or gold is None:
        return False
    if abs_tol is not None:
        return abs(pred - gold) < abs_tol
    return math.isclose(pred, gold, rel_tol=1e-6, abs_tol=1e-9)


def score_numeric(prediction: Any, gold: float, abs_tol: float | None = None) -> float:
    text = as_text(prediction)
    whole = parse_number(text)
    pred = whole if whole is not None else last_number(text)
    return 1.0 if numbers_equal(pred, gold, abs_tol) else 0.0


# ---------------------------------------------------------------------------------------------
# multiple choice

LETTERS = "ABCDEFGHIJ"


def parse_choice(prediction: Any, n_options: int, choices: list[str] | None = None) -> str | None:
    """The option letter a prediction chose, or None when it names none or several."""
    letters = LETTERS[:n_options]
    text = tail(as_text(prediction), 4000).strip()
    if not text:
        return None
    if text[:1] in "{[":
        try:
            obj = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            obj = None
        if isinstance(obj, dict):
            for key in ("answer", "Answer", "choice", "option", "letter", "final_answer"):
                if key in obj:
                    return parse_choice(obj[key], n_options, choices)
        if isinstance(obj, list) and len(obj) == 1:
            return parse_choice(obj[0], n_options, choices)
    cls = f"[{letters}{letters.lower()}]"
    # 1. Only a letter, possibly wrapped: "B", "(B)", "b)", "B.", "**B**", "[B]".
    m = re.fullmatch(rf"[\s*_`'\"\[(]*({cls})[\s*_`'\")\].:]*", text)
    if m:
        return m.group(1).upper()
    # 2. An explicit statement; the last one wins ("Answer: B", "the answer is (C).").
    # A letter followed by "or"/"and"/","/"/" and another letter is a hedge: no choice.
    hedge = rf"(\s*(?:,|/|&|\bor\b|\band\b)\s*[*_`'\"\[(]*{cls}[*_`'\")\]]*(?![\w]))?"
    stated = re.findall(
        rf"(?:answer|choice|option)\s*(?:is|:|=|-)?\s*(?:option|choice)?\s*[:\-]?\s*"
        rf"[*_`'\"\[(]*({cls})[*_`'\")\]]*(?![\w]){hedge}", text, flags=re.IGNORECASE)
    stated = [(s, h) for s, h in stated if s.upper() in letters]
    if stated:
        letter, hedged = stated[-1]
        return None if hedged else letter.upper()
    # Without a statement, naming several options ("(A) and (C)", "A) ... C) ...") is no choice.
    marked = set(re.findall(rf"(?<![\w])\(?([{letters}])\)", text))
    if len(marked) > 1:
        return None
    # 3. Exactly one distinct parenthesised capital letter: "... so (C)".
    paren = set(re.findall(rf"\(([{letters}])\)", text))
    if len(paren) == 1:
        return paren.pop()
    # 4. A line that starts with a letter marker: "B) Paris", "C. 42".
    lead = re.match(rf"\s*\(?([{letters}])[).:]\s", text)
    if lead:
        return lead.group(1)
    # 5. The exact text of one option.
    if choices:
        norm = _norm_option(text)
        hits = [LETTERS[i] for i, c in enumerate(choices[:n_options]) if _norm_option(c) == norm]
        if len(hits) == 1:
            return hits[0]
    return None


def _norm_option(s: Any) -> str:
    return " ".join(as_text(s).lower().strip().rstrip(".").split())


def score_choice(prediction: Any, gold_letter: str, n_options: int,
                 choices: list[str] | None = None) -> float:
    return 1.0 if parse_choice(prediction, n_options, choices) == gold_letter else 0.0


# ---------------------------------------------------------------------------------------------
# DROP (official evaluator, allennlp-style)

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _normalize_token(token: str) -> str:
    t = token.lower()
    if not _is_number(t):
        t = "".join(ch for ch in t if ch not in _PUNCT)
    if _is_number(t):
        t = str(float(t))
    t = _ARTICLES.sub(" ", t)
    return " ".join(t.split())


def normalize_drop(text: str) -> str:
    parts = [_normalize_token(tok) for tok in re.split(" |-", text)]
    return " ".join(p for p in parts if p.strip()).strip()


def _answer_to_bags(answer: str | list[str] | tuple[str, ...]):
    spans = list(answer) if isinstance(answer, (list, tuple)) else [answer]
    normalized, bags = [], []
    for span in spans:
        n = normalize_drop(span)
        normalized.append(n)
        bags.append(set(n.split()))
    return normalized, bags


def _bag_f1(pred: set[str], gold: set[str]) -> float:
    inter = len(gold & pred)
    precision = 1.0 if not pred else inter / len(pred)
    recall = 1.0 if not gold else inter / len(gold)
    if precision == 0.0 and recall == 0.0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _numbers_match(gold: set[str], pred: set[str]) -> bool:
    gold_numbers = {w for w in gold if _is_number(w)}
    pred_numbers = {w for w in pred if _is_number(w)}
    return not gold_numbers or bool(gold_numbers & pred_numbers)


def _max_assignment(scores: list[list[float]]) -> list[tuple[int, int]]:
    """Maximum-weight matching of rows to columns (Hungarian algorithm, rectangular)."""
    n_rows, n_cols = len(scores), len(scores[0]) if scores else 0
    if n_rows == 0 or n_cols == 0:
        return []
    transpose = n_rows > n_cols
    cost = ([[-scores[r][c] for r in range(n_rows)] for c in range(n_cols)] if transpose
            else [[-v for v in row] for row in scores])
    n, m = len(cost), len(cost[0])  # n <= m
    inf = float("inf")
    u, v = [0.0] * (n + 1), [0.0] * (m + 1)
    p, way = [0] * (m + 1), [0] * (m + 1)
    for i in range(1, n + 1):
        p[0], j0 = i, 0
        minv, used = [inf] * (m + 1), [False] * (m + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = p[j0], inf, 0
            for j in range(1, m + 1):
                if not used[j]:
                    cur = cost[i0 - 1][j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(m + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    pairs = [(p[j] - 1, j - 1) for j in range(1, m + 1) if p[j]]
    return [(c, r) for r, c in pairs] if transpose else pairs


def _align_bags(pred_bags: list[set[str]], gold_bags: list[set[str]]) -> list[float]:
    scores = [[_bag_f1(p, g) if _numbers_match(g, p) else 0.0 for p in pred_bags]
              for g in gold_bags]
    best = [0.0] * max(len(gold_bags), len(pred_bags))
    for g, p in _max_assignment(scores):
        best[g] = max(best[g], scores[g][p])
    return best


def drop_em_f1(prediction: str | list[str], gold: str | list[str]) -> tuple[float, float]:
    """(exact match, F1) of one prediction against one gold answer (each: span or spans)."""
    pred_norm, pred_bags = _answer_to_bags(prediction)
    gold_norm, gold_bags = _answer_to_bags(gold)
    em = 1.0 if set(pred_norm) == set(gold_norm) and len(pred_norm) == len(gold_norm) else 0.0
    per_bag = _align_bags(pred_bags, gold_bags)
    f1 = round(sum(per_bag) / len(per_bag), 2) if per_bag else 0.0
    return em, f1


def score_drop(prediction: Any, golds: list[str]) -> float:
    """Max F1 over the gold alternatives (the `|`-separated ref_text), as ADAS/simple-evals."""
    if isinstance(prediction, (list, tuple)) and prediction and all(
            isinstance(x, str) for x in prediction):
        pred: str | list[str] = [tail(as_text(x)) for x in prediction]
    else:
        pred = tail(as_text(prediction), 4000)
    best = 0.0
    for gold in golds:
        if gold.strip():
            best = max(best, drop_em_f1(pred, gold)[1])
    return float(min(1.0, max(0.0, best)))


# ---------------------------------------------------------------------------------------------
# MATH (Hendrycks et al., math_equivalence.py)


def last_boxed_only_string(text: str) -> str | None:
    idx = text.rfind("\\boxed")
    if idx < 0:
        idx = text.rfind("\\fbox")
        if idx < 0:
            return None
    if text.startswith("\\boxed ", idx):
        rest = text[idx + len("\\boxed "):]
        return "\\boxed " + rest.split("$")[0].strip()
    depth, i = 0, idx
    while i < len(text):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[idx: i + 1]
        i += 1
    return None


def remove_boxed(s: str | None) -> str | None:
    if s is None:
        return None
    if s.startswith("\\boxed "):
        return s[len("\\boxed "):]
    for left in ("\\boxed{", "\\fbox{"):
        if s.startswith(left) and s.endswith("}"):
            return s[len(left):-1]
    return None


def _fix_fracs(s: str) -> str:
    substrs = s.split("\\frac")
    new = substrs[0]
    for sub in substrs[1:]:
        new += "\\frac"
        if not sub:  # Hendrycks indexes sub[0]: IndexError -> is_equiv's raw comparison
            raise IndexError("\\frac at the end")
        if sub[:1] == "{":
            new += sub
            continue
        if len(sub) < 2:
            return s
        a, b = sub[0], sub[1]
        if b != "{":
            new += "{" + a + "}{" + b + "}" + sub[2:]
        else:
            new += "{" + a + "}" + b + sub[2:]
    return new


def _fix_a_slash_b(s: str) -> str:
    parts = s.split("/")
    if len(parts) != 2:
        return s
    try:
        a, b = int(parts[0]), int(parts[1])
    except ValueError:
        return s
    if s != f"{a}/{b}":
        return s
    return "\\frac{" + str(a) + "}{" + str(b) + "}"


def _remove_right_units(s: str) -> str:
    if "\\text{ " in s:
        splits = s.split("\\text{ ")
        # Hendrycks asserts a single unit; two make is_equiv fall back to raw equality.
        if len(splits) != 2:
            raise ValueError("more than one \\text{ } unit")
        return splits[0]
    return s


def _fix_sqrt(s: str) -> str:
    if "\\sqrt" not in s:
        return s
    splits = s.split("\\sqrt")
    new = splits[0]
    for sp in splits[1:]:
        if not sp:  # as Hendrycks (sp[0] raises): is_equiv falls back to raw comparison
            raise IndexError("\\sqrt at the end")
        if sp[0] != "{":
            new += "\\sqrt{" + sp[0] + "}" + sp[1:]
        else:
            new += "\\sqrt" + sp
    return new


def strip_string(s: str) -> str:
    """Hendrycks' `_strip_string`: canonical form of a MATH answer."""
    s = s.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "")
    s = s.replace("\\$", "")
    s = _remove_right_units(s)
    # Hendrycks removes backslash-percent only (its second replace is the same string).
    s = s.replace("\\%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    if len(s.split("=")) == 2 and len(s.split("=")[0]) <= 2:
        s = s.split("=")[1]
    s = _fix_sqrt(s)
    s = s.replace(" ", "")
    s = _fix_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    s = _fix_a_slash_b(s)
    return s


def _math_number(s: str) -> float | None:
    s = s.strip().strip("$")
    m = re.fullmatch(r"(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}", s)
    if m:
        val = _ratio(m.group(2), m.group(3))
        return None if val is None else (-val if m.group(1) else val)
    plain = s.replace(",", "") if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", s) else s
    if re.fullmatch(r"-?\d+(?:\.\d+)?", plain):
        return float(plain)
    return None


def is_equiv(a: str | None, b: str | None) -> bool:
    """Hendrycks' `is_equiv` (string equality after `strip_string`) plus numeric equality."""
    if a is None or b is None:
        return False
    try:
        sa, sb = strip_string(a), strip_string(b)
    except Exception:  # noqa: BLE001 - the original falls back to raw equality
        return a == b
    if sa == sb:
        return True
    na, nb = _math_number(sa), _math_number(sb)
    return na is not None and nb is not None and math.isclose(na, nb, rel_tol=1e-9, abs_tol=1e-12)


def math_answer(text: str) -> str | None:
    """The answer a MATH prediction gives: its last \\boxed{}, else the whole (short) text."""
    boxed = remove_boxed(last_boxed_only_string(text))
    if boxed is not None:
        return boxed
    stripped = text.strip().strip("$").strip()
    return stripped if stripped and len(stripped) <= 200 else None


def score_math(prediction: Any, gold_answer: str) -> float:
    pred = math_answer(tail(as_text(prediction)))
    return 1.0 if is_equiv(pred, gold_answer) else 0.0


# ---------------------------------------------------------------------------------------------
# code

_FENCE_RE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.S)


def extract_code(text: str, entry_point: str | None = None) -> str:
    """The code of a prediction: the last fenced block defining `entry_point` (else the last
    python block), or the whole text when it has no fence."""
    blocks = [(lang.lower(), body) for lang, body in _FENCE_RE.findall(text)]
    if not blocks:
        # An unterminated fence (a truncated reply): take what follows it.
        m = re.search(r"```[ \t]*(?:python|py)?[^\n]*\n", text)
        return text[m.end():] if m else text
    if entry_point:
        pat = re.compile(rf"^\s*(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", re.M)
        defining = [b for _, b in blocks if pat.search(b)]
        if defining:
            return defining[-1]
    py = [b for lang, b in blocks if lang in ("python", "py", "python3", "")]
    return (py or [b for _, b in blocks])[-1]
