"""Hand-designed baseline workflows: the seven methods ADAS compares with, for every family.

Each baseline is one template file in `templates/` — a complete `solver(agent, task)` written
for this project's agent API — rendered per benchmark family by replacing the string literals
"__ANSWER_KEY__", "__ANSWER_SPEC__", "__COMBINE__", "__DEBATE_ROLES__", "__EXPERTS__" and
"__PRINCIPLES__" (see `FAMILY_VALUES`; "__ANSWER_SPEC__" is the benchmark's `answer_format`).
A rendered baseline is ordinary workflow source: it is evaluated like any workflow (sandbox,
cache, budget) and is also the initial archive of ADAS (`w4s_ray.optimizers.adas`).

The methods and their sampling settings follow ADAS's initial archive (ShengranHu/ADAS,
`_mgsm/mgsm_prompt.py`, `_drop/drop_prompt.py`, `_mmlu/mmlu_prompt.py`); every call uses the
agent API's JSON mode with a "thinking" key before the answer, as ADAS's `LLMAgentBase` does.
ADAS has no code benchmark: the code family (answers are full function sources) uses the same
methods with the answer key "code" and roles of our choosing. Differences: docs/BASELINES.md.
This module only renders text; nothing here runs a workflow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from w4s_ray.errors import W4SError

if TYPE_CHECKING:
    from w4s_ray.benchmarks.base import Benchmark

TEMPLATES_DIR = Path(__file__).parent / "templates"
FAMILIES = ("math", "reading", "multiple_choice", "code")
PLACEHOLDERS = ("ANSWER_KEY", "ANSWER_SPEC", "COMBINE", "DEBATE_ROLES", "EXPERTS", "PRINCIPLES")
_LEFTOVER = re.compile(r"[\"']__[A-Z][A-Z_]*__[\"']")


@dataclass(frozen=True)
class Baseline:
    name: str         # registry key and method name (`w4s sweep --methods`)
    title: str
    template: str     # file name in templates/
    description: str
    settings: str     # calls and sampling settings, as the table shows them
    origin: str       # the paper and the ADAS archive entry it follows


_ADAS = "ADAS initial archive (`_*/*_prompt.py`)"
BASELINES: dict[str, Baseline] = {b.name: b for b in (
    Baseline("cot", "Chain-of-Thought", "cot.py",
             "think step by step, then answer",
             "1 call, T=0.5",
             f"Wei et al. 2022; {_ADAS} `COT`"),
    Baseline("cot_sc", "Self-Consistency (CoT-SC)", "cot_sc.py",
             "5 CoT samples combined: majority vote (math, MC, code) or a final decision "
             "(reading)",
             "5 samples T=0.8; reading: + decision T=0.1",
             f"Wang et al. 2023; {_ADAS} `COT_SC`"),
    Baseline("self_refine", "Self-Refine (Reflexion)", "self_refine.py",
             "answer, critic reviews, revise with the critique until the critic accepts",
             "<= 5 critique rounds, T=0.5 (<= 11 calls)",
             f"Madaan et al. 2023, Shinn et al. 2023; {_ADAS} `Reflexion`"),
    Baseline("llm_debate", "LLM Debate", "llm_debate.py",
             "role-played debaters answer, read each other's reasoning, update; a final decision",
             "3-4 debaters x 2 rounds T=0.8, decision T=0.1",
             f"Du et al. 2023; {_ADAS} `LLM_debate`"),
    Baseline("step_back", "Step-back Abstraction", "step_back.py",
             "state the principles involved first, then solve with them",
             "2 calls, T=0.5",
             f"Zheng et al. 2024; {_ADAS} `Take_a_step_back`"),
    Baseline("quality_diversity", "Quality-Diversity", "quality_diversity.py",
             "4 attempts, each asked to differ from the earlier ones; a final decision",
             "4 attempts T=0.5, decision T=0.1",
             f"quality-diversity search (Mouret & Clune 2015); {_ADAS} `QD`"),
    Baseline("role_assignment", "Dynamic Role Assignment", "role_assignment.py",
             "a router picks the expert role, the expert answers step by step",
             "2 calls, T=0.5",
             f"Xu et al. 2023 (expert prompting); {_ADAS} `Role_Assignment`"),
)}

# Per-family values. Roles are ADAS's for MGSM (math), DROP (reading) and MMLU (multiple
# choice); the code family's roles and every family's step-back question are ours.
FAMILY_VALUES: dict[str, dict[str, str]] = {
    "math": {
        "ANSWER_KEY": "answer", "COMBINE": "vote",
        "DEBATE_ROLES": "Math Professor|Grade School Teacher|Math Enthusiast",
        "EXPERTS": "professor=Math Professor|teacher=Grade School Teacher|"
                   "enthusiast=Math Enthusiast|=Assistant",
        "PRINCIPLES": "Which mathematical principles and concepts does solving this task "
                      "involve?",
    },
    "reading": {
        "ANSWER_KEY": "answer", "COMBINE": "decide",
        "DEBATE_ROLES": "Reading Comprehension Specialist|Logical Reasoning Strategist|"
                        "Multidisciplinary Knowledge Integrator",
        "EXPERTS": "specialist=Reading Comprehension Specialist|strategist=Logical Reasoning "
                   "Strategist|integrator=Multidisciplinary Knowledge Integrator|"
                   "=Assistant",
        "PRINCIPLES": "Which reading and reasoning principles does answering this question "
                      "involve (which facts of the passage matter, and what counting, "
                      "comparison or arithmetic over them is needed)?",
    },
    "multiple_choice": {
        "ANSWER_KEY": "answer", "COMBINE": "vote",
        "DEBATE_ROLES": "Biology Expert|Physics Expert|Chemistry Expert|Science Generalist",
        "EXPERTS": "physics=Physics Expert|chemistry=Chemistry Expert|biology=Biology Expert|"
                   "generalist=Science Generalist",
        "PRINCIPLES": "Which principles and concepts of the question's subject (for example "
                      "physics, chemistry, biology, law or economics) does solving this task "
                      "involve?",
    },
    "code": {
        "ANSWER_KEY": "code", "COMBINE": "vote",
        "DEBATE_ROLES": "Algorithm Designer|Python Software Engineer|Testing Specialist",
        "EXPERTS": "algorithm=Algorithm Designer|engineer=Python Software Engineer|"
                   "testing=Testing Specialist|=Assistant",
        "PRINCIPLES": "Which algorithms, data structures and edge cases does implementing this "
                      "function involve?",
    },
}


def list_baselines() -> list[Baseline]:
    return list(BASELINES.values())


def get_baseline(name: str) -> Baseline:
    try:
        return BASELINES[name]
    except KeyError:
        raise W4SError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}") from None


def render(template: str, values: dict[str, str]) -> str:
    """Replace every "__KEY__" string literal with the value's repr (still valid Python)."""
    out = template
    for key in PLACEHOLDERS:
        if key in values:
            out = out.replace(f'"__{key}__"', repr(values[key]))
    left = _LEFTOVER.search(out)
    if left:
        raise ValueError(f"template placeholder {left.group(0)} has no value")
    return out


def render_baseline(name: str, kind: str, answer_spec: str) -> str:
    """The workflow source of baseline `name` for benchmark family `kind`."""
    from w4s_ray.benchmarks.seeds import check_solver_source

    baseline = get_baseline(name)
    if kind not in FAMILY_VALUES:
        raise W4SError(f"no baselines for benchmark kind {kind!r}; known: {', '.join(FAMILIES)}")
    values = {**FAMILY_VALUES[kind], "ANSWER_SPEC": answer_spec}
    source = render((TEMPLATES_DIR / baseline.template).read_text(encoding="utf-8"), values)
    check_solver_source(source)
    return source


def baseline_workflows(bench: Benchmark, names: list[str] | None = None) -> dict[str, str]:
    """name -> rendered workflow source for `bench`, in registry order (all by default)."""
    chosen = list(BASELINES) if names is None else names
    return {n: render_baseline(n, bench.kind, bench.answer_format) for n in chosen}
