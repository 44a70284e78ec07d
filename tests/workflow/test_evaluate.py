"""evaluate / self_check / format_feedback / repair_messages with a fake executor (no Ray)."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.workflow.fake_lm import FakeLM
from tests.workflow.helpers import GOOD, gold_lm, run_eval
from w4s_ray.errors import BudgetExceeded, DataError
from w4s_ray.rlao.prompts import format_feedback, repair_messages
from w4s_ray.workflow.errors import TestSplitLeak
from w4s_ray.workflow.evaluate import (
    SEED_STRIDE,
    EvalRequest,
    EvalResult,
    evaluate,
    self_check,
)


def test_scores_in_the_parent_and_counts_calls(gsm8k, sandbox_cfg, eval_cfg):
    lm = gold_lm(gsm8k)
    res = run_eval(GOOD, gsm8k, lm, sandbox_cfg, eval_cfg, limit=5)
    items = gsm8k.load("valid")[:5]
    assert res.item_ids == [it.id for it in items]
    assert res.answers == [it.answer for it in items]
    assert res.scores == [1.0] * 5 and res.accuracy == 1.0 and res.n == 5
    assert res.calls == 5 == len(lm.requests)
    assert res.prompt_tokens == 50 and res.completion_tokens == 25
    assert res.cost_usd == pytest.approx(0.005)
    assert res.cache_misses == 5 and res.cache_hits == 0
    assert res.errors == {} and res.error is None and res.item_errors == [None] * 5
    assert lm.requests[0]["tags"] == {"benchmark": "gsm8k", "candidate": "-"}
    assert lm.requests[0]["response_format"] == "json_object"


def test_wrong_answers_score_zero_but_are_not_errors(gsm8k, sandbox_cfg, eval_cfg):
    code = "def solver(agent, task):\n    return {'answer': '-123456789'}\n"
    res = run_eval(code, gsm8k, gold_lm(gsm8k), sandbox_cfg, eval_cfg, limit=3)
    assert res.scores == [0.0] * 3 and res.errors == {} and res.answers == ["-123456789"] * 3


def test_item_selection_is_deterministic(gsm8k, sandbox_cfg, eval_cfg):
    ids = [it.id for it in gsm8k.load("valid")]
    req = EvalRequest(code=GOOD, benchmark="gsm8k", item_ids=[ids[7], ids[2]])
    res = asyncio.run(evaluate(req, gsm8k, gold_lm(gsm8k), sandbox_cfg, eval_cfg))
    assert res.item_ids == [ids[7], ids[2]] and res.accuracy == 1.0
    with pytest.raises(DataError, match="unknown item id 'nope'"):
        asyncio.run(evaluate(EvalRequest(code=GOOD, benchmark="gsm8k", item_ids=["nope"]),
                             gsm8k, gold_lm(gsm8k), sandbox_cfg, eval_cfg))


def test_repeated_requests_get_distinct_reproducible_occurrences(gsm8k, sandbox_cfg, eval_cfg):
    code = '''
def solver(agent, task):
    outs = []
    for _ in range(3):
        outs += agent.call_llm(messages=[{"role": "user", "content": task}], temperature=0.8)
    return {"answer": "|".join(outs)}
'''
    lm = FakeLM(lambda m, t, j, occ: f"s{occ}")
    res = run_eval(code, gsm8k, lm, sandbox_cfg, eval_cfg, limit=2)
    assert res.answers == ["s0|s1|s2", "s0|s1|s2"]
    again = run_eval(code, gsm8k, lm, sandbox_cfg, eval_cfg, limit=2)
    assert again.answers == res.answers
    req = EvalRequest(code=code, benchmark="gsm8k", limit=1, seed=2)
    seeded = asyncio.run(evaluate(req, gsm8k, lm, sandbox_cfg, eval_cfg))
    assert seeded.answers == [f"s{2 * SEED_STRIDE}|s{2 * SEED_STRIDE + 1}|s{2 * SEED_STRIDE + 2}"]


def test_execute_code_runs_nested(gsm8k, sandbox_cfg, eval_cfg):
    code = '''
import json
def solver(agent, task):
    out = [agent.execute_code("x = 6 * 7\\nx"),
           agent.execute_code("def solution():\\n    return sum(range(5))"),
           agent.execute_code("y = 2 ** 10")]
    for bad in ("1 / 0", "while True: pass", "open('/etc/passwd_copy', 'w')",
                "import os; os.system('true')"):
        try:
            agent.execute_code(bad, timeout=1)
            out.append("no error")
        except Exception as exc:
            out.append(str(exc))
    return {"answer": json.dumps(out)}
'''
    cfg = sandbox_cfg.model_copy(update={"item_timeout_s": 30})
    # The sandbox itself contains these (the w4s guard, which would refuse most of them before
    # any process starts, is off here; see the next test).
    ev = eval_cfg.model_copy(update={"execute_code_guard": False})
    res = run_eval(code, gsm8k, gold_lm(gsm8k), cfg, ev, limit=1)
    assert res.errors == {}, res.item_errors
    out = json.loads(res.answers[0])
    assert out[:3] == [42, 10, 1024]
    assert "ZeroDivisionError" in out[3]
    assert "TimeoutError" in out[4]
    assert "PermissionError" in out[5] and "PermissionError" in out[6]
    assert res.code_runs == 7


def test_execute_code_guard_refuses_upstreams_patterns_with_a_catchable_error(
        gsm8k, sandbox_cfg, eval_cfg):
    """eval.execute_code_guard (w4s): upstream's substring list and loop check refuse a snippet
    before any process starts; the workflow gets an exception it can catch, not a crash."""
    code = '''
import json
def solver(agent, task):
    out = []
    for snippet in ("def solution():\\n    return 6 * 7",
                    "def solution():\\n    i = 0\\n    while i < 3:\\n        i += 1\\n    return i",
                    "def solution():\\n    return open('x').read()",
                    "import os\\ndef solution():\\n    return 1",
                    "import matplotlib\\ndef solution():\\n    return 1",
                    "def solution():\\n    return eval('1+1')",
                    "def solution():\\n    for c in 'abc':\\n        pass\\n    return 1"):
        try:
            out.append(agent.execute_code(snippet))
        except Exception as exc:
            out.append(str(exc))
    return {"answer": json.dumps(out)}
'''
    res = run_eval(code, gsm8k, gold_lm(gsm8k), sandbox_cfg, eval_cfg, limit=1)
    assert res.errors == {}, res.item_errors
    out = json.loads(res.answers[0])
    assert out[0] == 42
    for got, pattern in zip(out[1:6], ("while", "open", "import os", "matplotlib", "eval"),
                            strict=True):
        assert f"unsafe operation detected in code: it contains {pattern!r}" in got
    assert "potential infinite loop" in out[6]  # upstream: a for loop over a constant
    assert res.code_runs == 1  # refused snippets never start a process


def test_public_tests_and_repair_on_mbpp(mbpp, sandbox_cfg, eval_cfg):
    item = mbpp.load("valid")[0]
    entry, reference = item.meta["entry_point"], item.meta["reference_solution"]
    lm = FakeLM(lambda m, t, j, occ: json.dumps({"reflection": "fix", "code": reference}))
    code = f'''
def solver(agent, task):
    wrong = "def {entry}(*args):\\n    return None\\n"
    res = agent.test_on_public_test(task=task, solution=wrong, entry_point="{entry}")
    return {{"answer": res["solution"], "passed": res["result"], "count": res["count"]}}
'''
    req = EvalRequest(code=code, benchmark="mbpp", item_ids=[item.id])
    res = asyncio.run(evaluate(req, mbpp, lm, sandbox_cfg, eval_cfg))
    assert res.errors == {}, res.item_errors
    assert res.answers == [reference] and res.scores == [1.0]
    assert res.calls == 1  # one repair request
    prompt = lm.requests[0]["messages"][-1]["content"]
    assert item.question in prompt and mbpp.public_tests(item).strip() in prompt
    hidden = item.meta.get("test", "")
    assert not hidden or hidden.strip() not in prompt or hidden == mbpp.public_tests(item)


def test_executor_errors_fail_items_with_kind_executor(gsm8k, sandbox_cfg, eval_cfg):
    res = run_eval(GOOD, gsm8k, FakeLM(fail="cannot reach executor"), sandbox_cfg, eval_cfg)
    assert res.errors == {"executor": 2}
    assert res.error and "cannot reach executor" in res.error


def test_budget_exceeded_stops_the_evaluation(gsm8k, sandbox_cfg, eval_cfg):
    with pytest.raises(BudgetExceeded):
        run_eval(GOOD, gsm8k, FakeLM(budget_after=1), sandbox_cfg, eval_cfg, limit=4)


def test_invalid_code_is_a_load_error_without_a_process(gsm8k, sandbox_cfg, eval_cfg):
    res = run_eval("def solve(agent, task):\n    pass\n", gsm8k, gold_lm(gsm8k),
                   sandbox_cfg, eval_cfg, limit=3)
    assert res.error == "no function named solver"
    assert res.errors == {"load_error": 3} and res.scores == [0.0] * 3


def test_result_round_trips_as_a_dict(gsm8k, sandbox_cfg, eval_cfg):
    res = run_eval(GOOD, gsm8k, gold_lm(gsm8k), sandbox_cfg, eval_cfg)
    again = EvalResult.from_dict(json.loads(json.dumps(res.to_dict())))
    assert again == res


# ----------------------------------------------------------------------------- feedback


def _result(bm, split="valid"):
    items = bm.load("valid")[:6]
    scores = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    return EvalResult(
        benchmark=bm.name, split=split, accuracy=0.5, n=6, scores=scores,
        answers=["a", "17", "c", None, "e", "99"], item_ids=[it.id for it in items],
        item_errors=[None, None, None, "timeout: item time limit (3 s)", None, None],
        errors={"timeout": 1},
        cases=[{"index": j, "question": it.question, "answer": it.answer}
               for j, (it, s) in enumerate(zip(items, scores, strict=True)) if s < 1.0]), items


def test_validation_results_carry_their_failure_cases(gsm8k, sandbox_cfg, eval_cfg):
    """The evaluator attaches question + correct answer of each failed validation item, so
    feedback needs no benchmark; test results carry none."""
    code = "def solver(agent, task):\n    return {'answer': '-123456789'}\n"
    res = run_eval(code, gsm8k, gold_lm(gsm8k), sandbox_cfg, eval_cfg, limit=3)
    items = gsm8k.load("valid")[:3]
    assert res.cases == [{"index": j, "question": it.question, "answer": it.answer}
                         for j, it in enumerate(items)]
    assert "Correct answer\n" + items[0].answer in format_feedback(res, 3)
    test_req = EvalRequest(code=code, benchmark="gsm8k", split="test", limit=2)
    test_res = asyncio.run(evaluate(test_req, gsm8k, gold_lm(gsm8k, "test"), sandbox_cfg,
                                    eval_cfg))
    assert test_res.cases == [] and test_res.scores == [0.0, 0.0]


def test_feedback_has_accuracy_delta_and_failure_cases(gsm8k):
    res, items = _result(gsm8k)
    text = format_feedback(res, k=2, prev_accuracy=0.25)
    assert "50.0%" in text and "improved by 25.0 points" in text
    assert text.count("### Case") == 2
    assert "timeout: 1" in text
    for j in (1, 3, 5):
        if items[j].question in text:
            assert items[j].answer in text
    assert items[0].question not in text  # correct items are not failure cases
    assert format_feedback(res, 2, 0.25) == text  # reproducible
    everything = format_feedback(res, 10)
    assert everything.count("### Case") == 3 and "previous" not in everything
    assert "(no answer) timeout" in everything


SENTENCE = '''
def solver(agent, task):
    r = agent.call_json_format_llm(messages=[{"role": "user", "content": task}],
                                   return_dict_keys=["answer"])
    return {"answer": "The answer is " + str(r[0]["answer"])}
'''


def test_official_scoring_and_format_hints_reach_the_feedback(data_dir, sandbox_cfg, eval_cfg):
    """GSM-Hard's official rule is float() of the whole answer: a right value in a sentence
    scores 0 and its failure case carries a scoring note that does not repeat the gold."""
    from w4s_ray.benchmarks import get_benchmark

    bm = get_benchmark("gsm_hard", data_dir)
    items = bm.load("valid")[:3]
    res = run_eval(SENTENCE, bm, gold_lm(bm), sandbox_cfg, eval_cfg, limit=3)
    assert res.scoring == "official" and res.summary()["scoring"] == "official"
    assert res.scores == [0.0] * 3 and all(h and "float()" in h for h in res.format_hints)
    assert not any(it.answer in h for it, h in zip(items, res.format_hints, strict=True))
    text = format_feedback(res, 3)
    assert text.count("#### Scoring note") == 3 and "value right" in text
    lenient = run_eval(SENTENCE, bm, gold_lm(bm), sandbox_cfg,
                       eval_cfg.model_copy(update={"scoring": "lenient"}), limit=3)
    assert lenient.scoring == "lenient" and lenient.scores == [1.0] * 3
    assert lenient.format_hints == [None] * 3


def test_wrong_values_get_no_format_hint(data_dir, sandbox_cfg, eval_cfg):
    from w4s_ray.benchmarks import get_benchmark

    bm = get_benchmark("gsm_hard", data_dir)
    code = "def solver(agent, task):\n    return {'answer': 'The answer is -123456789.5'}\n"
    res = run_eval(code, bm, gold_lm(bm), sandbox_cfg, eval_cfg, limit=2)
    assert res.scores == [0.0, 0.0] and res.format_hints == [None, None]
    assert "Scoring note" not in format_feedback(res, 2)


def test_feedback_refuses_test_split_results(gsm8k):
    res, items = _result(gsm8k, split="test")
    with pytest.raises(TestSplitLeak, match="validation-only"):
        format_feedback(res, 3, 0.1)
    with pytest.raises(ValueError):
        format_feedback(res, 3, 0.1)


# ----------------------------------------------------------------------------- self-check


def test_self_check_passes_a_working_workflow(gsm8k, sandbox_cfg, eval_cfg):
    check = asyncio.run(self_check(GOOD, gsm8k, gold_lm(gsm8k), sandbox_cfg, eval_cfg))
    assert check.ok and check.kind is None and check.result.n == 1


def test_self_check_returns_traceback_and_failing_line(gsm8k, sandbox_cfg, eval_cfg):
    code = '''import json

def helper(x):
    return x["missing"]

def solver(agent, task):
    r = agent.call_json_format_llm(messages=[{"role": "user", "content": task}],
                                   return_dict_keys=["answer"])
    value = helper(r[0])
    return {"answer": value}
'''
    check = asyncio.run(self_check(code, gsm8k, gold_lm(gsm8k), sandbox_cfg, eval_cfg))
    assert not check.ok and check.kind == "exception"
    assert check.error == "KeyError: 'missing'"
    assert check.line == 4 and check.line_text == 'return x["missing"]'
    assert 'File "<workflow>", line 9, in solver' in check.traceback
    assert 'File "<workflow>", line 4, in helper' in check.traceback
    assert "children/workflow.py" not in check.traceback
    msgs = repair_messages(code, check)
    assert len(msgs) == 1 and msgs[0]["role"] == "user"
    body = msgs[0]["content"]
    assert "KeyError: 'missing'" in body and 'line 4 of your workflow: `return x["missing"]`' in body
    assert code.strip() in body and "solver(agent, task)" in body


def test_self_check_reports_load_errors_and_bad_returns(gsm8k, sandbox_cfg, eval_cfg):
    lm = gold_lm(gsm8k)
    syntax = asyncio.run(self_check("def solver(agent, task)\n  pass", gsm8k, lm, sandbox_cfg,
                                    eval_cfg))
    assert not syntax.ok and syntax.kind == "load_error"
    assert syntax.error.startswith("syntax error at line 1")
    bad = asyncio.run(self_check("def solver(agent, task):\n    return 'x'\n", gsm8k, lm,
                                 sandbox_cfg, eval_cfg))
    assert not bad.ok and bad.kind == "bad_return"
    assert "must return a dict" in repair_messages("code", bad)[0]["content"]


def test_strict_mode_stops_at_the_first_failure(gsm8k, sandbox_cfg, eval_cfg):
    code = "def solver(agent, task):\n    raise RuntimeError('x')\n"
    res = run_eval(code, gsm8k, gold_lm(gsm8k), sandbox_cfg, eval_cfg.model_copy(
        update={"max_inflight_per_evaluator": 1}), limit=6, strict=True)
    assert res.first_failure["index"] == 0 and res.first_failure["kind"] == "exception"
    assert sum(res.errors.values()) < 6


def test_repair_messages_accepts_strings_and_exceptions():
    from w4s_ray.workflow.errors import WorkflowError

    m1 = repair_messages("def solver(agent, task): pass", WorkflowError("no python code block"))
    assert "no python code block" in m1[0]["content"]
    m2 = repair_messages("x", "timeout")
    assert "Error: timeout" in m2[0]["content"]
