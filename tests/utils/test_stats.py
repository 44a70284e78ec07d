"""`bootstrap_ci`: upstream's percentile bootstrap of the mean, seeded and chunked."""

from __future__ import annotations

import numpy as np
import pytest

from w4s_ray.utils import stats
from w4s_ray.utils.stats import bootstrap_ci


def _upstream(scores, samples, seed):
    """Upstream's loop (src/utils/helper.py), restated: one resample of the scores with
    replacement per iteration, its mean kept; 2.5/97.5 percentiles and the median."""
    rng = np.random.default_rng(seed)
    data = np.asarray(scores, dtype=float)
    means = [data[rng.integers(0, data.size, size=data.size)].mean() for _ in range(samples)]
    return np.percentile(means, 2.5), np.percentile(means, 97.5), np.median(means)


def test_equals_the_resample_loop_and_chunking_changes_nothing(monkeypatch):
    scores = [1.0] * 30 + [0.0] * 20
    low, high, median = _upstream(scores, 2_000, seed=3)
    monkeypatch.setattr(stats, "CHUNK_CELLS", 50 * 7)  # 7 resamples per chunk
    ci = bootstrap_ci(scores, samples=2_000, seed=3)
    assert (ci.low, ci.high, ci.median) == pytest.approx((low, high, median))
    assert ci.low < 0.6 < ci.high and ci.confidence == 0.95 and ci.samples == 2_000


def test_interval_is_reproducible_shrinks_with_n_and_is_none_without_scores():
    small = bootstrap_ci([1, 0] * 10, samples=5_000, seed=1)
    big = bootstrap_ci([1, 0] * 500, samples=5_000, seed=1)
    assert small == bootstrap_ci([1, 0] * 10, samples=5_000, seed=1)
    assert big.high - big.low < small.high - small.low
    assert bootstrap_ci([1.0] * 8, samples=100).as_dict()["low"] == 1.0
    assert bootstrap_ci([], samples=100) is None
