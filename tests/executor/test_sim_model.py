"""The simulator's model of an LLM, in process (no HTTP): recognition, accuracy, formats."""

from __future__ import annotations

import ast
import json
import statistics
from collections import Counter

import pytest

from tests.fixtures.sim import SYNTHETIC_ITEMS, answer_of, gsm8k_valid_items
from w4s_ray.executor.sim.index import ItemIndex, SimItem
from w4s_ray.executor.sim.model import (
    SimRequest,
    _sigmoid,
    calibrated_offset,
    gold_text,
    item_z,
    requested_keys,
    respond,
    wrong_answers,
)
from w4s_ray.executor.sim.profiles import PROFILES, get_profile

P = PROFILES["sim-gpt-4o-mini"]


def items(rows=SYNTHETIC_ITEMS):
    return [SimItem(r["benchmark"], r["kind"], r["id"], r["question"], r["answer"], r.get("meta", {}))
            for r in rows]


@pytest.fixture(scope="module")
def index():
    return ItemIndex(items())


@pytest.fixture(scope="module")
def gsm(data_dir):
    its = items(gsm8k_valid_items(data_dir))
    return its, ItemIndex(its)


def ask(index, text, n=1, temperature=0.0, seed=0, json_mode=False, system=None):
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    return respond(SimRequest("sim-gpt-4o-mini", msgs, n, temperature, seed, None, json_mode), index, P)


def test_index_finds_item_wrapped_in_instructions(index):
    q = SYNTHETIC_ITEMS[0]["question"]
    wrapped = f"You are a careful solver.\n\nTask:\n{q.upper()}\n\nGive only the number."
    assert index.lookup(wrapped).id == "syn-math-1"
    assert index.lookup("A totally unrelated prompt about poetry and the sea.") is None


def test_index_remembers_repeated_prompts_and_forgets_on_add():
    idx = ItemIndex(items())
    q = SYNTHETIC_ITEMS[0]["question"]
    first = idx.lookup(f"Solve: {q}")
    calls = []
    real = idx._lookup
    idx._lookup = lambda text: calls.append(text) or real(text)
    assert idx.lookup(f"Solve: {q}") is first and calls == []  # a repeat costs no search
    assert idx.lookup("poetry and the sea, nothing else here at all") is None
    assert idx.lookup("poetry and the sea, nothing else here at all") is None
    assert len(calls) == 1  # misses are remembered too
    # An item added later can change what a prompt matches: the memory is dropped.
    idx.add(SimItem("poems", "qa", "sea-1", "poetry and the sea, nothing else here at all",
                    "x", {}))
    assert idx.lookup("poetry and the sea, nothing else here at all").id == "sea-1"


def test_index_prefers_the_last_item_of_a_few_shot_prompt(index):
    a, b = SYNTHETIC_ITEMS[0]["question"], SYNTHETIC_ITEMS[1]["question"]
    assert index.lookup(f"Example: {a} Answer: 12\n\nNow solve: {b}").id == "syn-mc-1"
    assert index.lookup(f"Example: {b} Answer: B\n\nNow solve: {a}").id == "syn-math-1"


def test_index_finds_partially_quoted_long_question(gsm):
    its, idx = gsm
    words = its[3].question.split()
    partial = "Consider: " + " ".join(words[: int(len(words) * 0.8)]) + " ... what is asked?"
    assert idx.lookup(partial).id == its[3].id


def test_temperature_zero_is_deterministic(index):
    q = SYNTHETIC_ITEMS[0]["question"]
    assert ask(index, q) == ask(index, q) == ask(index, q, seed=123)


def test_hot_samples_are_seeded_and_independent(gsm):
    its, idx = gsm
    a0 = calibrated_offset(P.benchmark_accuracy["gsm8k"])
    hard = min(its, key=lambda it: abs(a0 + 1.5 * item_z(it)))  # an item with p near 0.5
    a = ask(idx, hard.question, n=20, temperature=1.0, seed=7)
    assert a == ask(idx, hard.question, n=20, temperature=1.0, seed=7)
    assert a != ask(idx, hard.question, n=20, temperature=1.0, seed=8)
    assert len({answer_of(t) for t in a}) > 1  # right and wrong draws both occur


def test_calibration_mean_over_items_equals_base():
    for base in (0.1, 0.45, 0.88):
        a = calibrated_offset(base)
        zs = [statistics.NormalDist().inv_cdf((k + 0.5) / 2000) for k in range(2000)]
        assert statistics.fmean(_sigmoid(a + 1.5 * z) for z in zs) == pytest.approx(base, abs=0.005)


def test_gsm8k_accuracy_near_profile_and_cues_help(gsm):
    its, idx = gsm
    plain = [answer_of(ask(idx, it.question)[0]) == it.answer for it in its]
    cot = [answer_of(ask(idx, it.question + "\nLet's think step by step.")[0]) == it.answer
           for it in its]
    acc_plain, acc_cot = statistics.fmean(plain), statistics.fmean(cot)
    assert abs(acc_plain - P.benchmark_accuracy["gsm8k"]) < 0.07
    assert acc_cot > acc_plain


def test_majority_vote_beats_a_single_sample(gsm):
    its, idx = gsm
    single, vote = [], []
    for it in its[:150]:
        outs = [answer_of(t) for t in ask(idx, it.question, n=9, temperature=1.0, seed=3)]
        single.append(outs[0] == it.answer)
        vote.append(Counter(outs).most_common(1)[0][0] == it.answer)
    assert statistics.fmean(vote) > statistics.fmean(single)


def test_weaker_profile_is_less_accurate(gsm):
    its, idx = gsm
    accs = {}
    for name in ("sim-gpt-3.5-turbo", "sim-gpt-4o"):
        prof = get_profile("openai/" + name)
        accs[name] = statistics.fmean(
            answer_of(respond(SimRequest(name, [{"role": "user", "content": it.question}], 1, 0.0),
                              idx, prof)[0]) == it.answer for it in its)
    assert accs["sim-gpt-3.5-turbo"] < accs["sim-gpt-4o"]


def test_wrong_answers_are_plausible(index, gsm):
    its, _ = gsm
    for it in its[:20]:
        wrong = wrong_answers(it)
        assert wrong and it.answer not in wrong
        assert all(w.lstrip("-").replace(".", "", 1).isdigit() for w in wrong)  # near-miss numbers
    mc = index.items[1]
    assert set(wrong_answers(mc)) <= {"A", "C", "D"}
    drop = index.items[2]
    assert all(w in drop.question for w in wrong_answers(drop))  # other spans of the passage


def test_code_wrong_answers_are_buggy_programs(index):
    code = index.items[3]
    ns: dict = {}
    exec(compile(code.meta["reference_solution"], "ref", "exec"), ns)  # noqa: S102 - our own fixture
    cases = [([1, -2, 3], 2), ([], 0), ([0, 0, 5], 1), ([-1, -1], 0), ([2, 2, 2, 2, 0], 4)]
    for mutant in wrong_answers(code):
        ast.parse(mutant)
        env: dict = {}
        exec(compile(mutant, "mutant", "exec"), env)  # noqa: S102 - mutant of our own fixture
        try:
            results = [env["count_positive"](list(x)) == want for x, want in cases]
        except Exception:  # noqa: BLE001 - a crashing mutant is also a failing one
            results = [False]
        assert not all(results), mutant


def test_repair_prompt_returns_reference_more_often(index):
    code = index.items[3]
    plain = f"Complete this function:\n{code.question}"
    repair = plain + "\nYour previous attempt failed. Traceback: AssertionError in test 2. Fix the code."
    prof = PROFILES["sim-gpt-3.5-turbo"]

    def rate(text):
        outs = respond(SimRequest("x", [{"role": "user", "content": text}], 200, 1.0, 1), index, prof)
        ref = ast.dump(ast.parse(code.meta["reference_solution"]))
        return statistics.fmean(ref in ast.dump(ast.parse(o.split("```python\n")[1].split("```")[0]))
                                for o in outs)

    assert rate(repair) > rate(plain)


def test_json_reply_has_requested_keys(index):
    q = SYNTHETIC_ITEMS[0]["question"]
    out = ask(index, q + '\nReply in JSON with keys ["reasoning", "answer"].', json_mode=True)[0]
    d = json.loads(out)
    assert set(d) == {"reasoning", "answer"} and d["answer"] in {"12", *wrong_answers(index.items[0])}
    adas = "Reply EXACTLY with the following JSON format.\n{'thinking': 'Your thinking.', 'answer': 'Your answer.'}"
    assert set(json.loads(ask(index, q, system=adas)[0])) == {"thinking", "answer"}
    unknown = json.loads(ask(index, 'Write a haiku. Return JSON {"title": "...", "poem": "..."}')[0])
    assert set(unknown) == {"title", "poem"}


def test_requested_keys_parsing():
    assert requested_keys('Answer as JSON with keys ["a", "b_c"]') == ["a", "b_c"]
    assert requested_keys('Use this JSON format: {"feedback": "...", "correct": "True or False"}') == ["feedback", "correct"]
    assert requested_keys("no structure here") == []


def test_verifier_judges_candidates_with_profile_accuracy(index):
    q = SYNTHETIC_ITEMS[0]["question"]
    fmt = '\nReturn JSON {"feedback": "...", "correct": "True/False"}'

    def verdicts(candidate):
        prompt = f"Verify the answer to this problem.\n{q}\nProposed answer: {candidate}{fmt}"
        outs = ask(index, prompt, n=300, temperature=1.0, seed=5, json_mode=True)
        return statistics.fmean(json.loads(o)["correct"] == "True" for o in outs)

    # Right candidates are mostly accepted, wrong ones mostly rejected.
    assert verdicts("12") > 0.65
    assert verdicts("14") < 0.35


def test_math_program_prompt_returns_solution_function(index):
    q = SYNTHETIC_ITEMS[0]["question"]
    out = ask(index, f"Write Python code with a function def solution() that solves:\n{q}")[0]
    code = out.split("```python\n")[1].split("```")[0]
    env: dict = {}
    exec(code, env)  # noqa: S102 - the simulator's own output in a test
    assert str(env["solution"]()) in {"12", *wrong_answers(index.items[0])}


def test_gold_text_is_creditable_by_the_official_scorers():
    """A fraction gold of a number benchmark is answered as a decimal (AFlow's rule reads
    "1/4" as 4); MATH golds stay exactly as written (float() would mangle "221_3")."""
    assert gold_text(SimItem("gsm_plus", "math", "p/1", "q", "1/4")) == "0.25"
    assert float(gold_text(SimItem("gsm_plus", "math", "p/2", "q", "1/3"))) == 1 / 3
    assert gold_text(SimItem("gsm8k", "math", "g/1", "q", "18")) == "18"
    for gold in ("221_3", "-1,0,1", "10.0", "\\frac{1}{2}"):
        assert gold_text(SimItem("math", "math", "m/1", "q", gold)) == gold


def test_json_code_fields_hold_bare_code_mostly(gsm):
    """A program-aided answer in JSON mode is bare code that `execute_code` can run; a
    profile-set share (json_code_fence_rate, 0.1) fences it as some real models do."""
    its, idx = gsm
    system = ("You are a helpful Python programmer.\nReply in JSON format, ONLY using the keys "
              "['reasoning', 'code'].\nThe code must define a solution() function.")
    fenced = total = 0
    for it in its[:40]:
        out = ask(idx, f"Write Python code to solve this problem.\nProblem: {it.question}", n=5,
                  temperature=0.8, seed=1, json_mode=True, system=system)
        for text in out:
            code = json.loads(text)["code"]
            total += 1
            if code.lstrip().startswith("```"):
                fenced += 1
            else:
                ns: dict = {}
                exec(compile(code, "<sim code>", "exec"), ns)  # noqa: S102 - simulator output
                assert callable(ns["solution"])
    assert 0 < fenced / total < 0.25 and P.json_code_fence_rate == 0.1
