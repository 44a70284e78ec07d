"""ADAS's fitness: bootstrap median and 95% CI, formatted as ADAS formats it; seeded."""

from __future__ import annotations

import re

import numpy as np
import pytest

from w4s_ray.optimizers.fitness import bootstrap_fitness, fitness_text

ADAS_FORMAT = re.compile(r"^95% Bootstrap Confidence Interval: \((\d+\.\d)%, (\d+\.\d)%\), "
                         r"Median: (\d+\.\d)%$")


def test_string_has_adas_format_and_one_decimal():
    fit = bootstrap_fitness([1, 0, 1, 1, 0, 1, 0, 1], seed=3, samples=2000)
    m = ADAS_FORMAT.match(fit.text)
    assert m, fit.text
    low, high, median = (float(x) for x in m.groups())
    assert low <= median <= high
    assert fit.mean == pytest.approx(5 / 8)
    assert fitness_text(0.123456, 0.5, 0.25) == (
        "95% Bootstrap Confidence Interval: (12.3%, 50.0%), Median: 25.0%")


def test_same_seed_same_string_and_constant_data_has_no_width():
    scores = [1.0] * 30 + [0.0] * 20
    assert bootstrap_fitness(scores, seed=11).text == bootstrap_fitness(scores, seed=11).text
    assert bootstrap_fitness([1.0] * 20, seed=0).text == (
        "95% Bootstrap Confidence Interval: (100.0%, 100.0%), Median: 100.0%")
    assert bootstrap_fitness([], seed=0).mean == 0.0


def test_interval_matches_a_plain_resampling_of_the_means():
    # The reference: ADAS's procedure written out (resample, mean, percentiles, median).
    scores = np.array([1.0] * 64 + [0.0] * 64)
    rng = np.random.default_rng(123)
    means = np.array([rng.choice(scores, size=len(scores)).mean() for _ in range(20_000)])
    ref = np.percentile(means, [2.5, 97.5, 50])
    fit = bootstrap_fitness(scores, seed=5)
    assert fit.n == 128
    assert fit.low == pytest.approx(ref[0], abs=0.01)
    assert fit.high == pytest.approx(ref[1], abs=0.01)
    assert fit.median == pytest.approx(ref[2], abs=0.005)
    # Normal approximation of the mean of 128 fair coins: 0.5 +- 1.96 * 0.0442.
    assert fit.low == pytest.approx(0.5 - 0.0866, abs=0.01)
    assert fit.high == pytest.approx(0.5 + 0.0866, abs=0.01)


def test_fractional_scores_are_supported():
    fit = bootstrap_fitness([0.5, 0.25, 1.0, 0.0], seed=1, samples=5000)
    assert fit.mean == pytest.approx(0.4375)
    assert 0.0 <= fit.low <= fit.mean <= fit.high <= 1.0
