"""MMLU-Pro (12,032 test questions, up to 10 options A-J), ADAS-style split.

W4S's MMLU-Pro task class is not released, so the ADAS convention is used: seed-0 shuffle of the
test set in file order, valid = [:128], test = [128:928]. The workflow receives
"Answer the following multiple choice question.\\n\\n<question>\\n\\nChoices:\\n(A) ...".
The gold is the dataset's `answer` letter.
"""

from __future__ import annotations

from pathlib import Path

from w4s_ray.benchmarks import data as D
from w4s_ray.benchmarks.base import (
    Item,
    MultipleChoiceBenchmark,
    format_choices,
    shuffled,
    spare_pools,
)
from w4s_ray.benchmarks.registry import register_benchmark
from w4s_ray.errors import DataError


@register_benchmark(order=80, aliases=("mmlupro", "mmlu-pro"))
class MMLUPro(MultipleChoiceBenchmark):
    name = "mmlu_pro"
    files = ("mmlu_pro/mmlu_pro_test_data.json.gz",)
    split_sizes = {"valid": 128, "test": 800}
    source = "ADAS-style (W4S split unreleased): seed-0 shuffle of test, [:128] / [128:928]"
    answer_format = ("A single option letter (one of A-J, among the listed options), e.g. C. "
                     "No option text, no explanation in the answer field.")
    task_description = """MMLU-Pro Benchmark.
**Type**: Multiple-choice question answering (up to 10 options)
**Answer Type**: A single letter, A to J.
**Description**: MMLU-Pro is a harder, reasoning-focused extension of MMLU across 14 domains (math, physics, chemistry, law, engineering, economics, health, psychology, business, biology, philosophy, computer science, history, other). Each question has up to ten options, which makes guessing much less effective; many questions need multi-step calculation.

Example Question:
Answer the following multiple choice question.

What is the value of 3 + 4 * 2?

Choices:
(A) 14
(B) 11
(C) 10
(D) 9

Final answer: B
"""

    def build(self, data_dir: Path) -> dict[str, list[Item]]:
        rel = self.files[0]
        rows = D.read_json(data_dir, rel)
        if not isinstance(rows, list):
            raise DataError(f"corrupt data file {data_dir / rel} (expected a JSON array)")
        D.require_fields(rows, ("question_id", "question", "options", "answer"),
                         str(data_dir / rel))
        D.expect_count(rows, 12032, str(data_dir / rel))
        items = []
        for row in shuffled(rows, 0):
            choices = [str(c) for c in row["options"]]
            letter = str(row["answer"]).strip()
            if not (1 <= len(choices) <= 10) or ord(letter) - 65 not in range(len(choices)):
                raise DataError(f"corrupt data file {data_dir / rel} "
                                f"(question {row['question_id']}: bad options/answer)")
            question = ("Answer the following multiple choice question.\n\n"
                        f"{row['question']}\n\nChoices:\n{format_choices(choices)}")
            items.append(Item(id=f"mmlu_pro/{row['question_id']}", question=question,
                              answer=letter,
                              meta={"choices": choices, "category": row.get("category")}))
        return {"valid": items[:128], "test": items[128:928], **spare_pools(items, 928)}
