"""Candidate racing: evaluate a turn's candidates on growing validation slices and stop the
ones that can no longer beat the leader (plain code, no Ray; off by default).

The validation ids are cut into cumulative slices (`rlao.racing.slices`, fractions such as
0.25, 0.5, 1.0). Each round evaluates every live candidate on the NEXT slice only (one
concurrent evaluator call), then compares confidence intervals of the mean score: a candidate
whose upper bound is below the leader's lower bound is stopped. Bounds: Wilson score
(default; tight near 0 and 1, where clearly broken workflows sit) or Hoeffding (distribution
free, conservative), at `rlao.racing.confidence`. The leader is never stopped, so the chosen
workflow is always evaluated on the full split and its accuracy equals a plain evaluation.

A stopped candidate's accuracy is its mean on the items it saw (`stopped` marks it); rewards use
that number. `calls_saved` estimates the executor calls not made: the stopped candidate's calls
per item so far times the items it skipped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

from w4s_ray.rlao.evaluation import EvalRequest, EvalResult, Evaluator


@dataclass
class RaceResult:
    outcome: EvalResult
    stopped: bool = False
    stopped_after: int = 0  # items seen when stopped
    calls_saved: float = 0.0


def slice_bounds(n_items: int, fractions: Sequence[float]) -> list[int]:
    """Cumulative end indices, strictly increasing, the last one = n_items."""
    ends: list[int] = []
    for f in sorted(fractions):
        end = min(n_items, max(1, math.ceil(f * n_items)))
        if not ends or end > ends[-1]:
            ends.append(end)
    if not ends or ends[-1] != n_items:
        ends.append(n_items)
    return ends


def interval(mean: float, n: int, confidence: float, bound: str = "wilson") -> tuple[float, float]:
    if n <= 0:
        return 0.0, 1.0
    if bound == "hoeffding":
        eps = math.sqrt(math.log(2.0 / (1.0 - confidence)) / (2.0 * n))
        return max(0.0, mean - eps), min(1.0, mean + eps)
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = min(1.0, max(0.0, mean))
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def race(
    evaluator: Evaluator,
    codes: Sequence[str],
    benchmark: str,
    *,
    fractions: Sequence[float],
    confidence: float,
    bound: str = "wilson",
    tag: str = "",
) -> list[RaceResult]:
    """Race `codes` on the benchmark's validation ids; one RaceResult per code, same order."""
    ids = evaluator.item_ids(benchmark, "valid")
    ends = slice_bounds(len(ids), fractions)
    parts: list[list[EvalResult]] = [[] for _ in codes]
    alive = list(range(len(codes)))
    failed: set[int] = set()
    stopped: dict[int, int] = {}
    start = 0
    for end in ends:
        chunk = tuple(ids[start:end])
        jobs = [EvalRequest(codes[i], benchmark, "valid", item_ids=list(chunk), tag=f"{tag}cand{i}")
                for i in alive]
        for i, out in zip(alive, evaluator.evaluate(jobs), strict=True):
            parts[i].append(out)
            if out.error:
                failed.add(i)
        alive = [i for i in alive if i not in failed]
        start = end
        if end == len(ids) or len(alive) < 2:
            continue
        stats = {}
        for i in alive:
            scores = [s for p in parts[i] for s in p.scores]
            mean = sum(scores) / len(scores) if scores else 0.0
            stats[i] = (mean, interval(mean, len(scores), confidence, bound))
        leader = max(alive, key=lambda i: (stats[i][0], -i))
        lead_low = stats[leader][1][0]
        for i in list(alive):
            if i != leader and stats[i][1][1] < lead_low:
                alive.remove(i)
                stopped[i] = end
    results = []
    for i in range(len(codes)):
        merged = evaluator.merge(parts[i])
        res = RaceResult(merged)
        if i in stopped:
            seen = stopped[i]
            per_item = merged.calls / seen if seen else 0.0
            res = RaceResult(merged, True, seen, per_item * (len(ids) - seen))
        results.append(res)
    return results
