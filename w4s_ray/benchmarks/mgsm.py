"""MGSM (multilingual grade-school math), ADAS/W4S convention.

The 11 language files are concatenated in ADAS's order (bn, de, en, es, fr, ja, ru, sw, te, th,
zh; 2,750 items), each question wrapped in ADAS's per-language instruction, shuffled with seed 0;
valid = [:128], test = [128:928]. Gold answers may carry thousands separators ("2,125"); the
scorer compares numbers, so separators and a trailing ".0" in a prediction do not matter.
"""

from __future__ import annotations

from pathlib import Path

from w4s_ray.benchmarks import data as D
from w4s_ray.benchmarks.base import Item, NumericBenchmark, number_text, shuffled, spare_pools
from w4s_ray.benchmarks.registry import register_benchmark
from w4s_ray.errors import DataError

LANGUAGES = ("bn", "de", "en", "es", "fr", "ja", "ru", "sw", "te", "th", "zh")

# ADAS `_mgsm/utils.py` LANG_TO_INSTRUCTIONS: the workflow sees the question in this frame.
INSTRUCTIONS = {
    "en": "Solve this math problem.\n\n{input}",
    "bn": "এই গণিতের সমস্যাটি সমাধান করুন।\n\n{input}",
    "de": "Löse dieses Mathematikproblem.\n\n{input}",
    "es": "Resuelve este problema matemático.\n\n{input}",
    "fr": "Résolvez ce problème de mathématiques.\n\n{input}",
    "ja": "この数学の問題を解いてください。\n\n{input}",
    "ru": "Решите эту математическую задачу.\n\n{input}",
    "sw": "Suluhisha tatizo hili la hesabu.\n\n{input}",
    "te": "ఈ గణిత సమస్యను పరిష్కరించండి.\n\n{input}",
    "th": "แก้ปัญหาคณิตศาสตร์นี้\n\n{input}",
    "zh": "解决这个数学问题。\n\n{input}",
}


@register_benchmark(order=10)
class MGSM(NumericBenchmark):
    name = "mgsm"
    files = tuple(f"mgsm/mgsm_{lang}.tsv" for lang in LANGUAGES)
    split_sizes = {"valid": 128, "test": 800}
    source = "ADAS: 11 languages concatenated (bn..zh), seed-0 shuffle, [:128] / [128:928]"
    task_description = """Multilingual Grade School Math (MGSM) Benchmark.
**Type**: Mathematical problem solving (multilingual)
**Answer Type**: The answer must be a number.
**Description**: MGSM contains 250 grade-school math word problems from GSM8K translated into ten languages (Bengali, German, Spanish, French, Japanese, Russian, Swahili, Telugu, Thai, Chinese) plus English. Each question needs multi-step arithmetic reasoning; the question may be in any of these languages, the answer is a single number.

Example Question:
Löse dieses Mathematikproblem.

Janets Enten legen 16 Eier pro Tag. Jeden Morgen isst sie drei davon zum Frühstück und backt mit vier weiteren Muffins für ihre Freunde. Den Rest verkauft sie täglich auf dem Bauernmarkt für 2 $ pro frischem Entenei. Wie viel Dollar nimmt sie täglich auf dem Bauernmarkt ein?

Final answer: 18
"""

    def build(self, data_dir: Path) -> dict[str, list[Item]]:
        rows: list[tuple[str, int, str, str]] = []
        for lang, rel in zip(LANGUAGES, self.files, strict=True):
            for i, line in enumerate(D.read_text(data_dir, rel).splitlines()):
                if not line.strip():
                    continue
                parts = line.strip().split("\t")
                if len(parts) != 2:
                    raise DataError(f"corrupt data file {data_dir / rel} (line {i + 1}: "
                                    f"expected question<TAB>answer)")
                rows.append((lang, i, parts[0], parts[1]))
        items = []
        for lang, i, question, target in shuffled(rows, 0):
            value = float(target.replace(",", ""))
            items.append(Item(
                id=f"mgsm/{lang}/{i}",
                question=INSTRUCTIONS[lang].format(input=question),
                answer=number_text(value),
                meta={"gold_value": value, "answer_raw": target, "lang": lang},
            ))
        return {"valid": items[:128], "test": items[128:928], **spare_pools(items, 928)}
