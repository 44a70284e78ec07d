"""Seed workflows: the W4S initial archive, one template per strategy.

Each template here is a real Python file defining `solver(agent, task)` (the W4S workflow
interface, using the agent API of docs/ARCHITECTURE.md). Benchmark-specific text is filled in
by replacing the string literals "__ROLE__" and "__ANSWER_INSTRUCTIONS__" with the benchmark's
values (`Benchmark.seed_instructions()`), so a rendered seed is still valid Python. The
rendered source is checked: it must parse and define `solver` with exactly two parameters.

Strategies: "cot" (Chain-of-Thought), "cot_sc" (5 samples at temperature 0.8, majority vote),
"code_generation" (math: solution() run by agent.execute_code), "test_repair" (code: generate,
agent.test_on_public_test repairs up to 3 times). Code benchmarks use code flavours of cot /
cot_sc that answer with the function source.

Two styles (`rlao.protocol` picks one through `TaskSpec.from_benchmark`):
- "w4s", the authors' seeds (fannie1208/W4S `src/tasks/gsmhard/prompt.py` COT, COT_SC,
  Code_Generation): CoT at temperature 0.8; CoT-SC votes on the answer strings as given; code
  generation answers 0 when the code fails or returns a non-number;
- "w4s-ray", the project's earlier seeds: CoT at temperature 0; CoT-SC votes on normalised
  answers ("18" = "18.0"); code generation falls back to CoT when the code fails.
Code benchmarks' seeds are the same in both styles (upstream's are not published).

Your own seed workflows (docs/HOWTO.md): `register_seed_workflow(benchmark, name, source)`,
called from an included module, adds a workflow (source text or a .py path, no placeholders)
to a benchmark's seeds, or replaces the built-in one of the same name; `only=True` makes the
registered workflows that benchmark's whole initial archive.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from w4s_ray.benchmarks.base import Benchmark

SEEDS_DIR = Path(__file__).parent
PLACEHOLDERS = ("ROLE", "ANSWER_INSTRUCTIONS", "COT_TEMPERATURE")
STYLES = ("w4s", "w4s-ray")
# Style-dependent values substituted into the templates.
STYLE_VALUES = {"w4s": {"COT_TEMPERATURE": 0.8}, "w4s-ray": {"COT_TEMPERATURE": 0.0}}
# strategy -> template file of the w4s style, where it differs from the shared one.
W4S_TEMPLATES = {"cot_sc.py": "cot_sc_w4s.py", "code_generation.py": "code_generation_w4s.py"}

# strategy -> a function of the benchmark kind naming its template file (None: the strategy does
# not apply to that kind). Strategies register themselves with `@register_seed`.
SEEDS: dict[str, Callable[[str], str | None]] = {}


def register_seed(strategy: str) -> Callable:
    """Decorator: `fn(kind) -> template file name | None` is the seed strategy `strategy`."""
    def deco(fn: Callable[[str], str | None]) -> Callable[[str], str | None]:
        SEEDS[strategy] = fn
        return fn
    return deco


@register_seed("cot")
def _cot(kind: str) -> str:
    return "cot_code.py" if kind == "code" else "cot.py"


@register_seed("cot_sc")
def _cot_sc(kind: str) -> str:
    return "cot_sc_code.py" if kind == "code" else "cot_sc.py"


@register_seed("code_generation")
def _code_generation(kind: str) -> str | None:
    return None if kind == "code" else "code_generation.py"


@register_seed("test_repair")
def _test_repair(kind: str) -> str | None:
    return "test_repair.py" if kind == "code" else None


# benchmark name or alias as given -> {seed name -> source}; those whose built-in seeds are
# dropped.
EXTRA_SEEDS: dict[str, dict[str, str]] = {}
ONLY_EXTRA: set[str] = set()


def register_seed_workflow(benchmark: str, name: str, source: str | Path, *,
                           only: bool = False) -> None:
    """Add seed workflow `name` to `benchmark` (its canonical name). `source`: Python text
    defining solver(agent, task), or the Path of a file holding it. A ValueError when it does
    not define solver(agent, task) (raised at import of the plugin, before anything runs)."""
    text = source.read_text(encoding="utf-8") if isinstance(source, Path) else str(source)
    try:
        check_solver_source(text)
    except SyntaxError as exc:
        raise ValueError(f"seed workflow {name!r} for {benchmark}: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"seed workflow {name!r} for {benchmark}: {exc}") from None
    key = str(benchmark).strip().lower()  # aliases resolve when seeds are rendered
    EXTRA_SEEDS.setdefault(key, {})[str(name)] = text
    if only:
        ONLY_EXTRA.add(key)


def template_path(strategy: str, kind: str, style: str = "w4s") -> Path:
    name = SEEDS[strategy](kind) if strategy in SEEDS else None
    if name is None:
        raise KeyError(f"no seed template {strategy!r} for kind {kind!r}")
    if style == "w4s":
        name = W4S_TEMPLATES.get(name, name)
    return SEEDS_DIR / name


def render(template: str, values: dict) -> str:
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


def render_seeds(bench: Benchmark, style: str = "w4s") -> dict[str, str]:
    from w4s_ray.benchmarks.registry import canonical_name

    if style not in STYLES:
        raise ValueError(f"unknown seed style {style!r}; expected one of {', '.join(STYLES)}")
    values = {**bench.seed_instructions(), **STYLE_VALUES[style]}
    out = {}
    mine = [k for k in EXTRA_SEEDS if canonical_name(k) == bench.name]
    extra = {n: src for k in mine for n, src in EXTRA_SEEDS[k].items()}
    if not any(k in ONLY_EXTRA for k in mine):
        for strategy in bench.seed_names:
            if strategy in extra:
                continue
            source = render(template_path(strategy, bench.kind, style).read_text(
                encoding="utf-8"), values)
            check_solver_source(source)
            out[strategy] = source
    out.update(extra)
    return out
