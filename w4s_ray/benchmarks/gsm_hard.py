"""GSM-Hard (PAL's gsmhardv2: GSM8K with large numbers), W4S convention.

As W4S `src/tasks/gsmhard/task_gsmhard.py`: input "Solve this math problem:\\n" + question,
seed-0 shuffle of the 1,319 rows, valid = [:128], test = [128:628]. Scored as W4S does:
|target - prediction| < 0.1. Known issue, kept for comparability with the paper: 41 targets
have |target| < 0.1 (7 in valid, 16 in test), so the answer 0 counts as correct on those.
Targets are floats; some print in scientific notation (2.392e-06), which the number parser
reads.
"""

from __future__ import annotations

from pathlib import Path

from w4s_ray.benchmarks import data as D
from w4s_ray.benchmarks.base import Item, NumericBenchmark, number_text, shuffled
from w4s_ray.benchmarks.registry import register_benchmark


@register_benchmark(order=30, aliases=("gsmhard", "gsm-hard"))
class GSMHard(NumericBenchmark):
    name = "gsm_hard"
    files = ("gsm_hard/gsmhardv2.jsonl",)
    split_sizes = {"valid": 128, "test": 500}
    source = "W4S: seed-0 shuffle, [:128] / [128:628]"
    abs_tol = 0.1
    scorer_name = "numeric: last number, |delta| < 0.1 (W4S rule)"
    answer_format = ("A single number only (digits, optional minus sign and decimal point; no "
                     "units, no thousands separators), e.g. -9867630 or 3.5. A float is fine.")
    task_description = """Grade School Math (GSM) Hard Benchmark.
**Type**: Mathematical problem solving
**Answer Type**: The answer must be a float.
**Description**: GSM Hard is a harder version of the GSM8k benchmark dataset that contains more challenging mathematical problems: the numbers in the questions are replaced by larger, less common ones, so answers may be large, negative or non-integer. The dataset focuses on multi-step reasoning problems that require precise calculation.

Example Question:
Solve this math problem:
The girls are trying to raise money for a carnival. Kim raises $320 more than Alexandra, who raises $430, and Maryam raises $400 more than Sarah, who raises $300. How much money, in dollars, did they all raise in total?

Final answer: 2180
"""

    def build(self, data_dir: Path) -> dict[str, list[Item]]:
        rel = self.files[0]
        rows = D.read_jsonl(data_dir, rel)
        D.require_fields(rows, ("input", "target"), str(data_dir / rel))
        D.expect_count(rows, 1319, str(data_dir / rel))
        items = []
        for i, row in shuffled(list(enumerate(rows)), 0):
            value = float(row["target"])
            items.append(Item(id=f"gsm_hard/{i}",
                              question="Solve this math problem:\n" + row["input"],
                              answer=number_text(value),
                              meta={"gold_value": value}))
        return {"valid": items[:128], "test": items[128:628]}
