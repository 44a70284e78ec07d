"""The AFlow operator library: unit tests with a fake `agent`, and graphs that use every
operator evaluated through the real workflow runtime (sandbox child) with `OracleLM`."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.baselines.oracle import OracleLM
from w4s_ray.config import EvalConfig, SandboxConfig
from w4s_ray.optimizers import aflow_graph as G
from w4s_ray.optimizers.aflow_operators import Operators, as_answer
from w4s_ray.workflow.evaluate import EvalRequest, evaluate


class FakeAgent:
    def __init__(self, text=(), json_replies=(), exec_results=()):
        self.text, self.json, self.exec = list(text), list(json_replies), list(exec_results)
        self.prompts: list[str] = []
        self.instructions: list[str] = []
        self.executed: list[str] = []

    def call_llm(self, messages, temperature=1.0, **kw):
        self.prompts.append(messages[-1]["content"])
        return [self.text.pop(0)]

    def call_json_format_llm(self, messages, return_dict_keys=(), instructions="", **kw):
        self.prompts.append(messages[-1]["content"])
        self.instructions.append(instructions)
        return [self.json.pop(0)]

    def execute_code(self, code, timeout=5):
        self.executed.append(code)
        result = self.exec.pop(0)
        if isinstance(result, Exception):
            raise result
        return result


def test_custom_concatenates_instruction_and_input():
    agent = FakeAgent(text=["42"])
    assert Operators(agent).custom(input="Q?", instruction="Solve: ") == {"response": "42"}
    assert agent.prompts == ["Solve: Q?"]


def test_sc_ensemble_returns_the_chosen_solution_or_the_most_common():
    agent = FakeAgent(json_replies=[{"thought": "", "solution_letter": "(B)"},
                                    {"thought": "", "solution_letter": "Z"}])
    ops = Operators(agent)
    assert ops.sc_ensemble(["7", "8", "8"], "Q")["response"] == "8"
    assert "A:\n7" in agent.prompts[0] and "C:\n8" in agent.prompts[0]
    assert ops.sc_ensemble(["1", "2", "2"], "Q")["response"] == "2"


def test_programmer_feeds_errors_back_and_wraps_solve():
    block = "```python\ndef solve():\n    return 6 * 7\n```"
    agent = FakeAgent(text=[block, block], exec_results=[Exception("ZeroDivisionError"), 42])
    out = Operators(agent).programmer("What is 6 times 7?")
    assert out == {"code": "def solve():\n    return 6 * 7", "output": "42"}
    assert "ZeroDivisionError" in agent.prompts[1] and "ZeroDivisionError" not in agent.prompts[0]
    assert agent.executed[0].endswith("def solution():\n    return solve()\n")


def test_review_format_and_answer_shapes():
    agent = FakeAgent(json_replies=[{"review_result": "False", "feedback": "off by one"},
                                    {"review_result": True, "feedback": ""},
                                    {"answer": "12"}])
    ops = Operators(agent)
    ops.answer_format = "A single number."
    assert ops.review("Q", "11") == {"review_result": False, "feedback": "off by one"}
    assert ops.review("Q", "12")["review_result"] is True
    assert ops.format("Q", "so it is 12") == {"response": "12"}
    assert "A single number." in agent.instructions[-1]
    assert as_answer(("x", 0.1)) == "x" and as_answer({"solution": 3}) == "3"
    assert as_answer(None) == ""


MATH_GRAPH = """class Workflow(Operators):
    def __call__(self, problem):
        drafts = [self.answer_generate(input=problem)["answer"] for _ in range(2)]
        drafts.append(self.programmer(problem=problem)["output"])
        drafts.append(self.custom(input=problem, instruction=prompt_custom.SOLVE)["response"])
        best = self.sc_ensemble(solutions=drafts, problem=problem)["response"]
        review = self.review(problem=problem, solution=best)
        if not review["review_result"]:
            best = self.revise(problem=problem, solution=best,
                               feedback=review["feedback"])["solution"]
        return self.format(problem=problem, solution=best)["response"]
"""

CODE_GRAPH = """class Workflow(Operators):
    def __call__(self, problem, entry_point):
        drafts = [self.custom_code_generate(problem=problem, entry_point=entry_point,
                                            instruction=prompt_custom.CODE)["response"]
                  for _ in range(2)]
        best = self.sc_ensemble(solutions=drafts, problem=problem)["response"]
        return self.test(problem=problem, solution=best, entry_point=entry_point)["solution"]
"""


@pytest.mark.parametrize("bench,graph,prompts", [
    ("gsm8k", MATH_GRAPH, 'SOLVE = "Solve step by step: "'),
    ("mbpp", CODE_GRAPH, 'CODE = "Write the function.\\n"'),
])
def test_graphs_with_every_operator_run_in_the_sandbox(bench, graph, prompts, request):
    bm = request.getfixturevalue(bench)
    cand = G.check_candidate(graph, prompts, bm.kind)
    code = G.render_workflow(cand, bm.kind, bm.answer_format)
    lm = OracleLM([bm], verdict="False")  # review rejects: revise runs too
    req = EvalRequest(code=code, benchmark=bm.name, split="valid", limit=2)
    res = asyncio.run(evaluate(req, bm, lm, SandboxConfig(item_timeout_s=60),
                               EvalConfig(max_inflight_per_evaluator=4)))
    assert res.errors == {} and res.error is None, res.item_errors
    assert res.accuracy == 1.0, res.answers
    if bm.kind == "math":
        assert res.code_runs >= 2  # the programmer's code ran in the nested sandbox
        keys = [json.loads(json.dumps(r["messages"][0]["content"])) for r in lm.requests]
        assert any("'review_result'" in k for k in keys) and any("'solution'" in k
                                                                  for k in keys)
