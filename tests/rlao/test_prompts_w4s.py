"""The w4s prompt of every benchmark carries every instruction of the authors' prompt
(fannie1208/W4S src/tasks/gsmhard/prompt.py, in this project's words), its feedback samples
correct cases too, reproducibly, and no test number ever reaches it."""

from __future__ import annotations

import json
import re

import pytest

from w4s_ray.benchmarks import get_benchmark, list_benchmarks
from w4s_ray.rlao import prompts_w4s as pw
from w4s_ray.rlao import w4s
from w4s_ray.rlao.mdp import ArchiveEntry, Candidate
from w4s_ray.workflow.errors import TestSplitLeak
from w4s_ray.workflow.evaluate import EvalResult

# Each upstream instruction and a pattern that shows it is in the prompt.
INSTRUCTIONS = {
    "role: improve agentic systems from evidence": r"expert in improving agentic systems",
    "what worked, what did not, and why": r"what helped, what did not, and why",
    "build on successes, explore new approaches": r"build on what has already worked",
    "interface solver(agent, task: str) -> dict": r"solver\(agent, task: str\) -> dict",
    "answer under the key answer": r'final answer MUST be under the key "answer"',
    "agent API: call_json_format_llm": r"agent\.call_json_format_llm\(messages, temperature, "
                                       r"num_of_response, agent_role, return_dict_keys, "
                                       r"instructions\)",
    "agent API: execute_code with solution()": r"agent\.execute_code\(code\)`: .*`solution\(\)`",
    "analyse before changing": r"Always begin with an analysis",
    "case studies of low-score cases": r"case studies of the LOW-SCORE",
    "no overfitting to validation cases": r"do NOT overfit",
    "keep the input/output contract": r"Keep the input and the output of the function",
    "no unnecessary changes": r"Make no unnecessary changes",
    "roles user/assistant only": r"may only be `user` or `assistant`",
    "no system prompt in messages": r"Never put a system prompt in",
    "several calls and rounds": r"several times, over several rounds",
    "num_of_response for several outputs": r"set `num_of_response`",
    "always set agent role and instructions": r"MUST always set `agent_role` and\s+"
                                              r"`instructions`",
    "state key formats": r"\(int, float, an enum value, a list, \.\.\.\)",
    "improve prompts from task, cases, roles, techniques": r"Improve the prompts using the task",
    "return_dict_keys variants": r'return_dict_keys=\["reasoning", "code"\]',
    "explore other methods when stalled": r"If performance does not improve, explore",
    "fallback: more generations and executions": r"generate and execute code more than once",
    "fallback: self-consistency": r"combine code execution with self-consistency",
    "fallback: direct reasoning": r"fall back to answering by direct LLM reasoning",
    "fallback: several fallbacks": r"chain several fallbacks",
    "technique: CoT": r"\*\*Chain-of-Thought\*\*",
    "technique: self-consistency": r"\*\*Self-consistency\*\*",
    "technique: LLM debate": r"\*\*LLM Debate\*\*",
    "technique: dynamic role assignment": r"\*\*Dynamic Assignment of Roles\*\*",
    "technique: task decomposition": r"\*\*Task Decomposition\*\*",
    "technique: reflective evaluation": r"\*\*Reflective Evaluation\*\*",
    "technique: iterative refinement": r"\*\*Iterative Refinement\*\*",
    "technique: code generation": r"\*\*Code Generation\*\*",
    "techniques combine": r"Techniques can be combined",
    "task description with an example": r"Example Question",
    "archive with validation accuracy": r'"validation_accuracy"',
    "output format: analysis then one solver block": r"1\. Your analysis\.\s+2\. The complete "
                                                     r"new `solver` in ONE Python code block",
    "helpers and imports inside solver": r"helper function and import inside this function",
}
TEST_ACC = 0.8137


def _first_prompt(name: str, data_dir) -> tuple[str, str]:
    bm = get_benchmark(name, data_dir)
    examples = [ArchiveEntry(n, code, 0.4 + i / 10, f"FEEDBACK-{n}", test_accuracy=TEST_ACC)
                for i, (n, code) in enumerate(bm.seed_workflows().items())]
    state = w4s.initial_state(name, bm.task_description, examples)
    msgs = pw.build_messages(state, pw.PromptSpec(bm.kind, bm.answer_format))
    assert [m["role"] for m in msgs] == ["system", "user"]
    return msgs[0]["content"], msgs[1]["content"]


@pytest.mark.parametrize("name", list_benchmarks())
def test_every_upstream_instruction_is_in_every_benchmarks_first_prompt(name, data_dir):
    system, user = _first_prompt(name, data_dir)
    text = system + "\n" + user
    missing = [k for k, pat in INSTRUCTIONS.items() if not re.search(pat, text, re.S)]
    assert not missing, f"{name}: {missing}"
    bm = get_benchmark(name, data_dir)
    assert bm.task_description.strip() in user and bm.answer_format in user
    # Code benchmarks also get the public-test helpers; nobody gets a test number.
    assert ("test_on_public_test" in user) == (bm.kind == "code")
    for form in ("0.8137", "81.37", "81.4", "test_acc"):
        assert form not in text


def test_gsm_hard_gets_an_example_solution(data_dir):
    _, user = _first_prompt("gsm_hard", data_dir)
    assert "Example solution" in user and "def solution():" in user
    assert "Final answer: 2180" in user


def test_only_the_last_archive_entry_shows_feedback(data_dir):
    _, user = _first_prompt("gsm8k", data_dir)
    start = user.index("[\n{")
    archive, _ = json.JSONDecoder().raw_decode(user[start:])
    assert ["feedback" in e for e in archive] == [False] * (len(archive) - 1) + [True]
    assert archive[-1]["feedback"].startswith("FEEDBACK-")


def _result(n=30, correct=18, split="valid"):
    scores = [1.0] * correct + [0.0] * (n - correct)
    return EvalResult(
        benchmark="gsm8k", split=split, accuracy=correct / n, n=n, scores=scores,
        answers=[f"ans{j}" for j in range(n)], item_ids=[f"i{j}" for j in range(n)],
        item_errors=[None] * n, format_hints=[None] * n,
        cases=[{"index": j, "question": f"Q{j}?", "answer": f"gold{j}"} for j in range(n)])


def test_feedback_samples_ten_cases_from_all_items_reproducibly():
    res = _result()
    seed = pw.feedback_seed("def solver(agent, task): pass", res.item_ids)
    text = pw.format_feedback(res, 10, seed=seed)
    assert text.startswith("Validation accuracy: 0.6000 (18 of 30 items correct)")
    assert text.count("### Case") == 10
    assert "Correct: yes" in text and "Correct: no" in text  # correct ones included
    assert text == pw.format_feedback(res, 10, seed=seed)  # same workflow, same cases
    other = pw.format_feedback(res, 10, seed=pw.feedback_seed("other", res.item_ids))
    assert other != text
    assert pw.format_feedback(_result(n=4, correct=1), 10).count("### Case") == 4
    with pytest.raises(TestSplitLeak):
        pw.format_feedback(_result(split="test"), 10)


def test_observation_compares_with_the_frozen_reference_best():
    s = w4s.initial_state("b", "d", [ArchiveEntry("ex", "c", 0.6, "fb")])
    s, _ = w4s.advance(s, [Candidate(0, "reply", "code", 0.7, "FB-0")])
    msgs = pw.build_messages(s, pw.PromptSpec("math"))
    assert msgs[2] == {"role": "assistant", "content": "reply"}
    assert "FB-0" in msgs[3]["content"]
    assert "increased from 0.60 to 0.70" in msgs[3]["content"]


def test_repair_message_and_splice():
    msg = pw.repair_message({"kind": "exception", "error": "KeyError: 'x'", "traceback": "tb",
                             "line": 4, "line_text": "y = d['x']"})
    assert msg["role"] == "user" and "KeyError: 'x'" in msg["content"]
    assert "do NOT add any try/except" in msg["content"]
    assert "Failing line 4 of your workflow" in msg["content"]
    original = "Plan.\n```python\ndef solver(agent, task):\n    return 1\n```\nEnd."
    spliced = pw.splice(original, "def solver(agent, task):\n    return {'answer': 2}\n")
    assert spliced == ("Plan.\n```python\ndef solver(agent, task):\n    return {'answer': 2}"
                       "\n```\nEnd.")
    assert pw.splice("no block", "def solver(agent, task): pass").endswith(
        "```python\ndef solver(agent, task): pass\n```")
