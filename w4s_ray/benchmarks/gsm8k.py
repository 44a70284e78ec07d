"""GSM8K on AFlow's committed split (264 validate / 1,055 test of the 1,319 test problems).

The question is passed as is (AFlow gives the raw question). AFlow golds carry thousands
separators in 14 items ("65,960"); they are parsed as numbers, so the known "#### (-?\\d+)"
truncation of separators cannot happen here. The original `GSM8k_test.jsonl` (ADAS transfer
split) is in the manifest for completeness but not used for the splits.
"""

from __future__ import annotations

from pathlib import Path

from w4s_ray.benchmarks import data as D
from w4s_ray.benchmarks.base import Item, NumericBenchmark, number_text
from w4s_ray.benchmarks.registry import register_benchmark


@register_benchmark(order=20)
class GSM8K(NumericBenchmark):
    name = "gsm8k"
    files = ("gsm8k/aflow/gsm8k_validate.jsonl", "gsm8k/aflow/gsm8k_test.jsonl")
    split_sizes = {"valid": 264, "test": 1055}
    source = "AFlow committed files gsm8k_{validate,test}.jsonl (264 / 1,055)"
    task_description = """Grade School Math 8K (GSM8K) Benchmark.
**Type**: Mathematical problem solving
**Answer Type**: The answer must be a number.
**Description**: GSM8K contains linguistically diverse grade-school math word problems that take 2 to 8 steps of basic arithmetic (+, -, *, /) to solve. Answers are integers.

Example Question:
Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck egg. How much in dollars does she make every day at the farmers' market?

Final answer: 18
"""

    def build(self, data_dir: Path) -> dict[str, list[Item]]:
        out = {}
        for split, rel in zip(("valid", "test"), self.files, strict=True):
            rows = D.read_jsonl(data_dir, rel)
            D.require_fields(rows, ("question", "answer", "id"), str(data_dir / rel))
            items = []
            for row in rows:
                value = float(str(row["answer"]).replace(",", ""))
                items.append(Item(id=str(row["id"]), question=row["question"],
                                  answer=number_text(value),
                                  meta={"gold_value": value, "answer_raw": row["answer"]}))
            out[split] = items
        return out
