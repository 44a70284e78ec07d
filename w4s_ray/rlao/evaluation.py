"""What the RLAO loop needs from workflow evaluation: a small protocol (no Ray).

The loop talks to an `Evaluator` that evaluates batches of `EvalJob`s (concurrently, in one
call) and self-checks code on a few items; `PoolEvaluator` (in `w4s_ray.runtime.rlao_eval`)
adapts the Ray `EvaluatorPool` and the workflow runtime to it, and unit tests use a fake. An
`EvalOutcome` is the part of a workflow evaluation the loop uses: accuracy, per-item scores,
a workflow-level error, executor calls/tokens/dollars, and the feedback text shown to the
meta-agent (validation feedback only; test evaluations are never turned into prompts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class EvalJob:
    code: str
    benchmark: str
    split: str = "valid"
    item_ids: tuple[str, ...] | None = None
    tag: str = ""


@dataclass
class EvalOutcome:
    accuracy: float | None  # None: the workflow failed as a whole (`error` says why)
    n: int = 0
    scores: list[float] = field(default_factory=list)
    item_ids: list[str] = field(default_factory=list)
    error: str | None = None
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cached_usd: float = 0.0  # would-have-cost of the executor samples served from the cache
    feedback: str = ""
    raw: Any = None  # the evaluator's own result object, for `merge`


class Evaluator(Protocol):
    def evaluate(self, jobs: Sequence[EvalJob]) -> list[EvalOutcome]:
        """Evaluate all jobs concurrently; same order. Raises BudgetExceeded when spent."""

    def self_check(self, codes: Sequence[str], benchmark: str) -> list[EvalOutcome]:
        """Run each code on a few validation items; `error` is the failure text or None."""

    def item_ids(self, benchmark: str, split: str) -> list[str]:
        """The ids `evaluate` uses for a split without item_ids (for racing slices)."""

    def merge(self, parts: Sequence[EvalOutcome]) -> EvalOutcome:
        """One outcome for a workflow evaluated on disjoint item slices."""

    def repair_messages(self, code: str, failure: str) -> list[dict[str, str]]:
        """Chat messages asking the meta-agent to fix `code` given the failure text."""


def merge_outcomes(parts: Sequence[EvalOutcome], feedback: str | None = None) -> EvalOutcome:
    """Concatenate slice outcomes: accuracy = mean over all scored items; costs add up."""
    scores = [s for p in parts for s in p.scores]
    error = next((p.error for p in parts if p.error), None)
    return EvalOutcome(
        accuracy=None if error else (sum(scores) / len(scores) if scores else 0.0),
        n=sum(p.n for p in parts),
        scores=scores,
        item_ids=[i for p in parts for i in p.item_ids],
        error=error,
        calls=sum(p.calls for p in parts),
        prompt_tokens=sum(p.prompt_tokens for p in parts),
        completion_tokens=sum(p.completion_tokens for p in parts),
        cost_usd=sum(p.cost_usd for p in parts),
        cached_usd=sum(p.cached_usd for p in parts),
        feedback=feedback if feedback is not None else (parts[-1].feedback if parts else ""),
    )
