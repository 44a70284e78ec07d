"""`Item` and the `Benchmark` base class every benchmark module subclasses.

A benchmark knows its files (manifest paths), how to build its fixed valid/test splits from
them, how to score one prediction, what the meta-agent is told about it (`task_description`,
`answer_format`) and its seed workflows. Splits are built once per process and data dir
(`functools.lru_cache`) from files whose sha256 is checked against the manifest first, so a
corrupt or different-version file is a `DataError`, never silently different items; with
`data.node_cache` on (evaluator actors, a sweep's benchmark host) once per machine
(`node_cache.py`).

`score(item, prediction, scoring)` applies the benchmark's official rule (`official.py`,
the default) or the lenient one (`scoring.py`); it never raises on a prediction and always
returns a float in [0, 1]: junk predictions (None, dicts, objects with lying
`__str__`/`__eq__`, megabytes of text) score 0 or are coerced to text first. `format_hint`
says when a rejected answer had the right value in the wrong format.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from w4s_ray.benchmarks import data as data_mod
from w4s_ray.benchmarks import node_cache
from w4s_ray.benchmarks.official import (
    choice_format_hint,
    number_format_hint,
    score_adas_choice,
    score_aflow_number,
)
from w4s_ray.benchmarks.scoring import as_text, extract_code, score_choice, score_numeric
from w4s_ray.benchmarks.seeds import render_seeds
from w4s_ray.errors import DataError
from w4s_ray.sandbox.judge import run_tests

SPLITS = ("valid", "test")
# Pools beyond valid/test, disjoint from both, where the data allows (docs/BENCHMARKS.md):
# "extra" (validation noise: `eval.extra_random_items` are drawn from it), "train" (the fixed
# items of the collection split, `rlao.collect_split: train`) and "train_extra" (its noise
# pool). A benchmark without spare data has none (empty).
POOLS = ("extra", "train", "train_extra")
# W4S's GSM-Hard sizes (src/tasks/gsmhard/task_gsmhard.py): 200 noise items after test, then a
# training split of which 60 are fixed and the rest the noise pool.
EXTRA_POOL, TRAIN_FIXED = 200, 60


def spare_pools(items: list, start: int) -> dict[str, list]:
    """The pools of a shuffled item list whose valid/test splits end at `start`."""
    rest = items[start:]
    return {"extra": rest[:EXTRA_POOL], "train": rest[EXTRA_POOL:EXTRA_POOL + TRAIN_FIXED],
            "train_extra": rest[EXTRA_POOL + TRAIN_FIXED:]}


@dataclass(frozen=True)
class Item:
    """One benchmark question. `question` is exactly what a workflow receives as `task`.

    `meta` holds what scoring and the simulated executor need (gold spans, choices,
    entry_point, reference_solution, hidden tests); workflows never see it. Treat as read-only:
    items are cached and shared within a process.
    """

    id: str
    question: str
    answer: str
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


class Benchmark(ABC):
    name: ClassVar[str]
    kind: ClassVar[str]                    # "math" | "multiple_choice" | "reading" | "code"
    files: ClassVar[tuple[str, ...]]       # manifest paths read by `build`
    split_sizes: ClassVar[dict[str, int]]  # expected sizes, checked after building
    source: ClassVar[str]                  # the split convention, one line (docs/listing)
    scorer_name: ClassVar[str]             # the official rule and its upstream source
    lenient_scorer_name: ClassVar[str | None] = None  # None: the same rule in both modes
    task_description: ClassVar[str]
    answer_format: ClassVar[str]
    seed_names: ClassVar[tuple[str, ...]] = ("cot", "cot_sc")
    # The built splits may be written to this machine's cache (benchmarks/node_cache.py,
    # `data.node_cache`); False for data that must never be on disk in the clear (GPQA).
    node_cache: ClassVar[bool] = True

    def __init__(self, data_dir: str | Path | None = None) -> None:
        self.data_dir = data_mod.resolve_data_dir(data_dir)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(data_dir={str(self.data_dir)!r})"

    # -- data -----------------------------------------------------------------------------------

    def load(self, split: str) -> list[Item]:
        """The fixed items of `split` ("valid" | "test", or a pool: "extra" | "train" |
        "train_extra", empty where the benchmark has no spare data), deterministic order."""
        if split not in SPLITS + POOLS:
            raise DataError(f"unknown split {split!r} for benchmark {self.name}; "
                            f"expected one of {', '.join(SPLITS + POOLS)}")
        return list(_build_cached(type(self), str(self.data_dir))[split])

    def check_files(self) -> None:
        """Raise DataError unless every file of this benchmark is present and matches."""
        data_mod.require_dir(self.data_dir)
        for rel in self.files:
            try:
                known = data_mod.entry(rel)
            except KeyError:  # a plugin's own file: not in the manifest, so only its presence
                if not (self.data_dir / rel).is_file():
                    raise DataError(f"missing data file {self.data_dir / rel} (benchmark "
                                    f"{self.name})") from None
                continue
            status = data_mod.file_status(self.data_dir, known)
            if status == "missing":
                raise DataError(f"missing data file {self.data_dir / rel}; {data_mod.FETCH_HINT}")
            if status == "unreadable":
                raise DataError(f"cannot read data file {self.data_dir / rel} "
                                f"(permission denied or I/O error)")
            if status == "mismatch":
                raise DataError(f"data file {self.data_dir / rel} does not match its manifest "
                                f"sha256 (corrupt or another version); `w4s data fetch --force`")

    @abstractmethod
    def build(self, data_dir: Path) -> dict[str, list[Item]]:
        """Parse the files and return {"valid": [...], "test": [...]} plus any pools."""

    # -- scoring --------------------------------------------------------------------------------

    def score(self, item: Item, prediction: Any, scoring: str = "official") -> float:
        """Score of `prediction` (the workflow's answer) on `item`, a float in [0, 1].

        `scoring` (config `eval.scoring`): "official" applies the benchmark's one official rule
        (`scorer_name`), "lenient" the tolerant matching (`lenient_scorer_name`). An unknown
        mode is a ValueError (a caller's bug, not a junk prediction)."""
        if scoring == "official":
            rule = self._score
        elif scoring == "lenient":
            rule = self._score_lenient
        else:
            raise ValueError(f"unknown scoring {scoring!r}; expected official or lenient")
        try:
            value = float(rule(item, prediction))
        except Exception:  # noqa: BLE001 - a scorer must never take the evaluator down
            return 0.0
        if not math.isfinite(value):
            return 0.0
        return min(1.0, max(0.0, value))

    @abstractmethod
    def _score(self, item: Item, prediction: Any) -> float:
        """The official rule."""

    def _score_lenient(self, item: Item, prediction: Any) -> float:
        """The lenient rule; benchmarks with a single rule use the official one."""
        return self._score(item, prediction)

    def format_hint(self, item: Item, prediction: Any) -> str | None:
        """For an answer the official rule rejected: a one-line hint when its value was right
        but its format was not (see `official.py`), else None. Never contains the gold."""
        return None

    def gold_prediction(self, item: Item) -> str:
        """The gold answer written the way a model answering correctly would (tests, simulator)."""
        return item.answer

    # -- for workflows and the meta-agent -------------------------------------------------------

    def public_tests(self, item: Item) -> str | None:
        """Public tests a workflow may run (code benchmarks only); never the scoring tests."""
        return None

    def seed_workflows(self, style: str = "w4s") -> dict[str, str]:
        """name -> Python source defining `solver(agent, task)` (the initial archive); `style`
        "w4s" (the authors' seeds) or "w4s-ray" (see seeds/__init__.py)."""
        return render_seeds(self, style)

    def seed_instructions(self) -> dict[str, str]:
        """Values substituted into the seed templates (see seeds/__init__.py)."""
        return {
            "ROLE": "expert problem solver",
            "ANSWER_INSTRUCTIONS": self.answer_format,
        }


@lru_cache(maxsize=64)
def _build_cached(cls: type[Benchmark], data_dir: str) -> dict[str, tuple[Item, ...]]:
    return node_cache.load_or_build(cls, data_dir, list(cls.files),
                                    lambda: _build(cls, data_dir))


def _build(cls: type[Benchmark], data_dir: str) -> dict[str, tuple[Item, ...]]:
    bench = cls(data_dir)
    bench.check_files()
    splits = bench.build(Path(data_dir))
    out: dict[str, tuple[Item, ...]] = {}
    for split in SPLITS:
        items = tuple(splits[split])
        want = cls.split_sizes.get(split)
        if want is not None and len(items) != want:
            raise DataError(f"{cls.name}: built {len(items)} {split} items, expected {want} "
                            f"(a data file of {data_dir} is not the expected version)")
        out[split] = items
    for pool in POOLS:
        out[pool] = tuple(splits.get(pool, ()))
    ids = [it.id for split in SPLITS + POOLS for it in out[split]]
    if len(set(ids)) != len(ids):
        raise DataError(f"{cls.name}: duplicate item ids (data file not the expected version)")
    return out


def shuffled(rows: list, seed: int = 0) -> list:
    """`random.seed(seed); random.shuffle(rows)` as ADAS/W4S do it, without global state.

    `random.Random(seed).shuffle` draws the identical permutation as seeding the global RNG.
    """
    import random

    out = list(rows)
    random.Random(seed).shuffle(out)
    return out


class NumericBenchmark(Benchmark):
    """Math word problems scored by the last number of the prediction (GSM family, MGSM, SVAMP).

    Subclasses store the gold value in `item.meta["gold_value"]` (a float); `abs_tol` None means
    exact equality up to float round-off, as ADAS's string match after stripping `,` and `.0`.
    """

    kind = "math"
    seed_names = ("cot", "cot_sc", "code_generation")
    abs_tol: ClassVar[float | None] = None
    scorer_name = ("last number (thousands commas removed), |delta| <= 1e-6 "
                   "(AFlow benchmark/gsm8k.py extract_number + calculate_score)")
    lenient_scorer_name = ("last number; $, %, commas, scientific notation and fractions read; "
                           "equal within rel 1e-6")
    answer_format = ("A single number only (digits, optional minus sign and decimal point; "
                     "no units, no thousands separators, no words), e.g. 42 or 3.5.")

    def _score(self, item: Item, prediction: Any) -> float:
        return score_aflow_number(prediction, item.meta["gold_value"])

    def _score_lenient(self, item: Item, prediction: Any) -> float:
        return score_numeric(prediction, item.meta["gold_value"], self.abs_tol)

    def format_hint(self, item: Item, prediction: Any) -> str | None:
        return number_format_hint(prediction, item.meta["gold_value"])

    def gold_prediction(self, item: Item) -> str:
        # A decimal, not the gold's own "1/2": the official rule reads a fraction's last number.
        return f"The answer is {number_text(item.meta['gold_value'])}."

    def seed_instructions(self) -> dict[str, str]:
        return {"ROLE": "math expert",
                "ANSWER_INSTRUCTIONS": "Please explain step by step. " + self.answer_format}


def number_text(value: float) -> str:
    """A float as an answer string: 36.0 -> "36", 4.33 -> "4.33", 2.392e-06 kept as repr."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class MultipleChoiceBenchmark(Benchmark):
    """Questions with lettered options; scored by the letter the prediction chose.

    Items carry `meta["choices"]` (option texts, in the displayed order) and `item.answer` is the
    gold letter.
    """

    kind = "multiple_choice"
    scorer_name = ("the answer that is a letter alone, else the first letter L (in letter "
                   "order) with \"L)\" in it (ADAS _mmlu/_gpqa search.py evaluate_forward_fn)")
    lenient_scorer_name = ("option letter, robust parsing (\"Answer: B\", \"**B**\", \"b\", "
                           "option text); hedges score 0")

    def _score(self, item: Item, prediction: Any) -> float:
        return score_adas_choice(prediction, item.answer, len(item.meta["choices"]))

    def _score_lenient(self, item: Item, prediction: Any) -> float:
        choices = item.meta["choices"]
        return score_choice(prediction, item.answer, len(choices), choices)

    def format_hint(self, item: Item, prediction: Any) -> str | None:
        choices = item.meta["choices"]
        return choice_format_hint(prediction, item.answer, len(choices), choices)

    def gold_prediction(self, item: Item) -> str:
        return f"Answer: ({item.answer})"

    def seed_instructions(self) -> dict[str, str]:
        return {"ROLE": "knowledge and reasoning expert",
                "ANSWER_INSTRUCTIONS": "Think step by step. " + self.answer_format}


def format_choices(choices: list[str]) -> str:
    return "\n".join(f"({chr(65 + i)}) {c}" for i, c in enumerate(choices))


class CodeBenchmark(Benchmark):
    """Function synthesis scored pass@1 by running the hidden tests in a separate process.

    Items carry `meta["entry_point"]`, `meta["reference_solution"]` (full source) and
    `meta["test"]` (hidden test code). The prediction is the full function source, or text
    containing a ```python block (the block defining the entry point is taken).
    """

    kind = "code"
    seed_names = ("cot", "cot_sc", "test_repair")
    scorer_name = "pass@1 on hidden tests (python -I subprocess, timeout, rlimits)"
    answer_format = ("The complete Python function (signature and body, with any imports and "
                     "helper functions it needs) as plain source code, e.g. "
                     "\"def add(a, b):\\n    return a + b\". No explanation, no tests.")
    # CPU time bounds the candidate; the wall clock is looser so a loaded machine (evaluators
    # share 2 cores) does not fail slow-but-correct code (MBPP 123's reference needs ~5 s CPU).
    exec_cpu_s: float = 15.0
    exec_timeout_s: float = 45.0
    exec_memory_mb: int = 1024

    def _score(self, item: Item, prediction: Any) -> float:
        code = self.candidate_source(item, prediction)
        if not code.strip():
            return 0.0
        res = run_tests(code, self.hidden_tests(item), entry_point=item.meta["entry_point"],
                        timeout_s=self.exec_timeout_s,
                        cpu_s=min(self.exec_cpu_s, self.exec_timeout_s),
                        memory_mb=self.exec_memory_mb)
        return 1.0 if res.passed else 0.0

    def candidate_source(self, item: Item, prediction: Any) -> str:
        return extract_code(as_text(prediction), item.meta["entry_point"])

    def hidden_tests(self, item: Item) -> str:
        return item.meta["test"]

    def gold_prediction(self, item: Item) -> str:
        return item.meta["reference_solution"]

    def public_test_list(self, item: Item) -> list[str]:
        """The public asserts (calling `candidate(...)`) of one item; may be empty."""
        return []

    def public_tests(self, item: Item) -> str | None:
        asserts = self.public_test_list(item)
        if not asserts:
            return None
        body = "\n".join("    " + a for a in asserts)
        return f"def check(candidate):\n{body}\n"

    def seed_instructions(self) -> dict[str, str]:
        return {"ROLE": "Python programmer", "ANSWER_INSTRUCTIONS": self.answer_format}
