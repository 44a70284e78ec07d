"""AFlow candidates: static checks of graph + prompts, and rendering into one workflow."""

from __future__ import annotations

import ast

import pytest

from w4s_ray.optimizers import aflow_graph as G

GOOD = ("class Workflow(Operators):\n    def __call__(self, problem):\n"
        "        return self.custom(input=problem, instruction=prompt_custom.A)['response']\n")


def test_check_and_render_a_candidate():
    cand = G.check_candidate("```python\n" + GOOD + "```", 'A = """Solve: """\n\n"doc"',
                             "math")
    assert cand.prompts == {"A": "Solve: "}
    src = G.render_workflow(cand, "math", "One number.")
    tree = ast.parse(src)
    names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert names[-1] == "solver" and "Workflow" in names and "Operators" in names
    assert "```" not in src  # `w4s eval` must read the file as plain Python
    assert "Operators.answer_format = 'One number.'" in src
    assert "    A = 'Solve: '" in src


@pytest.mark.parametrize("graph,prompts,kind,reason", [
    ("x = 1\n", "", "math", "no class Workflow"),
    (GOOD.replace("(Operators)", ""), 'A = "x"', "math", "must subclass Operators"),
    (GOOD.replace("def __call__", "def run"), 'A = "x"', "math", "no __call__"),
    (GOOD.replace("def __call__", "async def __call__"), 'A = "x"', "math", "plain def"),
    (GOOD, 'A = "x"', "code", "__call__(self, problem, entry_point)"),
    (GOOD, 'B = "x"', "math", "prompt_custom.A"),
    (GOOD, 'A = f"{x}"', "math", "only NAME"),
    (GOOD, 'import os\nA = "x"', "math", "only NAME"),
    (GOOD + "\ndef solver(agent, task):\n    return {}\n", 'A = "x"', "math",
     "redefines 'solver'"),
    ("class Workflow(Operators):\n    def __call__(self, problem)\n", "", "math", "syntax"),
])
def test_bad_candidates_are_refused_with_a_reason(graph, prompts, kind, reason):
    with pytest.raises(G.CandidateError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        G.check_candidate(graph, prompts, kind)


@pytest.mark.parametrize("kind", ["math", "reading", "multiple_choice", "code"])
def test_initial_graph_renders_for_every_family(kind):
    cand = G.initial_candidate(kind, "FMT")
    src = G.render_workflow(G.check_candidate(cand.graph, G.prompt_source(cand.prompts), kind),
                            kind, "FMT")
    assert ("custom_code_generate" in cand.graph) == (kind == "code")
    assert src.rstrip().endswith("(task, agent.entry_point or _entry_point(task)))}") == (
        kind == "code")
    assert G.operator_description(kind).count("- self.") == len(G.FAMILY_OPERATORS[kind])
