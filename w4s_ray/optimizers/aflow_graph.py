"""AFlow candidates: a graph (`class Workflow(Operators)`) plus its custom prompts, rendered
into one self-contained workflow `solver(agent, task)` (no Ray; nothing here runs code).

AFlow's optimizer writes two files per round: `graph.py` (a `Workflow` class calling operators)
and `prompt.py` (string constants read as `prompt_custom.NAME`). Here the optimizer writes the
same two parts; `check_candidate` parses them with `ast` only (the prompt part must be plain
`NAME = "..."` string assignments, every `prompt_custom.NAME` the graph uses must be defined,
the graph must define `class Workflow(Operators)` with a synchronous `__call__`), and
`render_workflow` joins the operator library (`aflow_operators.py`, copied verbatim), the
prompts, the graph and a fixed `solver` into a workflow the evaluator runs in its sandbox.

Why render rather than import the operators inside the sandbox: a rendered workflow is one
source that runs and caches the same forever (a stored round re-evaluates identically even if
the operator library later changes), `w4s eval` runs it as a plain file, and the sandbox's
import surface stays exactly what it was (no new module that untrusted code loads and could
monkeypatch for other items).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

OPERATORS_FILE = Path(__file__).with_name("aflow_operators.py")
_PROMPT_REF = re.compile(r"\bprompt_custom\.([A-Za-z_]\w*)")
_RESERVED = {"solver", "Operators", "prompt_custom", "as_answer", "OPERATOR_TEMPERATURE",
             "PROGRAM_TIMEOUT_S", "FENCE", "_entry_point"}

# AFlow's question types: math, qa (DROP/HotpotQA; we file multiple choice there too), code.
QUESTION_TYPE = {"math": "math", "reading": "qa", "multiple_choice": "qa", "code": "code"}

OPERATOR_DOCS = {
    "custom": ("custom(input: str, instruction: str) -> {'response': str}",
               "One model call on instruction + input (concatenated, no placeholders). The "
               "instruction usually comes from prompt_custom."),
    "answer_generate": ("answer_generate(input: str) -> {'thought': str, 'answer': str}",
                        "Step-by-step reasoning and a short final answer."),
    "custom_code_generate": ("custom_code_generate(problem: str, entry_point: str, "
                             "instruction: str) -> {'response': str}",
                             "Writes the function `entry_point`; returns its source code."),
    "sc_ensemble": ("sc_ensemble(solutions: list[str], problem: str) -> {'response': str}",
                    "Self-consistency: the model picks the solution whose answer most "
                    "solutions agree on."),
    "programmer": ("programmer(problem: str, analysis: str = 'None') -> {'code': str, "
                   "'output': str}",
                   "Writes Python that computes the answer and runs it (up to 3 tries, "
                   "errors fed back); 'output' is the computed value."),
    "test": ("test(problem: str, solution: str, entry_point: str, test_loop: int = 3) -> "
             "{'result': bool, 'solution': str}",
             "Runs the problem's public tests on the solution; on failure the model repairs "
             "it, up to test_loop times."),
    "review": ("review(problem: str, solution: str) -> {'review_result': bool, "
               "'feedback': str}",
               "A strict review: is the solution correct, and what is wrong with it."),
    "revise": ("revise(problem: str, solution: str, feedback: str) -> {'solution': str}",
               "Revises the solution using the feedback."),
    "format": ("format(problem: str, solution: str) -> {'response': str}",
               "Extracts the final answer from a solution, in the required answer format."),
}

# Operators offered per family (AFlow's per-dataset lists plus Review/Revise/Format).
FAMILY_OPERATORS = {
    "math": ("custom", "answer_generate", "sc_ensemble", "programmer", "review", "revise",
             "format"),
    "reading": ("custom", "answer_generate", "sc_ensemble", "review", "revise", "format"),
    "multiple_choice": ("custom", "answer_generate", "sc_ensemble", "review", "revise",
                        "format"),
    "code": ("custom", "custom_code_generate", "sc_ensemble", "test", "review", "revise"),
}


@dataclass(frozen=True)
class Candidate:
    graph: str
    prompts: dict[str, str]


class CandidateError(ValueError):
    """A graph/prompt pair that cannot become a workflow (one line, for the record)."""


def call_signature(kind: str) -> str:
    return "__call__(self, problem, entry_point)" if kind == "code" else "__call__(self, problem)"


def parse_prompts(source: str) -> dict[str, str]:
    """`NAME = "..."` assignments -> {NAME: text}; anything else is a CandidateError."""
    source = _strip_fence(source)
    try:
        tree = ast.parse(source or "")
    except SyntaxError as exc:
        raise CandidateError(f"prompt section: syntax error at line {exc.lineno}: "
                             f"{exc.msg}") from None
    prompts: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a stray docstring/comment string
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            prompts[node.targets[0].id] = node.value.value
            continue
        raise CandidateError(f"prompt section line {getattr(node, 'lineno', '?')}: only "
                             "NAME = \"text\" assignments are allowed")
    return prompts


def check_candidate(graph: str, prompt_source: str, kind: str) -> Candidate:
    graph = _strip_fence(graph)
    try:
        tree = ast.parse(graph)
    except SyntaxError as exc:
        raise CandidateError(f"graph: syntax error at line {exc.lineno}: {exc.msg}") from None
    workflow = None
    for node in tree.body:
        names = ([node.name] if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                   ast.ClassDef))
                 else [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)])
        clash = _RESERVED.intersection(names)
        if clash:
            raise CandidateError(f"graph redefines {sorted(clash)[0]!r}, which the workflow "
                                 "provides")
        if isinstance(node, ast.ClassDef) and node.name == "Workflow":
            workflow = node
    if workflow is None:
        raise CandidateError("graph defines no class Workflow")
    if not any(isinstance(b, ast.Name) and b.id == "Operators" for b in workflow.bases):
        raise CandidateError("class Workflow must subclass Operators")
    call = next((n for n in workflow.body if isinstance(n, (ast.FunctionDef,
                                                            ast.AsyncFunctionDef))
                 and n.name == "__call__"), None)
    if call is None:
        raise CandidateError("class Workflow has no __call__ method")
    if isinstance(call, ast.AsyncFunctionDef):
        raise CandidateError("__call__ must be a plain def: operators are synchronous here")
    want = 3 if kind == "code" else 2
    if len(call.args.args) != want:
        raise CandidateError(f"Workflow.__call__ must be {call_signature(kind)}")
    prompts = parse_prompts(prompt_source)
    missing = sorted(set(_PROMPT_REF.findall(graph)) - set(prompts))
    if missing:
        raise CandidateError(f"graph uses prompt_custom.{missing[0]}, which the prompt "
                             "section does not define")
    return Candidate(graph, prompts)


def render_workflow(candidate: Candidate, kind: str, answer_format: str) -> str:
    """The complete workflow source of a checked candidate."""
    from w4s_ray.workflow.extract import check_workflow

    prompt_lines = "\n".join(f"    {name} = {text!r}" for name, text in
                             sorted(candidate.prompts.items())) or "    pass"
    call = ("workflow(task, agent.entry_point or _entry_point(task))" if kind == "code"
            else "workflow(task)")
    source = (
        "# An AFlow workflow: operators (w4s_ray/optimizers/aflow_operators.py), the\n"
        "# optimizer's custom prompts, its graph, and a fixed solver.\n"
        + OPERATORS_FILE.read_text(encoding="utf-8").rstrip() + "\n\n\n"
        f"Operators.answer_format = {answer_format!r}\n\n\n"
        "class prompt_custom:\n" + prompt_lines + "\n\n\n"
        "# ---- graph ----\n" + candidate.graph.strip("\n") + "\n\n\n"
        "def _entry_point(task):\n"
        "    names = re.findall(r\"def\\s+([A-Za-z_]\\w*)\\s*\\(\", task)\n"
        "    return names[-1] if names else \"solution\"\n\n\n"
        "def solver(agent, task):\n"
        "    workflow = Workflow(agent)\n"
        f"    return {{\"answer\": as_answer({call})}}\n"
    )
    check_workflow(source)
    return source


def initial_candidate(kind: str, answer_format: str) -> Candidate:
    """Round 1: AFlow's starting graph, one Custom call (CustomCodeGenerate for code)."""
    if kind == "code":
        graph = ("class Workflow(Operators):\n"
                 "    def __call__(self, problem, entry_point):\n"
                 "        solution = self.custom_code_generate(problem=problem, "
                 "entry_point=entry_point, instruction=prompt_custom.CODE_PROMPT)\n"
                 "        return solution[\"response\"]\n")
        prompts = {"CODE_PROMPT": "Complete the following Python function.\n\n"}
    else:
        graph = ("class Workflow(Operators):\n"
                 "    def __call__(self, problem):\n"
                 "        solution = self.custom(input=problem, "
                 "instruction=prompt_custom.SOLVE_PROMPT)\n"
                 "        return solution[\"response\"]\n")
        prompts = {"SOLVE_PROMPT": "Solve the following problem. End your reply with the "
                                   "final answer in this format: " + answer_format + "\n\n"}
    return Candidate(graph, prompts)


def prompt_source(prompts: dict[str, str]) -> str:
    """The prompt section as the optimizer sees and writes it."""
    return "\n\n".join(f"{name} = {text!r}" for name, text in sorted(prompts.items()))


def operator_description(kind: str) -> str:
    return "\n".join(f"- self.{OPERATOR_DOCS[op][0]}: {OPERATOR_DOCS[op][1]}"
                     for op in FAMILY_OPERATORS[kind])


def _strip_fence(text: str) -> str:
    text = (text or "").replace("\r\n", "\n").strip("\n")
    m = re.fullmatch(r"\s*```[a-zA-Z]*[ \t]*\n(.*?)\n?```\s*", text, re.DOTALL)
    return m.group(1) if m else text
