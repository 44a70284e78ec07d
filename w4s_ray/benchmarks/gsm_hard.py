"""GSM-Hard (PAL's gsmhardv2: GSM8K with large numbers), W4S convention.

As W4S `src/tasks/gsmhard/task_gsmhard.py`: input "Solve this math problem:\\n" + question,
seed-0 shuffle of the 1,319 rows, valid = [:128], test = [128:628]. Official scoring is W4S's
`score_gsmhard`: `float()` of the whole answer, |target - value| < 0.1; an answer float()
refuses ("The answer is 5", "$5", "5,000", "\\boxed{5}") is wrong. Lenient scoring reads the
last number of the text instead, with the same tolerance. Known issue, kept for comparability
with the paper: 41 targets have |target| < 0.1 (7 in valid, 16 in test), so the answer 0 counts
as correct on those. Targets are floats; some print in scientific notation (2.392e-06).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from w4s_ray.benchmarks import data as D
from w4s_ray.benchmarks.base import Item, NumericBenchmark, number_text, shuffled, spare_pools
from w4s_ray.benchmarks.official import gsm_hard_format_hint, score_w4s_gsm_hard
from w4s_ray.benchmarks.registry import register_benchmark


@register_benchmark(order=30, aliases=("gsmhard", "gsm-hard"))
class GSMHard(NumericBenchmark):
    name = "gsm_hard"
    files = ("gsm_hard/gsmhardv2.jsonl",)
    split_sizes = {"valid": 128, "test": 500}
    source = "W4S: seed-0 shuffle, [:128] / [128:628]"
    abs_tol = 0.1
    scorer_name = ("float() of the whole answer, |delta| < 0.1 "
                   "(W4S src/tasks/gsmhard/task_gsmhard.py score_gsmhard)")
    lenient_scorer_name = "last number of the text, |delta| < 0.1"
    answer_format = ("A single number only (digits, optional minus sign and decimal point; no "
                     "units, no thousands separators), e.g. -9867630 or 3.5. A float is fine.")
    task_description = """Grade School Math (GSM) Hard Benchmark.
**Type**: Mathematical problem solving
**Answer Type**: The answer must be a float.
**Description**: GSM Hard is a harder version of the GSM8k benchmark dataset that contains more challenging mathematical problems: the numbers in the questions are replaced by larger, less common ones, so answers may be large, negative or non-integer. The dataset focuses on multi-step reasoning problems that require precise calculation.

Example Question:
Solve this math problem:
The girls are trying to raise money for a carnival. Kim raises $320 more than Alexandra, who raises $430, and Maryam raises $400 more than Sarah, who raises $300. How much money, in dollars, did they all raise in total?

Example solution (code a workflow could have the executor write and run with agent.execute_code):
def solution():
    # total raised by Alexandra, Kim, Sarah and Maryam
    alexandra = 430
    kim = alexandra + 320
    sarah = 300
    maryam = sarah + 400
    return alexandra + kim + sarah + maryam

Final answer: 2180
"""

    def _score(self, item: Item, prediction: Any) -> float:
        return score_w4s_gsm_hard(prediction, item.meta["gold_value"])

    def format_hint(self, item: Item, prediction: Any) -> str | None:
        return gsm_hard_format_hint(prediction, item.meta["gold_value"])

    def gold_prediction(self, item: Item) -> str:
        return item.answer  # the bare number: what the official float() rule accepts

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
        return {"valid": items[:128], "test": items[128:628], **spare_pools(items, 628)}
