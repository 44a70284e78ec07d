"""What the ADAS and AFlow search loops need from the rest of the platform (no Ray, no I/O).

- `Evaluate`: a callable `evaluate(codes, benchmark, split="valid", *, seeds=None,
  limit=None) -> list[Outcome]` that evaluates every workflow source of `codes` concurrently
  (same order) and raises `BudgetExceeded` (or `ExecutorFatal`) when the run must stop.
  The loops call it with `split="valid"` only; testing the final workflow is the caller's job.
- `Outcome`: the part of a workflow evaluation the loops use.
- The meta model is any `w4s_ray.meta_agent.base.MetaAgent` (`generate(messages, n, seed=)`).
- `derive_seed`: stable per-step seeds, so a resumed run asks the meta model exactly what the
  uninterrupted run would have asked.

Records the loops return are plain JSON-able dicts; the caller appends them to durable storage
and hands them back on resume (`state_after(records)` in each loop module).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

from w4s_ray.meta_agent.base import MetaAgent


@dataclass
class Outcome:
    """One workflow's evaluation on one split (validation during search)."""

    accuracy: float | None             # mean item score; None: the workflow failed as a whole
    scores: list[float] = field(default_factory=list)   # per item, in [0, 1]
    error: str | None = None           # workflow-level failure (did not load, ...) or None
    first_failure: str | None = None   # the first item that raised ("kind: message", traceback)
    feedback: str = ""                 # validation feedback text: accuracy, failure samples
    cost_usd: float = 0.0              # executor dollars this evaluation paid
    calls: int = 0                     # executor calls

    @property
    def ran_cleanly(self) -> bool:
        """Every item ran to an answer (right or wrong): what a dry run checks."""
        return self.error is None and self.first_failure is None and self.accuracy is not None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Outcome:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


class Evaluate(Protocol):
    def __call__(self, codes: Sequence[str], benchmark: str, split: str = "valid", *,
                 seeds: Sequence[int] | None = None,
                 limit: int | None = None) -> list[Outcome]:
        """Evaluate all `codes` concurrently on `split` (`seeds[i]` draws code i's samples;
        `limit`: first N items). Same order. Raises BudgetExceeded when the budget is spent."""


def derive_seed(base: int, *parts: object) -> int:
    """A stable 62-bit seed for (base, parts...): same inputs, same seed, in any process."""
    key = json.dumps([int(base), *[str(p) for p in parts]]).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") >> 2


def reply_text(meta: MetaAgent, messages: list[dict[str, str]], seed: int) -> str:
    """One meta-model reply as text ("" when the backend returned nothing usable)."""
    replies = list(meta.generate(messages, 1, seed=seed) or [])
    return replies[0] if replies and isinstance(replies[0], str) else ""


def usage_snapshot(meta: MetaAgent) -> dict:
    u = getattr(meta, "usage", None)
    return {"calls": getattr(u, "calls", 0), "prompt_tokens": getattr(u, "prompt_tokens", 0),
            "completion_tokens": getattr(u, "completion_tokens", 0),
            "cost_usd": float(getattr(u, "cost_usd", 0.0))}


def usage_delta(before: dict, after: dict) -> dict:
    # Dollars rounded to 1e-9: a difference of running sums must not depend on the history.
    return {k: round(after[k] - before[k], 9) if k == "cost_usd" else after[k] - before[k]
            for k in before}


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "\n[... truncated]"
