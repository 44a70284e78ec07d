"""ADAS's fitness: the median and 95% bootstrap confidence interval of the mean item score.

ADAS (`_mgsm/utils.py` `bootstrap_confidence_interval`) resamples the per-question scores with
replacement 100,000 times, takes each resample's mean, and reports the 2.5th and 97.5th
percentiles (numpy's default linear interpolation) and the median of those means, in percent
with one decimal, as one string that the meta agent reads in its archive. This module computes
the same numbers with a seeded generator (ADAS uses numpy's global RNG, so its strings vary
run to run; ours are reproducible from the seed) and vectorised in chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SAMPLES = 100_000
CONFIDENCE = 0.95
_CHUNK = 10_000  # resamples drawn at once: bounds memory at chunk x n_items indices


@dataclass(frozen=True)
class Fitness:
    low: float       # fractions in [0, 1]
    high: float
    median: float
    mean: float      # the plain accuracy (what selection uses)
    n: int
    text: str        # ADAS's string, shown to the meta agent

    def to_dict(self) -> dict:
        return {"low": self.low, "high": self.high, "median": self.median, "mean": self.mean,
                "n": self.n, "text": self.text}


def fitness_text(low: float, high: float, median: float, confidence: float = CONFIDENCE) -> str:
    return (f"{confidence * 100:.0f}% Bootstrap Confidence Interval: "
            f"({low * 100:.1f}%, {high * 100:.1f}%), Median: {median * 100:.1f}%")


def bootstrap_fitness(scores: Sequence[float], seed: int, *, samples: int = SAMPLES,
                      confidence: float = CONFIDENCE) -> Fitness:
    """Fitness of per-item `scores` (each in [0, 1]); no items counts as accuracy 0."""
    values = [float(s) for s in scores]
    data = np.asarray(values or [0.0], dtype=np.float64)
    rng = np.random.default_rng(seed)
    n = len(data)
    means = np.empty(samples, dtype=np.float64)
    for start in range(0, samples, _CHUNK):
        k = min(_CHUNK, samples - start)
        idx = rng.integers(0, n, size=(k, n))
        means[start:start + k] = data[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low = float(np.percentile(means, tail * 100))
    high = float(np.percentile(means, (1.0 - tail) * 100))
    median = float(np.median(means))
    return Fitness(low, high, median, float(data.mean()), len(values),
                   fitness_text(low, high, median, confidence))
