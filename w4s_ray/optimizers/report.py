"""report.md and curve.png of an ADAS/AFlow run directory, from its files only (no Ray).

One row per step (ADAS: each initial archive entry and generation; AFlow: each round) with its
validation result, executor and meta dollars and wall time; the best-so-far validation curve
and cumulative executor dollars in curve.png. final.json, when present, adds the chosen
workflow's single test evaluation. Missing numbers show "n/a"; a budget or failure stop is
stated from status.json.
"""

from __future__ import annotations

import io
from pathlib import Path

from w4s_ray.rlao.report import executor_line
from w4s_ray.utils.io import atomic_write_bytes, atomic_write_text


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _cell(x) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")[:80]


def step_rows(records: list[dict]) -> list[dict]:
    """Per record: step label, what it is, validation accuracy (None: no entry), dollars."""
    from w4s_ray.optimizers.run import _step_cost

    out, best = [], None
    for r in records:
        usd, _ = _step_cost(r)
        meta = float((r.get("meta_usage") or {}).get("cost_usd") or 0.0)
        if r["type"] == "initial":
            label, what, acc = f"initial {r['index']}", r["name"], r.get("accuracy")
            note = r.get("fitness") or ""
        elif r["type"] == "generation":
            label = f"generation {r['generation']}"
            sol = r.get("solution") or r.get("last_solution") or {}
            what, acc = sol.get("name", ""), r.get("accuracy") if r["status"] == "added" else None
            note = r.get("fitness") or f"failed: {r.get('reason')}"
        elif r["type"] == "round":
            label = f"round {r['round']}"
            what = r.get("modification") or ""
            acc = r.get("score")
            note = f"parent {r.get('parent')}; runs " + ", ".join(
                f"{s:.2f}" for s in r.get("scores") or [])
        else:
            label, what, acc = f"round {r['round']}", "skipped", None
            note = f"{len(r.get('rejections') or [])} rejected replies"
        if acc is not None:
            best = acc if best is None else max(best, acc)
        out.append({"step": label, "what": what, "valid": acc, "best": best, "usd": usd,
                    "meta_usd": meta, "wall_s": r.get("wall_s"), "note": note})
    return out


def render(rd, records: list[dict], final: dict | None, status: dict, cost: dict | None,
           executor: dict | None) -> str:
    method = (final or {}).get("method") or _method_of(records)
    sim = " (simulated executor)" if (executor or {}).get("simulated") else ""
    lines = [f"# {method.upper()} run{sim}", "", executor_line(executor), ""]
    st = status.get("status")
    if st in ("budget", "failed"):
        lines += [f"**Stopped ({st})**: {status.get('error')}. `w4s optimize --method {method} "
                  "--resume` continues from the last completed step.", ""]
    if final:
        lo_hi = final.get("test_ci")
        ci = f" (95% CI {_pct(lo_hi[0])}–{_pct(lo_hi[1])})" if lo_hi else ""
        lines += [f"Chosen on validation: **{_cell(final['best'])}** (validation "
                  f"{_pct(final['valid_accuracy'])}%), evaluated once on test: "
                  f"**{_pct(final['test_accuracy'])}%**{ci} on {final.get('test_n')} items"
                  f"{'; error: ' + final['test_error'] if final.get('test_error') else ''}. "
                  f"Executor ${final['dollars']:.4f} (search ${final['search_usd']:.4f}, test "
                  f"${final['test_usd']:.4f}); meta model ${final.get('meta_usd') or 0:.4f}; "
                  f"wall {final['wall_s']:.1f} s.", ""]
    elif cost:
        lines += [f"Executor ${cost['total_usd']:.4f} so far; no test evaluation yet.", ""]
    lines += ["| step | workflow / modification | validation % | best so far % | executor $ "
              "| meta $ | wall s | note |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in step_rows(records):
        wall = "n/a" if row["wall_s"] is None else f"{row['wall_s']:.1f}"
        lines.append(f"| {row['step']} | {_cell(row['what'])} | {_pct(row['valid'])} | "
                     f"{_pct(row['best'])} | {row['usd']:.4f} | {row['meta_usd']:.4f} | {wall} | "
                     f"{_cell(row['note'])} |")
    lines += ["", "![validation curve and dollars](curve.png)", ""]
    return "\n".join(lines)


def _method_of(records: list[dict]) -> str:
    return "adas" if records and records[0].get("type") == "initial" else "aflow"


def plot(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = step_rows(records)
    xs = list(range(1, len(rows) + 1))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(xs, [r["valid"] if r["valid"] is not None else float("nan") for r in rows],
             "o", label="step")
    ax1.plot(xs, [r["best"] if r["best"] is not None else float("nan") for r in rows],
             "-", label="best so far")
    ax1.set(xlabel="step", ylabel="validation accuracy", title="Validation", ylim=(0, 1.05))
    ax1.legend(fontsize=8)
    cum, total = [], 0.0
    for r in rows:
        total += r["usd"]
        cum.append(total)
    ax2.plot(xs, cum, "-o")
    ax2.set(xlabel="step", ylabel="executor $ (cumulative)", title="Dollars")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write_report(rd) -> Path:
    records = rd.read_records()
    final = rd.load_final(torn_ok=True)
    cost = None
    try:
        cost = rd.load_cost()
    except Exception:  # noqa: BLE001 - derived; the report says n/a
        cost = None
    text = render(rd, records, final if isinstance(final, dict) else None, rd.load_status(),
                  cost, rd.load_executor())
    atomic_write_text(rd.report, text)
    plot(records, rd.curve)
    return rd.report
