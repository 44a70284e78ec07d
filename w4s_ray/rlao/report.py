"""Markdown tables and PNG plots for a run directory (`w4s report RUN_DIR`).

Reads only files: the trajectory rows (the truth), `seeds/*.json`, `metrics.jsonl` (wall
times), `cost.json` and, for optimize runs, `final.json`. Writes `report.md` and `curve.png`
(validation accuracy and cumulative dollars per turn, one line per episode) with matplotlib's
Agg backend. Regenerating is idempotent and safe while nothing else writes the directory.

What it does not do: evaluate anything, or show numbers it cannot find (missing files give
"n/a", not zeros).
"""

from __future__ import annotations

import json
from pathlib import Path

from w4s_ray.errors import DataError
from w4s_ray.rlao import trajectories as traj
from w4s_ray.rlao.runs import valid_seed_records
from w4s_ray.utils.io import atomic_write_bytes, atomic_write_text


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _load_json(path: Path):
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise DataError(f"{path}: not valid JSON") from None


def turn_table(rows: list[dict], seeds: dict[str, list[dict]], walls: dict) -> list[dict]:
    """Per (episode, turn): valid count, best/mean valid accuracy, best so far, calls, dollars."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["episode_id"], r["turn"]), []).append(r)
    best_so_far: dict[str, float] = {}
    cum_usd: dict[str, float] = {}
    out = []
    for (eid, turn) in sorted(groups):
        grp = groups[(eid, turn)]
        bench = grp[0]["benchmark"]
        if eid not in best_so_far:
            seed_accs = [s["val_accuracy"] for s in seeds.get(bench, [])]
            best_so_far[eid] = max(seed_accs) if seed_accs else 0.0
            cum_usd[eid] = sum(s.get("cost_usd", 0.0) for s in seeds.get(bench, []))
        full = [r["val_accuracy"] for r in grp if r["valid"] and not r["racing_stopped"]]
        accs = [r["val_accuracy"] for r in grp if r["valid"]]
        if full:
            best_so_far[eid] = max(best_so_far[eid], max(full))
        usd = sum(r["cost_usd"] for r in grp)
        cum_usd[eid] += usd
        out.append({
            "episode_id": eid, "benchmark": bench, "turn": turn, "candidates": len(grp),
            "valid": len(accs), "best": max(full) if full else None,
            "mean": sum(accs) / len(accs) if accs else None, "best_so_far": best_so_far[eid],
            "mean_reward": sum(r["reward"] for r in grp) / len(grp),
            "calls": sum(r["eval_calls"] for r in grp), "usd": usd, "cum_usd": cum_usd[eid],
            "repairs": sum(r["repair_count"] for r in grp),
            "stopped": sum(bool(r["racing_stopped"]) for r in grp),
            "wall_s": walls.get((eid, turn)),
        })
    return out


def _markdown(run_dir: Path, table: list[dict], seeds, final, cost) -> str:
    lines = [f"# Run report: {run_dir.name}", ""]
    if final:
        lines += [
            f"Benchmark **{final['benchmark']}**: best workflow by validation accuracy is "
            f"`{final['best']}` (valid {_fmt(final['valid_accuracy'])}, test "
            f"{_fmt(final['test_accuracy'])} on {final.get('test_n', 'n/a')} items). "
            f"Executor dollars {_fmt(final.get('dollars'), 4)}, calls "
            f"{final.get('executor_calls', 'n/a')}, wall {_fmt(final.get('wall_s'), 1)} s.",
            "",
            "| workflow | valid accuracy | test accuracy |",
            "| --- | --- | --- |",
            f"| **optimized** ({final['best']}) | {_fmt(final['valid_accuracy'])} | "
            f"{_fmt(final['test_accuracy'])} |",
        ]
        for name, b in (final.get("seed_baselines") or {}).items():
            lines.append(f"| seed: {name} | {_fmt(b['valid_accuracy'])} | "
                         f"{_fmt(b.get('test_accuracy'))} |")
        lines += ["", "Seed test numbers are computed at the end for this report only; the "
                  "meta-agent only ever saw validation feedback.", ""]
    elif seeds:
        lines += ["| benchmark | seed workflow | valid accuracy |", "| --- | --- | --- |"]
        for bench, recs in sorted(seeds.items()):
            for s in recs:
                lines.append(f"| {bench} | {s['name']} | {_fmt(s['val_accuracy'])} |")
        lines.append("")
    if table:
        by_ep: dict[str, list[dict]] = {}
        for t in table:
            by_ep.setdefault(t["episode_id"], []).append(t)
        if len(by_ep) > 1:
            lines += ["## Episodes", "",
                      "| episode | turns | candidates | valid | best valid accuracy | "
                      "mean reward | calls | dollars |",
                      "| --- | --- | --- | --- | --- | --- | --- | --- |"]
            for eid, ts in sorted(by_ep.items()):
                n = sum(t["candidates"] for t in ts)
                lines.append(
                    f"| {eid} | {len(ts)} | {n} | {sum(t['valid'] for t in ts)} | "
                    f"{_fmt(ts[-1]['best_so_far'])} | "
                    f"{_fmt(sum(t['mean_reward'] * t['candidates'] for t in ts) / n)} | "
                    f"{sum(t['calls'] for t in ts)} | {_fmt(sum(t['usd'] for t in ts), 4)} |")
            lines.append("")
        lines += ["## Turns", "",
                  "| episode | turn | valid/cands | best valid acc | mean valid acc | best so far"
                  " | mean reward | repairs | raced out | calls | dollars | wall s |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for t in table:
            lines.append(
                f"| {t['episode_id']} | {t['turn']} | {t['valid']}/{t['candidates']} | "
                f"{_fmt(t['best'])} | {_fmt(t['mean'])} | {_fmt(t['best_so_far'])} | "
                f"{_fmt(t['mean_reward'])} | {t['repairs']} | {t['stopped']} | {t['calls']} | "
                f"{_fmt(t['usd'], 4)} | {_fmt(t['wall_s'], 1)} |")
        lines.append("")
    else:
        lines += ["No completed turns yet.", ""]
    if cost:
        lines += ["## Cost", "", "| part | dollars |", "| --- | --- |"]
        for key in ("seeds_usd", "candidates_usd", "test_usd", "total_usd"):
            if key in cost:
                lines.append(f"| {key[:-4]} | {_fmt(cost[key], 4)} |")
        lines.append("")
    lines += ["![validation accuracy and dollars per turn](curve.png)", ""]
    return "\n".join(lines)


def _plot(table: list[dict], path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    by_ep: dict[str, list[dict]] = {}
    for t in table:
        by_ep.setdefault(t["episode_id"], []).append(t)
    for eid, ts in sorted(by_ep.items()):
        turns = [t["turn"] for t in ts]
        line, = ax1.plot(turns, [t["best_so_far"] for t in ts], marker="o", label=f"{eid} best")
        ax1.plot(turns, [t["best"] if t["best"] is not None else float("nan") for t in ts],
                 linestyle="--", marker="x", color=line.get_color(), alpha=0.6,
                 label=f"{eid} turn best")
        ax2.plot(turns, [t["cum_usd"] for t in ts], marker="o", label=eid)
    ax1.set(xlabel="turn", ylabel="validation accuracy", title="Validation accuracy")
    ax2.set(xlabel="turn", ylabel="cumulative executor $", title="Dollars")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        if by_ep:
            ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write_report(run_dir: str | Path) -> Path:
    """(Re)generate report.md and curve.png for a run directory; returns report.md's path."""

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "is not a directory" if run_dir.exists() else "does not exist"
        raise DataError(f"run dir {run_dir} {what}")
    if not (run_dir / "config.yaml").exists() and not traj.part_files(run_dir / "trajectories"):
        raise DataError(f"{run_dir} is not a w4s run directory (no config.yaml, no trajectories)")
    rows = traj.read_rows(run_dir / "trajectories")
    seeds = {}
    for p in sorted((run_dir / "seeds").glob("*.json")):
        seeds[p.stem] = _load_json(p)
        if not valid_seed_records(seeds[p.stem]):
            raise DataError(f"{p}: corrupt seed results (delete it to re-evaluate)")
    walls = {}
    metrics_path = run_dir / "metrics.jsonl"
    if metrics_path.exists():
        for line in metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                m = json.loads(line)
            except json.JSONDecodeError:
                continue
            walls[(m.get("episode_id"), m.get("turn"))] = m.get("wall_s")
    table = turn_table(rows, seeds, walls)
    final = _load_json(run_dir / "final.json")
    cost = _load_json(run_dir / "cost.json")
    report = run_dir / "report.md"
    atomic_write_text(report, _markdown(run_dir, table, seeds, final, cost))
    _plot(table, run_dir / "curve.png")
    return report
