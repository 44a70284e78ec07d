"""Loss curves for a training run (matplotlib, Agg backend; files only, no display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_loss(history: list[dict[str, Any]], out: str | Path, *, title: str = "RWR") -> Path:
    """Weighted RWR loss and unweighted action CE per step -> PNG at `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in history]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    ax.plot(steps, [r["loss"] for r in history], label="weighted RWR loss", marker=".")
    if all("ce" in r for r in history):
        ax.plot(steps, [r["ce"] for r in history], label="action CE (unweighted)", alpha=0.7)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(out)
    return out
