"""GSM-Plus (testmini: 300 GSM8K seeds x 8 perturbations), ADAS transfer convention.

Decision on the known issue: the 300 "critical thinking" items have the gold "None" (the
question lacks information) and no numeric rule can score them, so they are removed before the
split. The remaining 2,100 items (file order) are shuffled with seed 0; valid = [:128],
test = [128:928]. Fraction golds ("1/2", 7 items) are stored as values (0.5). The official
(AFlow) rule reads a prediction "1/2" as its last number, 2, so only a decimal earns the point;
lenient scoring reads "1/2" or "\\frac{1}{2}" as 0.5.
Input: "Solve this math problem:\\n" + question, as ADAS's transfer tasks.
"""

from __future__ import annotations

from pathlib import Path

from w4s_ray.benchmarks import data as D
from w4s_ray.benchmarks.base import Item, NumericBenchmark, number_text, shuffled, spare_pools
from w4s_ray.benchmarks.registry import register_benchmark
from w4s_ray.benchmarks.scoring import parse_number
from w4s_ray.errors import DataError

EXCLUDED_TYPE = "critical thinking"


@register_benchmark(order=40, aliases=("gsmplus", "gsm-plus"))
class GSMPlus(NumericBenchmark):
    name = "gsm_plus"
    files = ("gsm_plus/gsmplus_testmini.jsonl.gz",)
    split_sizes = {"valid": 128, "test": 800}
    source = ("ADAS-style on testmini minus 300 'critical thinking' items: "
              "seed-0 shuffle, [:128] / [128:928]")
    task_description = """GSM-Plus Benchmark.
**Type**: Mathematical problem solving (robustness)
**Answer Type**: The answer must be a number (it may be a decimal).
**Description**: GSM-Plus perturbs grade-school math word problems from GSM8K: numbers are substituted or written with more digits, integers become decimals or fractions, operations are added or reversed, the question is reworded, or distracting information is inserted. Solving requires careful multi-step arithmetic reasoning that ignores irrelevant details.

Example Question:
Solve this math problem:
Four of the women at a party are wearing 5 inch heels and two are wearing 3 inch heels. What is the total height of all the heels at this party, in inches?

Final answer: 26
"""

    def build(self, data_dir: Path) -> dict[str, list[Item]]:
        rel = self.files[0]
        rows = D.read_jsonl(data_dir, rel)
        D.require_fields(rows, ("question", "answer", "perturbation_type"), str(data_dir / rel))
        D.expect_count(rows, 2400, str(data_dir / rel))
        kept = [(i, r) for i, r in enumerate(rows) if r["perturbation_type"] != EXCLUDED_TYPE]
        items = []
        for i, row in shuffled(kept, 0):
            value = parse_number(str(row["answer"]))
            if value is None:
                raise DataError(f"corrupt data file {data_dir / rel} (row {i}: "
                                f"non-numeric answer {row['answer']!r})")
            raw = str(row["answer"])
            items.append(Item(id=f"gsm_plus/{i}",
                              question="Solve this math problem:\n" + row["question"],
                              answer=raw if "/" in raw else number_text(value),
                              meta={"gold_value": value, "answer_raw": row["answer"],
                                    "perturbation_type": row["perturbation_type"]}))
        return {"valid": items[:128], "test": items[128:928], **spare_pools(items, 928)}
