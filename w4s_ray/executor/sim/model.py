"""The simulator's model of an LLM: decide right or wrong per sample, then write a reply.

This is a simulator, not a language model. For a prompt it recognises (see `index.py`) it knows
the item's gold answer and answers correctly with probability

    p = sigmoid(a + s * z_item + cues)

where `z_item` is a fixed per-item difficulty (standard normal, from a hash of the item id),
`a` is calibrated so that the mean of p over items equals the profile's accuracy for that
benchmark, and `cues` are small logit bonuses for prompt features that help real models:
step-by-step reasoning, program-aided answers to math, test-driven repair of code (the prompt
shows failing tests), and refinement after feedback. A verifier prompt that shows a candidate
answer gets a judgement that is right with the profile's judge accuracy.

At temperature 0 a request's reply is a function of the request alone. At temperature > 0
each sample is an independent draw seeded by (seed, request hash, sample index), so majority
voting, verification and repair help exactly as far as the per-item p allows. Wrong answers
are plausible: near-miss numbers, another option letter, another span of a DROP passage, a
perturbed boxed answer, or a mutated reference program (`mutate.py`). Prompts it cannot place
get a generic reply in the requested format (JSON with the requested keys, else text). A
program-aided answer in JSON mode puts bare code in the code field, fenced in a share of replies
set by the profile (`json_code_fence_rate`, 0.1), as real models do.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

from w4s_ray.executor.sim.index import ItemIndex, SimItem
from w4s_ray.executor.sim.mutate import mutants
from w4s_ray.executor.sim.profiles import Profile

SPREAD = 1.5  # logit std-dev of item difficulty
CUE_COT = 0.4
CUE_PROGRAM = 0.3
CUE_PROGRAM_HARD = 0.9  # gsm_hard's large numbers: arithmetic is where plain CoT fails
CUE_REPAIR = 1.0
CUE_REFINE = 0.3

_RE_COT = re.compile(r"step[- ]by[- ]step|\breason|\bthink|\bexplain|\brationale", re.I)
_RE_VERIFY = re.compile(
    r"\b(verify|verif(y|ies|ication)|critic|critique|judge|check (if|whether)|"
    r"is (this|the) (answer|solution) (correct|right)|evaluate (the|this) (answer|solution))\b", re.I)
_RE_REPAIR = re.compile(r"traceback|assertionerror|failed test|tests? failed|did not pass|"
                        r"error message|fix the (code|bug|function)", re.I)
_RE_REFINE = re.compile(r"previous (answer|attempt|solution)|feedback|your answer (is|was)", re.I)
_RE_PROGRAM = re.compile(r"(python|program|code)", re.I)
_RE_NUM = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_RE_KEYS_LIST = re.compile(r"\[\s*((?:['\"][A-Za-z_][\w ]*['\"]\s*,?\s*)+)\]")
_RE_KEY_IN_DICT = re.compile(r"['\"]([A-Za-z_][\w]*)['\"]\s*:")
_RE_BOXED = re.compile(r"\\boxed\{")

ANSWER_KEYS = ("answer", "final_answer", "solution", "code", "result", "output", "prediction")
REASON_KEYS = ("reasoning", "thinking", "thought", "thoughts", "rationale", "explanation",
               "analysis", "steps")
VERDICT_KEYS = ("correct", "is_correct", "correctness", "verdict", "judgement", "judgment",
                "valid", "is_valid", "passed")
FEEDBACK_KEYS = ("feedback", "critique", "comment", "comments", "review", "evaluation")


def _h(*parts: object) -> int:
    data = json.dumps(parts, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


def _unit(*parts: object) -> float:
    return (_h(*parts) >> 11) / float(1 << 53)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


_ZGRID = [NormalDist().inv_cdf((k + 0.5) / 201) for k in range(201)]


@lru_cache(maxsize=256)
def calibrated_offset(base: float, spread: float = SPREAD) -> float:
    """`a` with mean over items of sigmoid(a + spread*z) equal to `base` (z ~ N(0, 1))."""
    base = min(max(base, 1e-4), 1 - 1e-4)
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        mean = sum(_sigmoid(mid + spread * z) for z in _ZGRID) / len(_ZGRID)
        lo, hi = (mid, hi) if mean < base else (lo, mid)
    return (lo + hi) / 2


def item_z(item: SimItem) -> float:
    u = _unit("difficulty", item.benchmark, item.id)
    return NormalDist().inv_cdf(min(max(u, 1e-9), 1 - 1e-9))


# ---------------------------------------------------------------- gold and wrong answers


def _fmt_num(x: float) -> str:
    if abs(x - round(x)) < 1e-9 and abs(x) < 1e15:
        return str(int(round(x)))
    return f"{x:.6g}" if abs(x) < 1e-3 else str(round(x, 4))


def _last_boxed(text: str) -> str | None:
    starts = [m.end() for m in _RE_BOXED.finditer(text)]
    if not starts:
        return None
    i, depth = starts[-1], 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


def gold_text(item: SimItem) -> str:
    ans = item.answer
    if isinstance(ans, (list, tuple)):
        ans = ans[0] if ans else ""
        if isinstance(ans, (list, tuple)):
            ans = ans[0] if ans else ""
    if item.kind == "code":
        return reference_code(item)
    if isinstance(ans, bool):
        return str(ans)
    if isinstance(ans, (int, float)):
        return _fmt_num(float(ans))
    text = str(ans).strip()
    if item.kind == "math":
        boxed = _last_boxed(text)
        if boxed is not None:
            return boxed.strip()
        if "####" in text:
            text = text.rsplit("####", 1)[1].strip()
        if item.benchmark == "math":  # LaTeX golds stay as written ("1,0,1", "221_3")
            return text
        frac = re.fullmatch(r"(-?\d+)/(\d+)", text)
        if frac and int(frac.group(2)):  # "1/4" as 0.25: official number rules read decimals
            return repr(int(frac.group(1)) / int(frac.group(2)))
        try:
            return _fmt_num(float(text.replace(",", "")))
        except ValueError:
            return text
    if item.kind == "reading" and "|" in text:
        return text.split("|")[0].strip()
    return text


def reference_code(item: SimItem) -> str:
    ref = item.meta.get("reference_solution") or (item.answer if isinstance(item.answer, str) else "")
    entry = item.meta.get("entry_point")
    if entry and f"def {entry}" not in ref:
        ref = item.question.rstrip() + "\n" + ref  # HumanEval: the prompt holds the signature
    try:
        import ast

        return ast.unparse(ast.parse(ref))
    except SyntaxError:
        return ref


def _num_neighbours(gold: float, question: str, rng: random.Random) -> list[str]:
    nums = []
    for m in _RE_NUM.findall(question):
        try:
            nums.append(float(m.replace(",", "")))
        except ValueError:
            pass
    cands = [gold + 1, gold - 1, gold * 2, gold / 2, gold * 10, gold + 10]
    for q in nums[:6]:
        cands += [gold + q, gold - q, q]
    rng.shuffle(cands)
    out = []
    for c in cands:
        s = _fmt_num(c)
        if abs(c - gold) > 1e-6 and s not in out:
            out.append(s)
    return out


def wrong_answers(item: SimItem, count: int = 3) -> list[str]:
    """A fixed, item-specific list of plausible wrong answers (first = most likely)."""
    return list(_wrong_cached(item.benchmark, item.id, item))[:count]


@lru_cache(maxsize=4096)
def _wrong_cached(benchmark: str, item_id: str, item: SimItem) -> tuple[str, ...]:
    rng = random.Random(_h("wrong", benchmark, item_id))
    gold = gold_text(item)
    if item.kind == "code":
        return tuple(mutants(gold, seed=rng.randrange(1 << 30), count=3) or [gold + "\n    pass"])
    if item.kind == "multiple_choice":
        n = len(item.meta.get("choices") or []) or 4
        letters = [chr(ord("A") + i) for i in range(max(n, 2))]
        others = [x for x in letters if x != gold.strip().upper()[:1]]
        rng.shuffle(others)
        return tuple(others[:3])
    numeric = _is_number(gold.replace(",", ""))
    if item.kind == "reading":  # DROP: another span of the passage, of the same type
        pattern = r"\b\d+(?:\.\d+)?\b" if numeric else r"\b[A-Z][a-z]+(?: [A-Z][a-z]+)*\b"
        spans = [s for s in dict.fromkeys(re.findall(pattern, item.question))
                 if s.lower() != gold.lower()]
        rng.shuffle(spans)
        if numeric and len(spans) < 3:
            spans += [x for x in _num_neighbours(float(gold.replace(",", "")), "", rng) if x not in spans]
        return tuple(spans[:3] or [gold + "s"])
    if numeric:
        return tuple(_num_neighbours(float(gold.replace(",", "")), item.question, rng)[:3])
    # Non-numeric math (LaTeX): change one digit or the sign.
    out = []
    digits = [i for i, ch in enumerate(gold) if ch.isdigit()]
    for _ in range(6):
        if digits:
            i = rng.choice(digits)
            new = gold[:i] + str((int(gold[i]) + rng.randint(1, 8)) % 10) + gold[i + 1 :]
        else:
            new = "-" + gold if not gold.startswith("-") else gold[1:]
        if new != gold and new not in out:
            out.append(new)
    return tuple(out[:3] or ["0"])


# ---------------------------------------------------------------- the request


@dataclass
class SimRequest:
    model: str
    messages: list[dict]
    n: int = 1
    temperature: float = 1.0
    seed: int | None = None
    max_tokens: int | None = None
    json_mode: bool = False

    def text_of(self, role: str | None = None) -> str:
        parts = []
        for m in self.messages:
            if role is None or m.get("role") == role:
                c = m.get("content")
                if isinstance(c, list):
                    c = " ".join(p.get("text", "") for p in c if isinstance(p, dict))
                parts.append(str(c or ""))
        return "\n".join(parts)

    def request_hash(self) -> int:
        return _h(self.model, self.messages, self.json_mode, self.max_tokens)


def requested_keys(text: str) -> list[str]:
    """JSON keys a prompt asks for: a `["a", "b"]` list or the keys of a `{"a": ...}` template."""
    matches = list(_RE_KEYS_LIST.finditer(text))
    m = matches[-1] if matches else None  # the last list shown is the one that applies
    if m is not None and re.search(r"key|json|field", text[max(0, m.start() - 200) : m.start()], re.I):
        return [k.strip("'\" ") for k in re.findall(r"['\"][^'\"]+['\"]", m.group(1))]
    brace = text.rfind("{")
    if brace >= 0:
        keys = _RE_KEY_IN_DICT.findall(text[brace : brace + 2000])
        if keys:
            return list(dict.fromkeys(keys))
    return []


@dataclass
class Intent:
    item: SimItem | None
    keys: list[str]
    json_out: bool
    cot: bool
    verify: bool
    repair: bool
    refine: bool
    program: bool
    boxed: bool


def read_intent(req: SimRequest, index: ItemIndex) -> Intent:
    full = req.text_of()
    users = [m for m in req.messages if m.get("role") == "user"]
    last_user = SimRequest(req.model, users[-1:]).text_of() if users else full
    item = index.lookup(last_user) or index.lookup(full)
    keys = requested_keys(full) if (req.json_mode or "json" in full.lower()) else []
    json_out = req.json_mode or bool(keys)
    lower_keys = {k.lower() for k in keys}
    verify = bool(_RE_VERIFY.search(full)) or bool(lower_keys & set(VERDICT_KEYS))
    code_item = item is not None and item.kind == "code"
    return Intent(
        item=item, keys=keys, json_out=json_out,
        cot=bool(_RE_COT.search(full)) or bool(lower_keys & set(REASON_KEYS)),
        verify=verify and not code_item or (verify and "```" in full and code_item),
        repair=code_item and bool(_RE_REPAIR.search(full)),
        refine=bool(_RE_REFINE.search(full)),
        program=(item is not None and item.kind == "math" and bool(_RE_PROGRAM.search(full))
                 and ("def solution" in full or "write" in full.lower())),
        boxed="boxed" in full or (item is not None and item.benchmark == "math"),
    )


def success_probability(intent: Intent, profile: Profile, temperature: float) -> float:
    item = intent.item
    assert item is not None
    base = profile.accuracy(item.benchmark, item.kind)
    logit = calibrated_offset(base) + SPREAD * item_z(item)
    if intent.cot:
        logit += CUE_COT
    if intent.program:
        logit += CUE_PROGRAM_HARD if item.benchmark == "gsm_hard" else CUE_PROGRAM
    if intent.repair:
        logit += CUE_REPAIR
    elif intent.refine:
        logit += CUE_REFINE
    logit -= 0.3 * max(0.0, temperature - 0.8)  # very hot sampling costs a little accuracy
    return _sigmoid(logit)


# ---------------------------------------------------------------- writing replies


def _reasoning(item: SimItem | None, rng: random.Random, answer: str, long: bool) -> str:
    if item is None:
        return "I considered the request carefully."
    sentences = [s.strip() for s in re.split(r"(?<=[.?!])\s+", item.question) if s.strip()]
    sentences = [s for s in sentences if len(s) < 400][-6:]
    steps = ["Let's think step by step."] if long else []
    for i, s in enumerate(sentences[: 4 if long else 1], 1):
        steps.append(f"Step {i}: From \"{s[:160]}\" we note the relevant quantities.")
    if long:
        steps.append(rng.choice(["Combining these facts", "Putting it together",
                                 "Working through the computation"]) + f", we get {answer[:80]}.")
    return "\n".join(steps)


def _candidate_is_correct(item: SimItem, full: str) -> bool:
    """Does the candidate answer shown in a verifier prompt match the gold answer?"""
    q_words = normalise_tail(full, item.question)
    gold = gold_text(item)
    if item.kind == "code":
        import ast

        for block in re.findall(r"```(?:python)?\n(.*?)```", full, re.S):
            try:
                if ast.dump(ast.parse(block)) == ast.dump(ast.parse(gold)):
                    return True
            except SyntaxError:
                continue
        return False
    if item.kind == "multiple_choice":
        m = re.findall(r"(?:answer|option|choice)\W{0,5}\(?([A-J])\b", q_words, re.I)
        return bool(m) and m[-1].upper() == gold.strip().upper()[:1]
    try:
        g = float(gold.replace(",", ""))
        nums = [float(x.replace(",", "")) for x in _RE_NUM.findall(q_words)]
        return any(abs(x - g) < 1e-6 for x in nums[-3:])
    except ValueError:
        return gold.lower() in q_words.lower()


def normalise_tail(full: str, question: str) -> str:
    """The part of the prompt after the question (where a candidate answer would be)."""
    tail_anchor = question.strip()[-60:]
    pos = full.rfind(tail_anchor) if tail_anchor else -1
    return full[pos + len(tail_anchor) :] if pos >= 0 else full


def _verdict_key_value(key: str, ok: bool) -> str:
    return "True" if ok else "False"


def _as_block(code: str) -> str:
    return f"```python\n{code}\n```"


def write_reply(intent: Intent, req: SimRequest, correct: bool, rng: random.Random,
                profile: Profile) -> str:
    item = intent.item
    full = req.text_of()
    answer = ""
    code_reply = False
    if item is not None:
        if correct:
            answer = gold_text(item)
        else:
            wrongs = wrong_answers(item)
            answer = wrongs[min(len(wrongs) - 1, _pick_rank(rng))] if wrongs else gold_text(item)
        code_reply = item.kind == "code"
    verdict: bool | None = None
    if intent.verify and item is not None and not intent.repair:
        truth = _candidate_is_correct(item, full)
        verdict = truth if correct else not truth
    reasoning = _reasoning(item, rng, answer, long=intent.cot or intent.json_out)

    if intent.program and item is not None:
        program = (f"def solution():\n    # computed from the problem statement\n"
                   f"    return {answer!r}" if not _is_number(answer) else
                   f"def solution():\n    # computed from the problem statement\n"
                   f"    return {answer}")
        if intent.json_out:
            # Bare code in the JSON field, as real models mostly write it; a profile-set share
            # of replies fence it (drawn from the reply's own RNG, so replies stay reproducible).
            fenced = rng.random() < profile.json_code_fence_rate
            code = _as_block(program) if fenced else program
            return json.dumps(_fill_keys(intent.keys, reasoning, code, verdict, item))
        return f"{reasoning}\n\n{_as_block(program)}"

    if intent.json_out:
        return json.dumps(_fill_keys(intent.keys, reasoning, answer, verdict, item))
    if verdict is not None:
        word = "correct" if verdict else "incorrect"
        return f"{reasoning}\nThe proposed answer is {word}."
    if item is None:
        return "Here is my response: " + reasoning
    if code_reply:
        return f"{reasoning}\n\n{_as_block(answer)}" if intent.cot else _as_block(answer)
    if intent.boxed:
        return f"{reasoning}\nThe final answer is $\\boxed{{{answer}}}$."
    if item.kind in ("multiple_choice", "reading"):
        return f"{reasoning}\nAnswer: {answer}"
    return f"{reasoning}\nThe answer is {answer}."


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _pick_rank(rng: random.Random) -> int:
    u = rng.random()
    return 0 if u < 0.5 else 1 if u < 0.8 else 2


def _fill_keys(keys: list[str], reasoning: str, answer: str, verdict: bool | None,
               item: SimItem | None) -> dict:
    keys = keys or ["thinking", "answer"]
    out: dict[str, str] = {}
    for k in keys:
        lk = k.lower()
        if lk in VERDICT_KEYS or "correct" in lk:
            out[k] = _verdict_key_value(k, bool(verdict)) if verdict is not None else "True"
        elif lk in FEEDBACK_KEYS:
            out[k] = ("The answer looks correct." if verdict else
                      "The answer seems wrong; recheck the computation.")
        elif lk in REASON_KEYS:
            out[k] = reasoning
        elif lk in ANSWER_KEYS or "answer" in lk:
            out[k] = answer if item is not None else "I cannot determine the answer."
        else:
            out[k] = f"{k}: {answer}" if answer else f"{k}: see reasoning"
    return out


def respond(req: SimRequest, index: ItemIndex, profile: Profile) -> list[str]:
    """The `n` reply texts for a request."""
    intent = read_intent(req, index)
    rh = req.request_hash()
    hot = req.temperature > 0
    p = success_probability(intent, profile, req.temperature) if intent.item is not None else 0.0
    out = []
    for j in range(max(1, req.n)):
        key = ("sample", req.seed or 0, rh, j) if hot else ("greedy", rh)
        u = _unit(*key)
        rng = random.Random(_h(*key, "text"))
        out.append(write_reply(intent, req, u < p, rng, profile))
    return out
