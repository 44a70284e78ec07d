"""MATH (Hendrycks et al.), AFlow's committed split: 119 validate / 486 test.

These are all 605 Level-5 test problems of four subjects (Prealgebra, Number Theory,
Precalculus, Counting & Probability). The gold answer is the last `\\boxed{}` of the reference
solution. Official scoring: Hendrycks' `is_equiv` (`_strip_string`, string equality) on the
content of the prediction's last `\\boxed{}`, or on the whole prediction when it has none.
Lenient scoring also strips `$` from an unboxed short answer and accepts numeric equality of
plain numbers/fractions (`7.0` = `7`).
The full 5,000-problem MATH test set is not available offline and is not used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from w4s_ray.benchmarks import data as D
from w4s_ray.benchmarks.base import Benchmark, Item
from w4s_ray.benchmarks.official import math_format_hint, score_hendrycks_math
from w4s_ray.benchmarks.registry import register_benchmark
from w4s_ray.benchmarks.scoring import last_boxed_only_string, remove_boxed, score_math
from w4s_ray.errors import DataError


@register_benchmark(order=60)
class MATH(Benchmark):
    name = "math"
    kind = "math"
    files = ("math/math_validate.jsonl", "math/math_test.jsonl")
    split_sizes = {"valid": 119, "test": 486}
    source = "AFlow committed files math_{validate,test}.jsonl (Level 5, 4 subjects)"
    scorer_name = ("Hendrycks is_equiv on the last \\boxed{} content, else the whole answer "
                   "(hendrycks/math math_equivalence.py is_equiv)")
    lenient_scorer_name = ("last \\boxed{} (else the short text, $ stripped) + is_equiv + "
                           "numeric equality")
    seed_names = ("cot", "cot_sc", "code_generation")
    answer_format = ("The final answer in LaTeX inside \\boxed{}, e.g. \\boxed{\\frac{3}{4}} "
                     "or \\boxed{12}; simplified, exact (fractions and radicals, not decimals), "
                     "without units.")
    task_description = """MATH Benchmark (competition mathematics, Level 5).
**Type**: Mathematical problem solving
**Answer Type**: A LaTeX expression (number, fraction, radical, interval, ...) in \\boxed{}.
**Description**: MATH contains challenging competition mathematics problems (AMC/AIME style). This split holds the hardest level (5) of Prealgebra, Number Theory, Precalculus and Counting & Probability. Solutions need multi-step reasoning; the final answer is compared after LaTeX normalisation, so it must be exact and simplified.

Example Question:
What is the smallest positive integer $n$ such that $17n \\equiv 1234 \\pmod{7}?$

Final answer: \\boxed{3}
"""

    def build(self, data_dir: Path) -> dict[str, list[Item]]:
        out = {}
        for split, rel in zip(("valid", "test"), self.files, strict=True):
            rows = D.read_jsonl(data_dir, rel)
            D.require_fields(rows, ("problem", "solution"), str(data_dir / rel))
            items = []
            for i, row in enumerate(rows):
                answer = remove_boxed(last_boxed_only_string(row["solution"]))
                if answer is None:
                    raise DataError(f"corrupt data file {data_dir / rel} (row {i}: "
                                    f"no \\boxed answer in the solution)")
                items.append(Item(id=f"math/{split}/{i}", question=row["problem"], answer=answer,
                                  meta={"solution": row["solution"], "type": row.get("type"),
                                        "level": row.get("level")}))
            out[split] = items
        return out

    def _score(self, item: Item, prediction: Any) -> float:
        return score_hendrycks_math(prediction, item.answer)

    def _score_lenient(self, item: Item, prediction: Any) -> float:
        return score_math(prediction, item.answer)

    def format_hint(self, item: Item, prediction: Any) -> str | None:
        return math_format_hint(prediction, item.answer)

    def gold_prediction(self, item: Item) -> str:
        return f"Therefore the final answer is $\\boxed{{{item.answer}}}$."

    def seed_instructions(self) -> dict[str, str]:
        return {"ROLE": "math expert",
                "ANSWER_INSTRUCTIONS": "Please explain step by step. " + self.answer_format}
