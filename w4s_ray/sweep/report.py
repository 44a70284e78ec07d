"""The aggregate sweep report: `sweep_report.md` plus PNG plots, from the files only (no Ray).

The main table has the shape of the W4S paper's: benchmarks as columns, methods as rows, the
test metric in percent (accuracy; F1 for DROP; pass@1 for HumanEval/MBPP). Method rows are the
seed-workflow baselines each benchmark carries (a benchmark without that seed shows "-") and
W4S (the best workflow by validation accuracy, evaluated once on test). Further rows give the
W4S validation accuracy, dollars (baselines, W4S, total, and what the completion-cache hits
would have cost) and wall time per benchmark; the last column sums dollars and wall time. A
sweep whose executor was the simulator says so in its title and first line. A failed benchmark shows FAILED in its column and a
`FAILED: <one line>` entry under "Failures".

Plots: `sweep_test.png` (test metric per benchmark per method), `sweep_valid.png` (best
validation accuracy so far per turn, one line per benchmark; turn 0 is the best seed) and
`sweep_cost.png` (dollars and wall time per benchmark).

Under the W4S row: its 95% bootstrap interval (final.json `test_ci95`) and, for a config that
states the paper's figures (`paper`), a "paper" row next to the measured one. Not done: numbers
that are not on disk (those show "n/a").
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from w4s_ray.rlao.report import turn_table
from w4s_ray.sweep.layout import SweepLayout
from w4s_ray.utils.io import atomic_write_bytes, atomic_write_text

METHOD_NAMES = {
    "cot": "CoT", "cot_sc": "CoT-SC", "code_generation": "Code generation (PoT)",
    "test_repair": "Test-driven repair", "cot_code": "CoT (code)", "cot_sc_code": "CoT-SC (code)",
}
W4S = "W4S (optimized)"


def method_label(name: str) -> str:
    return METHOD_NAMES.get(name, name)


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _usd(x) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def collect_results(layout: SweepLayout, benchmarks: Sequence[str]) -> dict[str, dict]:
    """Per benchmark: status, error, baselines, final, dollars, wall time, validation curve."""

    status = layout.load_status().get("benchmarks", {})
    out: dict[str, dict] = {}
    for b in benchmarks:
        rd = layout.bench(b)
        st = status.get(b, {})
        base = rd.load_baselines()
        final = rd.load_final()
        cost = rd.load_cost()
        seeds = rd.load_seeds(b) or []
        rows = rd.read_rows()
        table = turn_table(rows, {b: seeds})
        curve = []
        if seeds:
            curve.append((0, max(s["val_accuracy"] for s in seeds)))
        curve += [(t["turn"], t["best_so_far"]) for t in table]  # turns from 1; seeds: 0
        if cost is not None:
            w4s_usd = cost.get("total_usd")
            w4s_cached = cost.get("cached_usd")
        elif seeds or rows:  # stopped early: what the rows and seed records say was spent
            w4s_usd = sum(s.get("cost_usd", 0.0) for s in seeds) + sum(r["cost_usd"] for r in rows)
            w4s_cached = sum(s.get("cached_usd") or 0.0 for s in seeds) + \
                sum(r.get("cached_usd") or 0.0 for r in rows)
        else:
            w4s_usd = w4s_cached = None
        cached = [x for x in ((base or {}).get("cached_usd"), w4s_cached) if x is not None]
        base_usd = base.get("cost_usd") if base else None
        parts = [x for x in (base_usd, w4s_usd) if x is not None]
        walls = [x for x in ((base or {}).get("wall_s"), (final or {}).get("wall_s"))
                 if x is not None]
        state = st.get("status") or ("done" if final else "not run")
        out[b] = {
            "status": state, "error": st.get("error"),
            "baselines": {n: v.get("test_accuracy") for n, v in (
                (base or {}).get("baselines") or (final or {}).get("seed_baselines") or {}
            ).items()},
            "test_n": (final or {}).get("test_n"),
            "w4s_test": (final or {}).get("test_accuracy"),
            "w4s_ci": (final or {}).get("test_ci95"),
            "paper": {f["metric"]: f["value"] for f in (final or {}).get("paper") or []},
            "w4s_valid": (final or {}).get("valid_accuracy"),
            "w4s_best": (final or {}).get("best"),
            "turns": (final or {}).get("turns", len(table)),
            "baseline_usd": base_usd, "w4s_usd": w4s_usd,
            "usd": sum(parts) if parts else None,
            "cached_usd": sum(cached) if cached else None,
            "wall_s": st.get("wall_s") if st.get("wall_s") is not None else (
                sum(walls) if walls else None),
            "curve": curve,
        }
    return out


def method_order(results: dict[str, dict]) -> list[str]:
    seen: list[str] = []
    for r in results.values():
        for n in r["baselines"]:
            if n not in seen:
                seen.append(n)
    known = list(METHOD_NAMES)
    return sorted(seen, key=lambda n: (known.index(n) if n in known else len(known), n))


def render_markdown(results: dict[str, dict], meta: dict) -> str:
    benches = list(results)
    methods = method_order(results)
    failed = [b for b in benches if results[b]["status"] not in ("done",)]
    head = "| method | " + " | ".join(benches) + " | total |"
    sep = "| --- |" + " --- |" * (len(benches) + 1)
    sim = meta.get("simulated")
    lines = [f"# Sweep report: {meta.get('name', '')}{' (simulated executor)' if sim else ''}",
             ""]
    done = len(benches) - len(failed)
    if sim:
        info = meta.get("executor_info") or {}
        lines += [f"**Simulated executor**: the w4s simulator ({info.get('simulator', '')}) "
                  f"answered every call, not an LLM; dollars are what "
                  f"`{info.get('price_model', 'n/a')}` would charge for the same tokens.", ""]
    lines += [
        f"{done} of {len(benches)} benchmarks completed. Executor: `{meta.get('executor', '')}`; "
        f"meta-agent: `{meta.get('meta_agent', '')}`; {meta.get('turns', 'n/a')} turns x "
        f"{meta.get('candidates', 'n/a')} candidates; validation items per evaluation: "
        f"{meta.get('valid_limit') or 'all'}; test items: {meta.get('test_limit') or 'all'}; "
        f"scoring: {meta.get('scoring') or 'lenient (sweep predates eval.scoring)'}.",
        "",
        "## Test metric (%)",
        "",
        "Accuracy; F1 for DROP; pass@1 for HumanEval and MBPP. Baselines are the seed "
        "workflows evaluated on test for this table only; W4S is the workflow chosen on "
        "validation, evaluated once on test.",
        "",
        head, sep,
    ]

    def row(label: str, cell, total: str = "") -> str:
        cells = []
        for b in benches:
            r = results[b]
            cells.append("FAILED" if r["status"] != "done" and cell(r) == "n/a"
                         else cell(r))
        return f"| {label} | " + " | ".join(cells) + f" | {total} |"

    for m in methods:
        lines.append(row(method_label(m), lambda r, m=m: _pct(r["baselines"][m])
                         if m in r["baselines"] else "-"))
    lines.append(row(f"**{W4S}**", lambda r: f"**{_pct(r['w4s_test'])}**"
                     if r["w4s_test"] is not None else "n/a"))
    lines.append(row("W4S 95% CI", lambda r: "n/a" if not r.get("w4s_ci") else
                     f"{100 * r['w4s_ci']['low']:.1f}-{100 * r['w4s_ci']['high']:.1f}"))
    if any(r.get("paper") for r in results.values()):
        lines.append(row("paper (W4S, the authors' figure)", lambda r: " / ".join(
            f"{v:.1f}" for v in r["paper"].values()) if r.get("paper") else "-"))
        lines += ["", "The paper row is the authors' reported number (their executor, "
                  "meta-agent and splits; the config's `paper` field); the measured W4S row is "
                  "this sweep's."]
    lines += ["", "## Validation, dollars and wall time", "", head, sep]
    lines.append(row("W4S best validation (%)", lambda r: _pct(r["w4s_valid"])))
    lines.append(row("turns", lambda r: str(r["turns"]) if r["turns"] is not None else "n/a"))
    lines.append(row("test items", lambda r: str(r["test_n"]) if r["test_n"] else "n/a"))

    def total(key: str, fmt) -> str:
        vals = [results[b][key] for b in benches if results[b][key] is not None]
        return fmt(sum(vals)) if vals else "n/a"

    lines.append(row("dollars: baselines", lambda r: _usd(r["baseline_usd"]),
                     total("baseline_usd", _usd)))
    lines.append(row("dollars: W4S", lambda r: _usd(r["w4s_usd"]), total("w4s_usd", _usd)))
    lines.append(row("dollars: total", lambda r: _usd(r["usd"]), total("usd", _usd)))
    lines.append(row("cache hits would have cost", lambda r: _usd(r["cached_usd"]),
                     total("cached_usd", _usd)))
    wall_fmt = lambda x: "n/a" if x is None else f"{x:.1f}"  # noqa: E731
    lines.append(row("wall time (s)", lambda r: wall_fmt(r["wall_s"]),
                     total("wall_s", wall_fmt)))
    lines.append(row("status", lambda r: "ok" if r["status"] == "done" else "FAILED"))
    lines.append("")
    if meta.get("wall_s") is not None:
        lines += [f"Sweep wall time {meta['wall_s']:.1f} s (benchmarks ran in parallel; the "
                  "wall-time total above is their sum).", ""]
    if failed:
        lines += ["## Failures", ""]
        for b in failed:
            r = results[b]
            msg = r["error"] or ("not run" if r["status"] == "not run" else r["status"])
            lines.append(f"- {b}: FAILED: {_cell(msg)}")
        lines.append("")
    links = ", ".join(f"[{b}]({b}/report.md)" for b in benches if results[b]["status"] == "done")
    lines += ["## Plots", "", "![test metric per benchmark and method](sweep_test.png)", "",
              "![best validation accuracy per turn](sweep_valid.png)", "",
              "![dollars and wall time per benchmark](sweep_cost.png)", "",
              f"Per-benchmark reports: {links or 'none'}.", ""]
    return "\n".join(lines)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def plot(results: dict[str, dict], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    benches = list(results)
    methods = method_order(results)
    series = [(method_label(m), [results[b]["baselines"].get(m) for b in benches])
              for m in methods] + [(W4S, [results[b]["w4s_test"] for b in benches])]
    paths = []

    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(benches) + 2), 4))
    width = 0.8 / max(1, len(series))
    for k, (label, vals) in enumerate(series):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(benches))]
        ys = [100 * v if v is not None else 0.0 for v in vals]
        ax.bar(xs, ys, width, label=label)
    ax.set_xticks(range(len(benches)), benches, rotation=30, ha="right")
    ax.set(ylabel="test metric (%)", title="Test metric per benchmark", ylim=(0, 105))
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    paths.append(out_dir / "sweep_test.png")
    _save(fig, paths[-1])

    fig, ax = plt.subplots(figsize=(7, 4))
    for b in benches:
        curve = results[b]["curve"]
        if curve:
            ax.plot([c[0] for c in curve], [c[1] for c in curve], marker="o", label=b)
    ax.set(xlabel="turn (0 = best seed workflow)", ylabel="best validation accuracy so far",
           title="Validation curves")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if any(results[b]["curve"] for b in benches):
        ax.legend(fontsize=7, ncol=2)
    paths.append(out_dir / "sweep_valid.png")
    _save(fig, paths[-1])

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(8, 1.2 * len(benches) + 3), 4))
    xs = range(len(benches))
    ax1.bar(xs, [results[b]["baseline_usd"] or 0.0 for b in benches], label="baselines")
    ax1.bar(xs, [results[b]["w4s_usd"] or 0.0 for b in benches],
            bottom=[results[b]["baseline_usd"] or 0.0 for b in benches], label="W4S")
    ax1.set(ylabel="executor $", title="Dollars per benchmark")
    ax1.legend(fontsize=7)
    ax2.bar(xs, [results[b]["wall_s"] or 0.0 for b in benches], color="tab:gray")
    ax2.set(ylabel="seconds", title="Wall time per benchmark")
    for ax in (ax1, ax2):
        ax.set_xticks(list(xs), benches, rotation=30, ha="right")
        ax.grid(axis="y", alpha=0.3)
    paths.append(out_dir / "sweep_cost.png")
    _save(fig, paths[-1])
    return paths


def write_sweep_report(root: str | Path, benchmarks: Sequence[str], meta: dict | None = None
                       ) -> Path:
    """(Re)write sweep_report.md and the plots under `root`; returns the report's path."""
    layout = SweepLayout(root)
    meta = dict(layout.load_status().get("meta", {}), **(meta or {}))
    results = collect_results(layout, benchmarks)
    layout.root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(layout.report, render_markdown(results, meta))
    plot(results, layout.root)
    return layout.report
