"""Loss figures: the label names the loss that was plotted, integer step ticks."""

from __future__ import annotations

import matplotlib.pyplot as plt

from w4s_ray.train.plots import loss_figure


def test_warm_start_loss_is_not_labelled_rwr():
    history = [{"step": i, "loss": 2.0 / i} for i in (1, 2, 3)]
    fig = loss_figure(history, title="tiny meta-agent warm start",
                      loss_label="supervised loss (cross-entropy)")
    try:
        (ax,) = fig.axes
        assert [ln.get_label() for ln in ax.get_lines()] == ["supervised loss (cross-entropy)"]
        lo, hi = ax.get_xlim()
        ticks = [x for x in ax.get_xticks() if lo <= x <= hi]
        assert ticks and all(float(x).is_integer() for x in ticks)
    finally:
        plt.close(fig)


def test_rwr_loss_keeps_its_label_and_the_ce_line():
    history = [{"step": i, "loss": 1.0 / i, "ce": 2.0 / i} for i in (1, 2)]
    fig = loss_figure(history)
    try:
        labels = [ln.get_label() for ln in fig.axes[0].get_lines()]
        assert labels == ["weighted RWR loss", "action CE (unweighted)"]
    finally:
        plt.close(fig)
