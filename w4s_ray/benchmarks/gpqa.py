"""GPQA diamond (198 graduate-level science questions), ADAS convention.

The official archive is password-protected to keep the questions out of crawlers; it is
decrypted in memory only (never written, printed or logged). As ADAS `_gpqa/utils.py`: rows in
file order (no question shuffle); for every row, in order and from one RNG seeded with 0, the
options [incorrect 1, incorrect 2, incorrect 3, correct] are shuffled; valid = the first 32
rows, test = the other 166. The gold letter is the position the correct option was shuffled to
(tracked by index, so rows 89 and 126, which have two identical wrong options, are unaffected).
The workflow receives ADAS's text: "What is the correct answer to this question: <q>\\n\\n
Choices:\\n(A) ...\\n(D) ...".
"""

from __future__ import annotations

import csv
import io
import random
import zipfile
from pathlib import Path

from w4s_ray.benchmarks import data as D
from w4s_ray.benchmarks.base import Item, MultipleChoiceBenchmark, format_choices
from w4s_ray.benchmarks.registry import register_benchmark
from w4s_ray.errors import DataError

# Published in the idavidrein/gpqa README; it only keeps crawlers out.
_PASSWORD = b"deserted-untie-orchid"
_MEMBER = "dataset/gpqa_diamond.csv"


@register_benchmark(order=90)
class GPQA(MultipleChoiceBenchmark):
    name = "gpqa"
    files = ("gpqa/dataset.zip",)
    node_cache = False  # decrypted in memory only: never pickled to the machine's cache
    split_sizes = {"valid": 32, "test": 166}
    source = "ADAS: diamond, file order, per-row choice shuffle (seed 0), [:32] / [32:]"
    answer_format = ("A single option letter, A, B, C or D, e.g. B. No option text, no "
                     "explanation in the answer field.")
    task_description = """GPQA (Graduate-Level Google-Proof Q&A) Benchmark, diamond subset.
**Type**: Multiple-choice question answering (4 options)
**Answer Type**: A single letter: A, B, C or D.
**Description**: GPQA contains very difficult questions written by domain experts in biology, physics and chemistry. They are "Google-proof": skilled non-experts with web access reach only about a third accuracy. Answering needs expert knowledge and careful multi-step scientific reasoning, often with calculations.

Example Question (illustrative, not from the dataset):
What is the correct answer to this question: A monatomic ideal gas expands isothermally and reversibly at 300 K from 1.0 L to 2.0 L. Which expression gives the work done BY the gas per mole?

Choices:
(A) R * 300 K * ln 2
(B) R * 300 K / 2
(C) 0, because the temperature is constant
(D) R * 300 K * (2.0 - 1.0)

Final answer: A
"""

    def build(self, data_dir: Path) -> dict[str, list[Item]]:
        rel = self.files[0]
        raw = D.read_bytes(data_dir, rel)
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as zf:
                text = zf.read(_MEMBER, pwd=_PASSWORD).decode("utf-8")
        except (zipfile.BadZipFile, KeyError, RuntimeError, UnicodeDecodeError) as exc:
            raise DataError(f"corrupt data file {data_dir / rel} "
                            f"({type(exc).__name__} reading {_MEMBER})") from None
        rows = list(csv.DictReader(io.StringIO(text)))
        D.require_fields(rows, ("Question", "Correct Answer", "Incorrect Answer 1",
                                "Incorrect Answer 2", "Incorrect Answer 3"), str(data_dir / rel))
        D.expect_count(rows, 198, str(data_dir / rel))
        rng = random.Random(0)
        items = []
        for i, row in enumerate(rows):
            options = [row["Incorrect Answer 1"], row["Incorrect Answer 2"],
                       row["Incorrect Answer 3"], row["Correct Answer"]]
            order = [0, 1, 2, 3]
            rng.shuffle(order)  # same draws as ADAS shuffling the 4-element option list
            choices = [options[k] for k in order]
            gold = "ABCD"[order.index(3)]
            question = (f"What is the correct answer to this question: {row['Question']}"
                        f"\n\nChoices:\n{format_choices(choices)}")
            items.append(Item(id=f"gpqa/{i}", question=question, answer=gold,
                              meta={"choices": choices, "domain": row.get("High-level domain"),
                                    "subdomain": row.get("Subdomain")}))
        if len(items) != 198:
            raise DataError(f"corrupt data file {data_dir / rel} ({_MEMBER}: {len(items)} rows)")
        return {"valid": items[:32], "test": items[32:]}
