"""Loss curves for a training run (matplotlib, Agg backend; files only, no display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def loss_figure(history: list[dict[str, Any]], *, title: str = "RWR",
                loss_label: str = "weighted RWR loss"):
    """The loss (labelled `loss_label`) and, when recorded, the unweighted action CE and the
    KL term (`train.kl_coef`) per optimizer step (integer step ticks)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    steps = [r["step"] for r in history]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    ax.plot(steps, [r["loss"] for r in history], label=loss_label, marker=".")
    if all("ce" in r for r in history):
        ax.plot(steps, [r["ce"] for r in history], label="action CE (unweighted)", alpha=0.7)
    if all("kl" in r for r in history):
        ax.plot(steps, [r["kl"] for r in history], label="KL(base ‖ policy) per token", alpha=0.7)
    ax.set_xlabel("optimizer step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_loss(history: list[dict[str, Any]], out: str | Path, *, title: str = "RWR",
              loss_label: str = "weighted RWR loss") -> Path:
    """`loss_figure` -> PNG at `out` (written whole, then renamed)."""
    import matplotlib.pyplot as plt

    fig = loss_figure(history, title=title, loss_label=loss_label)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(out)
    return out
