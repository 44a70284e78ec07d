"""The paper-shaped table of a `w4s sweep --methods` run, from the files only (no Ray).

Rows are methods, columns benchmarks. A cell holds the test metric in percent (accuracy; F1
for DROP; pass@1 for code) ± the half-width of its 95% bootstrap interval over the test items,
then the executor dollars and wall time that method spent on that benchmark (search and test).
Per column, the best non-W4S method (hand-designed baselines, ADAS, AFlow) is marked with †;
the last row is W4S's gain over it in points. A cell whose method failed, stopped or never
ran says so (`FAILED: ...`, `budget`, `not run`). Written as `sweep_table.md`,
`sweep_table.png` (the same numbers as grouped bars with CI whiskers) and `sweep_table.json`
(every cell's numbers, for plotting elsewhere).

Every number comes from a method's own result file (`sweep.methods.result_path`); test was
evaluated once per cell, on the same items for every method of a benchmark.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

from w4s_ray.rlao.runs import read_json
from w4s_ray.sweep.layout import SweepLayout
from w4s_ray.sweep.methods import error_path, result_path
from w4s_ray.utils.io import atomic_write_bytes, atomic_write_text

LABELS = {"cot": "CoT", "cot_sc": "CoT-SC", "self_refine": "Self-Refine",
          "llm_debate": "LLM Debate", "step_back": "Step-back Abstraction",
          "quality_diversity": "Quality-Diversity", "role_assignment": "Dynamic Role Assignment",
          "adas": "ADAS", "aflow": "AFlow", "w4s": "W4S"}


def label(method: str) -> str:
    return LABELS.get(method, method)


def cell(layout: SweepLayout, benchmark: str, method: str, bench_status: dict) -> dict:
    res = read_json(result_path(layout, benchmark, method), torn_ok=True)
    err = read_json(error_path(layout, benchmark, method), torn_ok=True)
    if isinstance(res, dict) and "test_accuracy" in res and not err:
        acc = res.get("test_accuracy")
        ci = res.get("test_ci")
        if ci is None and res.get("test_scores") and acc is not None:
            from w4s_ray.optimizers.run import ci as boot

            ci = boot(res["test_scores"], 0)
        return {"status": "done" if acc is not None else "failed",
                "error": res.get("test_error"), "test": acc, "ci": ci,
                "test_n": res.get("test_n"), "usd": res.get("dollars"),
                "wall_s": res.get("wall_s")}
    if isinstance(err, dict):
        return {"status": "failed", "error": err.get("error"), "test": None, "ci": None,
                "test_n": None, "usd": None, "wall_s": None}
    st = bench_status.get("status")
    why = bench_status.get("error")
    state = {"budget": "budget", "failed": "failed"}.get(st, "not run")
    return {"status": state, "error": why, "test": None, "ci": None, "test_n": None,
            "usd": None, "wall_s": None}


def collect(root: str | Path, benchmarks: Sequence[str], methods: Sequence[str]) -> dict:
    layout = SweepLayout(root)
    status = layout.load_status()
    per_bench = status.get("benchmarks", {})
    cells = {m: {b: cell(layout, b, m, per_bench.get(b, {})) for b in benchmarks}
             for m in methods}
    best, gain = {}, {}
    for b in benchmarks:
        best[b] = None  # the first of the methods in order on ties
        for m in methods:
            t = cells[m][b]["test"]
            if m != "w4s" and t is not None and (
                    best[b] is None or t > cells[best[b]][b]["test"]):
                best[b] = m
        w = cells.get("w4s", {}).get(b, {}).get("test")
        gain[b] = None if (w is None or best[b] is None) else w - cells[best[b]][b]["test"]
    return {"meta": status.get("meta", {}), "benchmarks": list(benchmarks),
            "methods": list(methods), "cells": cells, "best_baseline": best,
            "w4s_gain": gain}


def _fmt_cell(c: dict, marked: bool) -> str:
    if c["test"] is None:
        if c["status"] == "failed":
            return "FAILED: " + str(c.get("error") or "see error.json").replace("|", "\\|")[:60]
        return c["status"]
    half = ""
    if c.get("ci"):
        half = f" ± {100 * (c['ci'][1] - c['ci'][0]) / 2:.1f}"
    usd = "n/a" if c["usd"] is None else f"${c['usd']:.4f}"
    wall = "n/a" if c["wall_s"] is None else f"{c['wall_s']:.0f} s"
    star = "†" if marked else ""
    return f"{100 * c['test']:.1f}{half}{star} <br>{usd}, {wall}"


def render(data: dict) -> str:
    benches, methods = data["benchmarks"], data["methods"]
    meta = data["meta"]
    sim = " (simulated executor)" if meta.get("simulated") else ""
    lines = [f"# Method comparison: {meta.get('name', '')}{sim}", ""]
    if meta.get("simulated"):
        lines += ["**Simulated executor**: every executor call was answered by the w4s "
                  "simulator, not an LLM; the numbers exercise the pipeline, they are not "
                  "model measurements.", ""]
    lines += [
        f"Executor `{meta.get('executor', '')}`; W4S meta-agent `{meta.get('meta_agent', '')}`"
        f"; ADAS/AFlow meta model `{meta.get('search_meta_agent', '')}`; test items per "
        f"benchmark: {meta.get('test_limit') or 'all'}; scoring: {meta.get('scoring', '')}.",
        "",
        "Each cell: test metric in % (accuracy; F1 for DROP; pass@1 for code) ± half the 95% "
        "bootstrap interval over test items; below it the executor dollars and wall time of "
        "that method on that benchmark (search + the one test evaluation). † marks the best "
        "method other than W4S in each column; the last row is W4S's gain over it in points. "
        "Every method chose its workflow on validation only and was tested once.",
        "",
        "| method | " + " | ".join(benches) + " |",
        "| --- |" + " --- |" * len(benches),
    ]
    for m in methods:
        cells = [_fmt_cell(data["cells"][m][b], data["best_baseline"][b] == m)
                 for b in benches]
        name = f"**{label(m)}**" if m == "w4s" else label(m)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if "w4s" in methods:
        gains = []
        for b in benches:
            g = data["w4s_gain"][b]
            gains.append("n/a" if g is None else f"{100 * g:+.1f} vs {label(data['best_baseline'][b])}")
        lines.append("| W4S gain over † | " + " | ".join(gains) + " |")
    lines += ["", "![the table as bars](sweep_table.png)", ""]
    return "\n".join(lines)


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benches, methods = data["benchmarks"], data["methods"]
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(benches) + 4.5), 4.5))
    width = 0.8 / max(1, len(methods))
    for k, m in enumerate(methods):
        xs, ys, errs = [], [], []
        for i, b in enumerate(benches):
            c = data["cells"][m][b]
            xs.append(i + (k - (len(methods) - 1) / 2) * width)
            ys.append(100 * c["test"] if c["test"] is not None else 0.0)
            lo_hi = c.get("ci") or [c["test"] or 0.0] * 2
            errs.append([max(0.0, ys[-1] - 100 * lo_hi[0]), max(0.0, 100 * lo_hi[1] - ys[-1])])
        ax.bar(xs, ys, width, label=label(m), yerr=list(zip(*errs, strict=True)), capsize=2,
               hatch="//" if m == "w4s" else None)
    ax.set_xticks(range(len(benches)), benches)
    ax.set(ylabel="test metric (%)", ylim=(0, 105),
           title="Test metric per method (95% bootstrap CI)"
           + (" — simulated executor" if data["meta"].get("simulated") else ""))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write_table(root: str | Path, benchmarks: Sequence[str], methods: Sequence[str]) -> Path:
    """(Re)write sweep_table.md/.png/.json under `root`; returns the markdown's path."""
    root = Path(root)
    data = collect(root, benchmarks, methods)
    atomic_write_text(root / "sweep_table.json", json.dumps(data, indent=1, default=str))
    atomic_write_text(root / "sweep_table.md", render(data))
    plot(data, root / "sweep_table.png")
    return root / "sweep_table.md"
