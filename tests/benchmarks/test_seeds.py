"""Seed workflows: valid Python defining solver(agent, task), and they work end to end.

The end-to-end check runs each seed (trusted code, in the test process) against a fake agent
that answers with the item's gold, then scores the workflow's answer with the benchmark scorer:
a seed that drops, mangles or mis-keys the answer fails here.
"""

from __future__ import annotations

import ast

import pytest

from w4s_ray.benchmarks import get_benchmark, list_benchmarks
from w4s_ray.benchmarks.seeds import check_solver_source

EXPECTED = {"math": {"cot", "cot_sc", "code_generation"}, "code": {"cot", "cot_sc", "test_repair"},
            "multiple_choice": {"cot", "cot_sc"}, "reading": {"cot", "cot_sc"}}


@pytest.mark.parametrize("name", list_benchmarks())
def test_seeds_parse_and_define_solver(name, data_dir):
    bm = get_benchmark(name, data_dir)
    seeds = bm.seed_workflows()
    assert set(seeds) == EXPECTED[bm.kind]
    for source in seeds.values():
        tree = ast.parse(source)
        fn = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "solver"]
        assert len(fn) == 1 and [a.arg for a in fn[0].args.args] == ["agent", "task"]
        assert "__ANSWER_INSTRUCTIONS__" not in source and "__ROLE__" not in source
        check_solver_source(source)


def test_instructions_are_benchmark_specific(data_dir):
    math_cot = get_benchmark("math", data_dir).seed_workflows()["cot"]
    gpqa_cot = get_benchmark("gpqa", data_dir).seed_workflows()["cot"]
    assert "\\\\boxed{}" in math_cot and "A, B, C or D" in gpqa_cot


def test_check_rejects_bad_sources():
    for bad in ("def solver(task):\n    pass\n", "x = 1\n", "def solver(agent, task:\n"):
        with pytest.raises((ValueError, SyntaxError)):
            check_solver_source(bad)


class GoldAgent:
    """Answers every call with the gold of one item (the shape the agent API returns)."""

    def __init__(self, bm, item):
        self.bm, self.item = bm, item
        self.calls = []

    def _gold(self):
        return self.bm.gold_prediction(self.item)

    def call_json_format_llm(self, messages, temperature=1.0, num_of_response=1,
                             agent_role="", return_dict_keys=(), instructions="", **kw):
        self.calls.append({"temperature": temperature, "n": num_of_response,
                           "instructions": instructions, "messages": messages})
        if "code" in return_dict_keys and self.bm.kind != "code":
            code = f"def solution():\n    return {self.item.meta.get('gold_value', 0)!r}\n"
            return [{"reasoning": "r", "code": code} for _ in range(num_of_response)]
        key = "code" if "code" in return_dict_keys else "answer"
        return [{"reasoning": "r", key: self._gold()} for _ in range(num_of_response)]

    def execute_code(self, code, timeout=5):
        ns: dict = {}
        exec(code, ns)  # noqa: S102 - trusted test code written by this fake
        return ns["solution"]()

    def test_on_public_test(self, task, solution, entry_point, test_loop=3):
        return {"result": True, "solution": solution, "feedback": "", "count": 0}


@pytest.mark.parametrize("name", list_benchmarks())
def test_seeds_pass_the_gold_through(name, data_dir):
    bm = get_benchmark(name, data_dir)
    item = bm.load("valid")[1]
    for strategy, source in bm.seed_workflows().items():
        if strategy == "code_generation" and name == "math":
            continue  # MATH golds are LaTeX, not the value of a Python expression
        ns: dict = {}
        exec(compile(source, f"<seed {name}/{strategy}>", "exec"), ns)  # noqa: S102
        agent = GoldAgent(bm, item)
        result = ns["solver"](agent, item.question)
        assert isinstance(result, dict) and "answer" in result
        assert bm.score(item, result["answer"]) == 1.0, (strategy, result["answer"])
        assert agent.calls and agent.calls[0]["messages"][0]["content"].endswith(item.question)
        if strategy == "cot_sc":
            assert agent.calls[0]["n"] == 5 and agent.calls[0]["temperature"] == 0.8


class FailingCodeAgent(GoldAgent):
    """Like GoldAgent, but every execute_code fails."""

    def execute_code(self, code, timeout=5):
        raise ValueError("unsafe operation detected in code")


@pytest.mark.parametrize("style", ["w4s", "w4s-ray"])
def test_seed_styles_follow_upstream_or_the_earlier_project(style, data_dir):
    """w4s (upstream prompt.py): CoT at temperature 0.8, code generation answers 0 when its
    code fails; w4s-ray: CoT at 0, code generation falls back to CoT."""
    bm = get_benchmark("gsm_hard", data_dir)
    item = bm.load("valid")[1]
    seeds = bm.seed_workflows(style=style)
    ns: dict = {}
    exec(compile(seeds["cot"], "<cot>", "exec"), ns)  # noqa: S102
    agent = GoldAgent(bm, item)
    ns["solver"](agent, item.question)
    assert agent.calls[0]["temperature"] == (0.8 if style == "w4s" else 0.0)
    exec(compile(seeds["code_generation"], "<cg>", "exec"), ns)  # noqa: S102
    failing = FailingCodeAgent(bm, item)
    out = ns["solver"](failing, item.question)
    if style == "w4s":
        assert out["answer"] == "0" and len(failing.calls) == 1  # no fallback call
    else:
        assert out["answer"] == bm.gold_prediction(item) and len(failing.calls) == 2
    with pytest.raises(ValueError, match="unknown seed style"):
        bm.seed_workflows(style="nope")
