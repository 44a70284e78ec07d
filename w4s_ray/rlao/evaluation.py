"""What the RLAO loop needs from workflow evaluation: a small protocol (no Ray).

The loop sends `EvalRequest`s and gets `EvalResult`s back (both from `workflow.evaluate`: the
one request type and the one result type of the evaluation seam). `runtime.evaluators.
EvaluatorPool` implements the protocol on Ray actors; unit tests use a fake. Self-checks are
requests with `self_check=True`; their structured failure comes back in
`EvalResult.first_failure`. Validation results come back with their W4S feedback text already
written by the evaluator (where the benchmark is), so the loop never loads gold answers.

`merge_results` is the one function that joins the slice results of a raced candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from w4s_ray.rlao.prompts import format_feedback
from w4s_ray.workflow.evaluate import EvalRequest, EvalResult

__all__ = ["EvalRequest", "EvalResult", "Evaluator", "merge_results"]

_ADDITIVE = ("prompt_tokens", "completion_tokens", "cost_usd", "cached_usd", "calls",
             "cache_hits", "cache_misses", "code_runs", "wall_s")


class Evaluator(Protocol):
    def evaluate(self, requests: Sequence[EvalRequest]) -> list[EvalResult]:
        """Evaluate all requests concurrently; same order. Raises BudgetExceeded when spent."""

    def item_ids(self, benchmark: str, split: str) -> list[str]:
        """The ids a request without item ids uses for `split` (for racing slices, test ids)."""

    def merge(self, parts: Sequence[EvalResult]) -> EvalResult:
        """One result for a workflow evaluated on disjoint item slices (`merge_results`)."""


def merge_results(parts: Sequence[EvalResult], failure_samples: int) -> EvalResult:
    """Concatenate slice results: accuracy over all items, costs added, feedback rewritten
    from the joined failure cases (`failure_samples` of them, as the evaluator would)."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    merged = EvalResult(benchmark=first.benchmark, split=first.split, tag=first.tag,
                        scoring=first.scoring)
    for r in parts:
        offset = len(merged.scores)
        merged.format_hints += r.format_hints or [None] * len(r.scores)
        merged.cases += [{**c, "index": c["index"] + offset} for c in r.cases]
        merged.scores += r.scores
        merged.answers += r.answers
        merged.item_ids += r.item_ids
        merged.item_errors += r.item_errors
        for k, v in r.errors.items():
            merged.errors[k] = merged.errors.get(k, 0) + v
        merged.error = merged.error or r.error
        merged.first_failure = merged.first_failure or r.first_failure
        for attr in _ADDITIVE:
            setattr(merged, attr, getattr(merged, attr) + getattr(r, attr))
    merged.n = len(merged.scores)
    merged.accuracy = sum(merged.scores) / merged.n if merged.n else 0.0
    if merged.split == "valid":
        merged.feedback = format_feedback(merged, failure_samples)
    return merged
