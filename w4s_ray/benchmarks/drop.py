"""DROP (discrete reasoning over paragraphs), ADAS/W4S convention on simple-evals' dev file.

As ADAS `_drop`: `load_drop(...)[1:-1]` (first and last examples are ADAS's few-shot pool),
seed-0 shuffle, valid = [:128], test = [128:928]. The workflow receives ADAS's input: the
one-shot prompt followed by "Passage: ...\\nQuestion: ...\\nAnswer:". Gold alternatives are the
`|`-separated `ref_text`; score = max F1 over them with the official DROP evaluator.
Known issue, kept as upstream: 268 passage+question texts occur several times with different
gold sets (14 touch the valid split); each occurrence is its own item with its own golds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from w4s_ray.benchmarks import data as D
from w4s_ray.benchmarks.base import Benchmark, Item, shuffled, spare_pools
from w4s_ray.benchmarks.registry import register_benchmark
from w4s_ray.benchmarks.scoring import score_drop

# ADAS `_drop/utils.py` load_drop(): the one-shot prefix of every input.
FEW_SHOT_PROMPT = """You will be asked to read a passage and answer a question.

# Examples:
Passage: As of the census of 2000, there were 952 people, 392 households, and 241 families residing in the village. The population density was 952.9 people per square mile (367.6/km²). There were 449 housing units at an average density of 449.4 per square mile (173.4/km²). The racial makeup of the village was 96.11% White (U.S. Census), 0.95% African American (U.S. Census) or Race (United States Census), 0.11% Native American (U.S. Census), 0.11% Asian (U.S. Census), 0.21% from Race (United States Census), and 2.52% from two or more races. 1.05% of the population were Hispanics in the United States or Latino (U.S. Census) of any race.\nQuestion: How many more people, in terms of percentage, were from two or more races compared to being solely Native American or solely Asian?\nAnswer: 2.3

# Your Task
---

"""


@register_benchmark(order=70)
class DROP(Benchmark):
    name = "drop"
    kind = "reading"
    files = ("drop/drop_v0_dev.jsonl.gz",)
    split_sizes = {"valid": 128, "test": 800}
    source = "ADAS: [1:-1], seed-0 shuffle, [:128] / [128:928]"
    scorer_name = "DROP F1 (official normalisation, multi-span alignment), max over golds"
    answer_format = ("Only the answer span, as short as possible: a number (digits), a date, "
                     "or the exact words from the passage; several spans separated by commas. "
                     "No explanation.")
    task_description = """DROP (Discrete Reasoning Over Paragraphs) Benchmark.
**Type**: Reading comprehension with discrete reasoning
**Answer Type**: A short answer: a number, a date, or one or more spans of the passage.
**Description**: DROP questions about Wikipedia passages (mostly sports and history) require counting, sorting, adding or subtracting numbers and comparing events. The answer is scored by token-level F1 against the gold answers after normalisation, so extra words lower the score.

Example Question:
Passage: The Vikings opened with a 35-yard field goal by Blair Walsh. The Packers answered with a 12-yard touchdown run, and the Vikings kicked two more field goals of 40 and 28 yards before halftime.
Question: How many field goals did Blair Walsh kick in the first half?
Answer:

Final answer: 3
"""

    def build(self, data_dir: Path) -> dict[str, list[Item]]:
        rel = self.files[0]
        rows = D.read_jsonl(data_dir, rel)
        D.require_fields(rows, ("context", "ref_text"), str(data_dir / rel))
        D.expect_count(rows, 9536, str(data_dir / rel))
        indexed = list(enumerate(rows))[1:-1]
        items = []
        for i, row in shuffled(indexed, 0):
            golds = row["ref_text"].split("|")
            items.append(Item(id=f"drop/{i}", question=FEW_SHOT_PROMPT + row["context"],
                              answer=row["ref_text"], meta={"golds": golds}))
        return {"valid": items[:128], "test": items[128:928], **spare_pools(items, 928)}

    def _score(self, item: Item, prediction: Any) -> float:
        return score_drop(prediction, item.meta["golds"])

    def gold_prediction(self, item: Item) -> str:
        return item.meta["golds"][0]

    def seed_instructions(self) -> dict[str, str]:
        return {"ROLE": "reading comprehension expert",
                "ANSWER_INSTRUCTIONS": "Think step by step, then give the answer. "
                + self.answer_format}
