"""HumanEval on the AFlow/W4S split: 33 validate / 131 test (all 164 tasks, no overlap).

The workflow receives the prompt (signature + docstring). Scoring is pass@1: the prompt, then
the predicted code (so helpers and imports of the prompt are defined, and a bare body completes
the prompt's function), then HumanEval's `check(candidate)` run on the entry point in a separate
`python -I` process with a timeout (w4s_ray/sandbox/judge.py). The reference solution is prompt +
canonical_solution.

Public tests (for a workflow's test-and-repair step, never for scoring) come from AFlow's
`humaneval_public_test.jsonl`, keyed by task id (function names repeat across tasks). Decision
on the known issue: the asserts that fail against the task's own canonical solution
(HumanEval/33, /41, /47, /53, /116, /148, and one empty assert) are dropped, since a test the
right answer fails would push a repair loop away from it; `tests/benchmarks` re-checks this.
8 tasks then have no public tests (`public_tests` returns None): 32, 38, 50, 83, 105 (no
upstream line) and 41, 53, 116 (all their asserts were broken).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from w4s_ray.benchmarks import data as D
from w4s_ray.benchmarks.base import CodeBenchmark, Item
from w4s_ray.benchmarks.registry import register_benchmark

PUBLIC_FILE = "humaneval/humaneval_public_test.jsonl"

# Public asserts that the canonical solution fails (found by running them; see module doc).
BROKEN_PUBLIC_ASSERTS: dict[str, tuple[str, ...]] = {
    "HumanEval/33": ("assert candidate([5, 6, 3, 4, 8, 9, 2]) == [2, 6, 3, 4, 8, 9, 5",),  # cut off
    "HumanEval/41": ("assert candidate(1) == 0", "assert candidate(2) == 0",
                     "assert candidate(3) == 0", "assert candidate(10) == 0"),
    "HumanEval/47": ("assert candidate([-10, 4, 6, 1000, 10, 20]) == 15.0",),
    "HumanEval/53": ("assert candidate([2, 3]) == 5", "assert candidate([5, 7]) == 12"),  # 1 arg
    "HumanEval/116": ("assert candidate([1, 5, 2, 3, 4]) == [1, 2, 3, 4, 5]",
                      "assert candidate([-2, -3, -4, -5, -6]) == [-6, -5, -4, -3, -2]",
                      "assert candidate([1, 0, 2, 3, 4]) == [0, 1, 2, 3, 4]"),
    "HumanEval/148": ("assert candidate('Earth', 'Mercury') == ('Venus')",),
}


@register_benchmark(order=100)
class HumanEval(CodeBenchmark):
    name = "humaneval"
    files = ("humaneval/humaneval_validate.jsonl", "humaneval/humaneval_test.jsonl", PUBLIC_FILE)
    split_sizes = {"valid": 33, "test": 131}
    source = "AFlow/W4S committed files humaneval_{validate,test}.jsonl (33 / 131)"
    task_description = """HumanEval Benchmark.
**Type**: Code generation (Python function synthesis)
**Answer Type**: The complete Python function as source code.
**Description**: HumanEval contains hand-written Python programming problems. Each gives a function signature and a docstring with a specification and examples; the solution must implement the function so that it passes hidden unit tests. Scored by pass@1 (all hidden tests must pass).

Example Question:
def add(x: int, y: int):
    \"\"\"Add two numbers x and y
    >>> add(2, 3)
    5
    >>> add(5, 7)
    12
    \"\"\"

Final answer:
def add(x: int, y: int):
    return x + y
"""

    def build(self, data_dir: Path) -> dict[str, list[Item]]:
        public = _public_tests(str(data_dir))
        out = {}
        for split, rel in zip(("valid", "test"), self.files[:2], strict=True):
            rows = D.read_jsonl(data_dir, rel)
            D.require_fields(rows, ("task_id", "prompt", "entry_point", "canonical_solution",
                                    "test"), str(data_dir / rel))
            out[split] = [Item(
                id=row["task_id"], question=row["prompt"],
                answer=row["prompt"] + row["canonical_solution"],
                meta={"entry_point": row["entry_point"], "test": row["test"],
                      "reference_solution": row["prompt"] + row["canonical_solution"],
                      "public_tests": public.get(row["task_id"], ())},
            ) for row in rows]
        return out

    def candidate_source(self, item: Item, prediction: Any) -> str:
        code = super().candidate_source(item, prediction)
        return f"{item.question}\n\n{code}" if code.strip() else ""

    def public_test_list(self, item: Item) -> list[str]:
        return list(item.meta.get("public_tests", ()))


@lru_cache(maxsize=8)
def _public_tests(data_dir: str) -> dict[str, tuple[str, ...]]:
    rows = D.read_jsonl(Path(data_dir), PUBLIC_FILE)
    D.require_fields(rows, ("problem_id", "test", "entry_point"), str(Path(data_dir) / PUBLIC_FILE))
    out: dict[str, list[str]] = {}
    for row in rows:
        broken = BROKEN_PUBLIC_ASSERTS.get(row["problem_id"], ())
        out.setdefault(row["problem_id"], []).extend(
            t for t in row["test"] if isinstance(t, str) and t.strip() and t not in broken)
    return {k: tuple(v) for k, v in out.items()}
