"""Which benchmark item is a prompt about? A shingle index over every item's question text.

Workflows wrap the task in their own instructions (f-strings, few-shot examples, critic
prompts), so lookup cannot be an exact match. Each item's question is normalised (lower case,
alphanumeric words) and every second run of `K` consecutive words is hashed into a dict; a
prompt's word windows are looked up, candidates are ranked by hits, and the winner must
either contain-match (its whole normalised question occurs in the prompt) or cover at least
half its indexed shingles. When several items match (few-shot examples), the one occurring
last in the prompt wins: the task comes after its examples.

The index is built from a list of `SimItem`s, so tests can inject their own; the server builds
that list from the public benchmark API (`w4s_ray.benchmarks`). Memory: one small tuple per
item plus ~len(words)/2 dict entries per item.
"""

from __future__ import annotations

import json
import re
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from w4s_ray.benchmarks import get_benchmark, list_benchmarks
from w4s_ray.errors import W4SError

K = 8
STRIDE = 2
RECENT_LOOKUPS = 4096  # prompts whose lookup result is remembered
# A word is a run of letters/digits in any script; scripts written without spaces (CJK, Thai,
# kana, hangul) count one character per word, so their shingles still carry signal.
_WORD = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]|[^\W_]+")


@dataclass(frozen=True, eq=False)  # identity equality: answers may be lists
class SimItem:
    """What the simulator knows about one benchmark item (including its gold answer)."""

    benchmark: str
    kind: str  # "math" | "multiple_choice" | "reading" | "code"
    id: str
    question: str
    answer: Any
    meta: dict = field(default_factory=dict)


def normalise(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _shingle(words: list[str], i: int) -> int:
    return hash(" ".join(words[i : i + K]))


class ItemIndex:
    """Find the item a prompt is about; `lookup(text) -> SimItem | None`."""

    def __init__(self, items: Iterable[SimItem]):
        self.items: list[SimItem] = []
        self._norm: list[str] = []
        self._nshingles: list[int] = []
        self._shingles: dict[int, list[int]] = {}
        self._short: dict[str, int] = {}
        # Workflows send the same prompt many times (self-consistency, retries, candidates
        # sharing a template): remember recent answers so a repeat costs one dict lookup.
        self._recent: OrderedDict[str, int | None] = OrderedDict()
        for item in items:
            self.add(item)

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: SimItem) -> None:
        self._recent.clear()  # a new item may change what an earlier prompt matches
        words = normalise(item.question)
        if not words:
            return
        idx = len(self.items)
        self.items.append(item)
        self._norm.append(" " + " ".join(words) + " ")
        if len(words) < K:
            if len(words) < 3:  # too short to tell apart from any prompt; never matched
                self._nshingles.append(0)
                return
            self._short.setdefault(" ".join(words), idx)
            self._nshingles.append(0)
            return
        positions = list(range(0, len(words) - K + 1, STRIDE))
        if positions[-1] != len(words) - K:
            positions.append(len(words) - K)
        seen: set[int] = set()
        for i in positions:
            h = _shingle(words, i)
            if h in seen:
                continue
            seen.add(h)
            bucket = self._shingles.setdefault(h, [])
            if len(bucket) < 2048:  # bounds lookup cost of boilerplate shared by every item
                bucket.append(idx)
        self._nshingles.append(len(seen))

    def lookup(self, text: str) -> SimItem | None:
        if text in self._recent:
            self._recent.move_to_end(text)
            idx = self._recent[text]
            return None if idx is None else self.items[idx]
        idx = self._lookup(text)
        self._recent[text] = idx
        if len(self._recent) > RECENT_LOOKUPS:
            self._recent.popitem(last=False)
        return None if idx is None else self.items[idx]

    def _lookup(self, text: str) -> int | None:
        words = normalise(text)
        if not words:
            return None
        hits: Counter[int] = Counter()
        for i in range(0, max(0, len(words) - K + 1)):
            for idx in self._shingles.get(_shingle(words, i), ()):
                hits[idx] += 1
        joined = " " + " ".join(words) + " "
        best: tuple[int, int, int] | None = None  # (position, length, idx)
        top = hits.most_common(1)[0][1] if hits else 0
        # Items sharing a passage (DROP) tie on its shingles: check every strong candidate.
        for idx, count in hits.most_common(256):
            if count < 0.5 * top:
                break
            pos = joined.rfind(self._norm[idx])
            if pos >= 0:
                cand = (pos + len(self._norm[idx]), len(self._norm[idx]), idx)
                best = cand if best is None or cand > best else best
        if best is None and self._short:
            for key, idx in self._short.items():
                pos = joined.rfind(" " + key + " ")
                if pos >= 0:
                    cand = (pos + len(key), len(key), idx)
                    best = cand if best is None or cand > best else best
        if best is not None:
            return best[2]
        if hits:
            idx, count = hits.most_common(1)[0]
            if count >= 0.5 * max(1, self._nshingles[idx]):
                return idx
        return None


def items_from_benchmarks(data_dir: str | Path | None) -> list[SimItem]:
    """Every item of every benchmark (valid and test) via the public benchmark API."""

    out: list[SimItem] = []
    for entry in list_benchmarks():
        name = entry if isinstance(entry, str) else getattr(entry, "name", str(entry))
        try:
            bm = get_benchmark(name, data_dir=data_dir)
        except W4SError:
            continue
        for split in ("valid", "test"):
            try:
                items = bm.load(split)
            except W4SError:
                continue
            for it in items:
                meta = dict(it.meta or {})
                keep = {k: meta[k] for k in ("choices", "entry_point", "reference_solution") if k in meta}
                out.append(SimItem(name, bm.kind, str(it.id), it.question, it.answer, keep))
    return out


def items_from_jsonl(path: str | Path) -> list[SimItem]:
    """Items from a JSONL file of {benchmark, kind, id, question, answer, meta} (tests)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                d = json.loads(line)
                out.append(SimItem(d["benchmark"], d["kind"], str(d["id"]), d["question"],
                                   d["answer"], d.get("meta") or {}))
    return out
