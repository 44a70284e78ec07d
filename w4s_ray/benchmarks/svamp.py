"""SVAMP (1,000 one-unknown arithmetic word problems), ADAS transfer convention.

As ADAS `_transfer_math/SVAMP_utils.py`: input "Solve this math problem:\\n" + Body + "\\n" +
Question, seed-0 shuffle, valid = [:128], test = [128:928]. Gold = the float `Answer`.
"""

from __future__ import annotations

from pathlib import Path

from w4s_ray.benchmarks import data as D
from w4s_ray.benchmarks.base import Item, NumericBenchmark, number_text, shuffled, spare_pools
from w4s_ray.benchmarks.registry import register_benchmark
from w4s_ray.errors import DataError


@register_benchmark(order=50)
class SVAMP(NumericBenchmark):
    name = "svamp"
    files = ("svamp/SVAMP.json",)
    split_sizes = {"valid": 128, "test": 800}
    source = "ADAS transfer: seed-0 shuffle, [:128] / [128:928]"
    task_description = """SVAMP (Simple Variations on Arithmetic Math word Problems) Benchmark.
**Type**: Mathematical problem solving
**Answer Type**: The answer must be a number.
**Description**: SVAMP contains elementary-school arithmetic word problems with one unknown, built by varying simple problems (changing the question, reordering, adding irrelevant quantities) so that shallow heuristics fail. Each needs one or two arithmetic operations.

Example Question:
Solve this math problem:
Each pack of dvds costs 76 dollars. If there is a discount of 25 dollars on each pack
How much do you have to pay to buy each pack?

Final answer: 51
"""

    def build(self, data_dir: Path) -> dict[str, list[Item]]:
        rel = self.files[0]
        rows = D.read_json(data_dir, rel)
        if not isinstance(rows, list):
            raise DataError(f"corrupt data file {data_dir / rel} (expected a JSON array)")
        D.require_fields(rows, ("ID", "Body", "Question", "Answer"), str(data_dir / rel))
        D.expect_count(rows, 1000, str(data_dir / rel))
        items = []
        for row in shuffled(rows, 0):
            value = float(row["Answer"])
            items.append(Item(id=f"svamp/{row['ID']}",
                              question="Solve this math problem:\n" + row["Body"] + "\n"
                              + row["Question"],
                              answer=number_text(value),
                              meta={"gold_value": value, "type": row.get("Type")}))
        return {"valid": items[:128], "test": items[128:928], **spare_pools(items, 928)}
