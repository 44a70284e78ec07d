"""The report figures: integer turn ticks, accuracy within [0, 1], dollars from 0 with the
cache's "would have cost" line, compare error bars clipped to [0, 100], honest titles."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from w4s_ray.rlao.policy_eval import compare_figure  # noqa: E402
from w4s_ray.rlao.report import curve_figure  # noqa: E402


def _turn(t: int, acc: float, usd: float, cached: float) -> dict:
    return {"episode_id": "gsm8k-e00", "turn": t, "best_so_far": acc, "best_val_accuracy": acc,
            "cum_usd": usd, "cached_usd": cached}


def _integer_ticks(ax) -> list[float]:
    lo, hi = ax.get_xlim()
    ticks = [x for x in ax.get_xticks() if lo <= x <= hi]
    assert ticks and all(float(x).is_integer() for x in ticks), ticks
    return ticks


def test_optimize_curve_has_integer_turns_and_shows_cached_cost():
    # 3 turns: matplotlib's default locator would tick 0, 0.25, 0.5, ...
    fig = curve_figure([_turn(0, 0.5, 0.0, 0.02), _turn(1, 0.6, 0.0, 0.03),
                        _turn(2, 0.7, 0.0, 0.01)])
    try:
        acc, usd = fig.axes
        assert _integer_ticks(acc) and _integer_ticks(usd)
        assert acc.get_ylim()[0] >= -0.05 and acc.get_ylim()[1] <= 1.05
        assert usd.get_ylim()[0] == 0
        labels = [ln.get_label() for ln in usd.get_lines()]
        assert "gsm8k-e00 would have cost without the cache" in labels
        would = usd.get_lines()[labels.index("gsm8k-e00 would have cost without the cache")]
        assert np.allclose(would.get_ydata(), [0.02, 0.05, 0.06])
        assert (acc.get_title(), usd.get_title()) == ("Validation accuracy", "Dollars")
    finally:
        plt.close(fig)


def test_no_cache_line_without_cache_hits():
    fig = curve_figure([_turn(0, 0.5, 0.1, 0.0), _turn(1, 0.6, 0.2, 0.0)])
    try:
        assert [ln.get_label() for ln in fig.axes[1].get_lines()] == ["gsm8k-e00 spent"]
    finally:
        plt.close(fig)


def test_compare_error_bars_stay_within_0_and_100():
    # per-seed accuracies 0, 0, 0.9 (mean 30, sd 52) and 1, 1, 0.7 (mean 90, sd 17)
    summary = {
        "models": ["warm", "trained"], "benchmarks": ["gsm8k"],
        "cells": [{"benchmark": "gsm8k", "seed": s, "warm": w, "trained": t}
                  for s, w, t in ((0, 0.0, 1.0), (1, 0.0, 1.0), (2, 0.9, 0.7))],
        "per_model": {"warm": {"per_seed": {0: 0.0, 1: 0.0, 2: 0.9}},
                      "trained": {"per_seed": {0: 1.0, 1: 1.0, 2: 0.7}}},
    }
    fig = compare_figure(summary)
    try:
        (ax,) = fig.axes
        ys = []
        for coll in ax.collections:  # the error bar segments
            for seg in coll.get_segments():
                ys += list(np.asarray(seg)[:, 1])
        assert ys and min(ys) >= 0.0 and max(ys) <= 100.0
        assert min(ys) == 0.0  # the warm model's bar is clipped at 0, not drawn below it
        assert ax.get_ylim() == (0.0, 105.0)
    finally:
        plt.close(fig)


def test_collect_curve_is_one_line_per_benchmark_with_a_band_over_episodes():
    from w4s_ray.rlao.report import collect_figure

    rng = np.random.default_rng(0)
    table = []
    for b in ("gsm8k", "svamp", "mgsm"):
        for e in range(6):  # 18 episodes: the old figure had 18 legend entries over the data
            acc, usd = 0.4, 0.0
            for t in range(4):
                acc = min(1.0, acc + rng.uniform(0, 0.3))
                usd += 0.01
                table.append({"episode_id": f"{b}-e{e:02d}", "benchmark": b, "turn": t,
                              "best_so_far": acc, "cum_usd": usd})
    fig = collect_figure(table)
    acc_ax, usd_ax = fig.axes
    assert len(acc_ax.get_lines()) == 3 and len(usd_ax.get_lines()) == 3
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == [f"{b} (mean of 6 episodes)" for b in ("gsm8k", "mgsm", "svamp")]
    assert acc_ax.get_legend() is None  # the legend sits below the panels, not over the data
    assert len(acc_ax.collections) == 3  # one band per benchmark
    for band in acc_ax.collections:
        ys = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
        assert ys.min() >= 0.0 and ys.max() <= 1.0
    _integer_ticks(acc_ax)
    _integer_ticks(usd_ax)
    mean_gsm = acc_ax.get_lines()[0].get_ydata()
    want = [np.mean([r["best_so_far"] for r in table
                     if r["benchmark"] == "gsm8k" and r["turn"] == t]) for t in range(4)]
    assert np.allclose(mean_gsm, want)
    plt.close(fig)
