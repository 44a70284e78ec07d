"""Bootstrap confidence intervals of a mean (numpy only).

Upstream (fannie1208/W4S `src/utils/helper.py` `bootstrap_confidence_interval`) resamples the
per-item scores with replacement 100,000 times, takes the mean of each resample, and reports
the 2.5th and 97.5th percentiles of those means (numpy's default linear interpolation) and their
median. This does the same, with a seeded generator (upstream uses numpy's global one, unseeded)
and the resamples drawn in chunks so memory stays bounded for large test sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CHUNK_CELLS = 4_000_000  # resample draws held in memory at once


@dataclass(frozen=True)
class BootstrapCI:
    low: float
    high: float
    median: float
    confidence: float
    samples: int
    seed: int

    def as_dict(self) -> dict:
        return {"low": self.low, "high": self.high, "median": self.median,
                "confidence": self.confidence, "samples": self.samples, "seed": self.seed}


def bootstrap_ci(scores: Sequence[float], *, samples: int = 100_000, confidence: float = 0.95,
                 seed: int = 0) -> BootstrapCI | None:
    """The percentile bootstrap CI of the mean of `scores`; None for no scores."""
    data = np.asarray(list(scores), dtype=float)
    if data.size == 0 or samples < 1:
        return None
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    step = max(1, CHUNK_CELLS // data.size)
    for start in range(0, samples, step):
        n = min(step, samples - start)
        idx = rng.integers(0, data.size, size=(n, data.size))
        means[start:start + n] = data[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.percentile(means, [100 * tail, 100 * (1 - tail)])
    return BootstrapCI(float(low), float(high), float(np.median(means)), confidence, samples,
                       seed)
