"""Seed workflows: the W4S initial archive, one template per strategy.

Each template here is a real Python file defining `solver(agent, task)` (the W4S workflow
interface, using the agent API of docs/ARCHITECTURE.md). Benchmark-specific text is filled in
by replacing the string literals "__ROLE__" and "__ANSWER_INSTRUCTIONS__" with the benchmark's
values (`Benchmark.seed_instructions()`), so a rendered seed is still valid Python. The
rendered source is checked: it must parse and define `solver` with exactly two parameters.

Strategies: "cot" (Chain-of-Thought), "cot_sc" (5 samples at temperature 0.8, majority vote),
"code_generation" (math: solution() run by agent.execute_code, CoT fallback), "test_repair"
(code: generate, agent.test_on_public_test repairs up to 3 times). Code benchmarks use code
flavours of cot / cot_sc that answer with the function source.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from w4s_ray.benchmarks.base import Benchmark

SEEDS_DIR = Path(__file__).parent
PLACEHOLDERS = ("ROLE", "ANSWER_INSTRUCTIONS")

# (strategy, benchmark kind) -> template file; kind None = any other kind.
TEMPLATES = {
    ("cot", "code"): "cot_code.py",
    ("cot_sc", "code"): "cot_sc_code.py",
    ("test_repair", "code"): "test_repair.py",
    ("cot", None): "cot.py",
    ("cot_sc", None): "cot_sc.py",
    ("code_generation", None): "code_generation.py",
}


def template_path(strategy: str, kind: str) -> Path:
    name = TEMPLATES.get((strategy, kind)) or TEMPLATES.get((strategy, None))
    if name is None:
        raise KeyError(f"no seed template {strategy!r} for kind {kind!r}")
    return SEEDS_DIR / name


def render(template: str, values: dict[str, str]) -> str:
    out = template
    for key in PLACEHOLDERS:
        out = out.replace(f'"__{key}__"', repr(values.get(key, "")))
    return out


def check_solver_source(source: str) -> None:
    """Raise ValueError unless `source` parses and defines solver(agent, task)."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "solver":
            if len(node.args.args) != 2:
                raise ValueError("solver must take exactly (agent, task)")
            return
    raise ValueError("source does not define solver(agent, task)")


def render_seeds(bench: Benchmark) -> dict[str, str]:
    values = bench.seed_instructions()
    out = {}
    for strategy in bench.seed_names:
        source = render(template_path(strategy, bench.kind).read_text(encoding="utf-8"), values)
        check_solver_source(source)
        out[strategy] = source
    return out
