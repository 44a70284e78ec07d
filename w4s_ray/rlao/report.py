"""Markdown tables and PNG plots for a run directory (`w4s report RUN_DIR`).

Reads only files, through `rlao.runs.RunDir`: the trajectory rows (the truth), `seeds/*.json`,
`metrics.jsonl` (wall times), `cost.json`, the executor record (which executor; a simulated one
is said so in the title and first line) and, for optimize runs, `final.json`. Dollars are shown
next to what the completion-cache hits would have cost. Writes `report.md` and `curve.png`
(validation accuracy and cumulative dollars per turn; an optimize run's one episode as is, a
collection's one line per benchmark: the mean over its episodes with a +-1 sd band) with
matplotlib's
Agg backend. Regenerating is idempotent and safe while nothing else writes the directory.

What it does not do: evaluate anything, or show numbers it cannot find (missing files give
"n/a", not zeros).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from w4s_ray.errors import DataError
from w4s_ray.rlao.loop import turn_metrics
from w4s_ray.rlao.runs import RunDir
from w4s_ray.utils.io import atomic_write_bytes, atomic_write_text


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def seed_turn(episode_id: str, benchmark: str, seeds: list[dict]) -> dict:
    """Turn 0 of an episode: its seed workflows on validation, in `turn_table`'s shape."""
    accs = [s["val_accuracy"] for s in seeds]
    usd = sum(s.get("cost_usd", 0.0) for s in seeds)
    return {"episode_id": episode_id, "benchmark": benchmark, "turn": 0, "seeds": True,
            "candidates": len(seeds), "valid": len(accs), "dropped": 0,
            "distinct": len(seeds),
            "best_val_accuracy": max(accs) if accs else None,
            "mean_val_accuracy": sum(accs) / len(accs) if accs else None, "chosen": None,
            "best_so_far": max(accs) if accs else 0.0, "mean_reward": None, "repairs": 0,
            "racing_stopped": 0, "calls": sum(s.get("calls", 0) for s in seeds),
            "cost_usd": usd, "cached_usd": sum(s.get("cached_usd") or 0.0 for s in seeds),
            "cum_usd": usd, "wall_s": None}


def turn_table(rows: list[dict], seeds: dict[str, list[dict]],
               walls: dict | None = None, *, with_seeds: bool = False) -> list[dict]:
    """Per (episode, turn): `loop.turn_metrics` (the one per-turn aggregate) with best-so-far
    counted from the seed workflows on, plus cumulative dollars (seeds included) and the
    measured wall time. Turns are numbered from 1; `with_seeds` adds each episode's turn 0 (its
    seed workflows, `seed_turn`) before its first turn."""
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
            zero = seed_turn(eid, bench, seeds.get(bench, []))
            best_so_far[eid] = zero["best_so_far"]
            cum_usd[eid] = zero["cost_usd"]
            if with_seeds:
                out.append(zero)
        m = turn_metrics(grp, best_so_far[eid])
        if m["best_val_accuracy"] is not None:
            best_so_far[eid] = m["best_so_far"] = max(best_so_far[eid], m["best_val_accuracy"])
        cum_usd[eid] += m["cost_usd"]
        m["cum_usd"] = cum_usd[eid]
        m["wall_s"] = (walls or {}).get((eid, turn))
        out.append(m)
    return out


def executor_line(info: dict | None) -> str:
    """One sentence on the run's executor; a simulated one is called that (docs/EXECUTOR.md)."""
    if not info:
        return ""
    priced = info.get("price_model")
    if info.get("simulated"):
        return (f"Executor: **simulated** (`{info.get('model')}` on the w4s simulator "
                f"{info.get('simulator') or ''} at {info.get('endpoint')}); its answers are a "
                f"statistical model's, not an LLM's, and dollars are what `{priced}` would charge "
                f"for the same tokens.")
    model = info.get("model")
    note = "" if priced in (model, str(model).split("/", 1)[-1]) else f", priced as `{priced}`"
    return f"Executor: `{model}` at {info.get('endpoint')} ({info.get('provider')}{note})."


def _scoring(rd: RunDir, final) -> str:
    """eval.scoring of the run: final.json, else config.yaml; older runs were lenient."""
    if final and final.get("scoring"):
        return final["scoring"]
    try:
        return str(rd.recorded_config()["eval"]["scoring"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return "lenient (run predates eval.scoring)"


def _protocol(rd: RunDir, final) -> str:
    """rlao.protocol of the run: final.json, else config.yaml; older runs used w4s-ray."""
    if final and final.get("protocol"):
        return final["protocol"]
    try:
        return str(rd.recorded_config()["rlao"]["protocol"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return "w4s-ray (run predates rlao.protocol)"


def ci_text(ci: dict | None) -> str:
    """A bootstrap interval as "[lo, hi]" (fractions, 3 decimals), "n/a" when absent."""
    if not ci:
        return "n/a"
    return f"[{ci['low']:.3f}, {ci['high']:.3f}]"


def _pct_ci(value, ci) -> str:
    if value is None:
        return "n/a"
    if not ci:
        return f"{100 * value:.1f}"
    return f"{100 * value:.1f} ({100 * ci['low']:.1f}-{100 * ci['high']:.1f})"


def _opt(value, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:g}{unit}"


def paper_lines(final: dict) -> list[str]:
    """The paper's figures next to the measured ones (config `paper`), as a markdown table."""
    figures = final.get("paper") or []
    if not figures:
        return []
    measured = _pct_ci(final.get("test_accuracy"), final.get("test_ci95"))
    wall = final.get("wall_s")
    lines = ["## Paper vs measured", "",
             "| benchmark | metric | paper | measured (95% CI) | paper executor | paper wall | "
             "measured wall | paper $ | measured $ |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for f in figures:
        lines.append(
            f"| {f['benchmark']} | {f.get('metric', 'accuracy')} | {f['value']:.1f} | "
            f"{measured} | {f.get('executor') or 'n/a'} | {_opt(f.get('wall_min'), ' min')} | "
            f"{'n/a' if wall is None else f'{wall / 60:.1f} min'} | {_opt(f.get('dollars'))} | "
            f"{_fmt(final.get('dollars'), 2)} |")
    lines += ["", "Paper figures are the authors' (their executor, meta-agent and splits); "
              "measured ones are this run's, on the test items named above (percent).", ""]
    return lines


def _markdown(rd: RunDir, table: list[dict], seeds, final, cost, executor=None) -> str:
    run_dir = rd.path
    sim = " (simulated executor)" if (executor or {}).get("simulated") else ""
    lines = [f"# Run report: {run_dir.name}{sim}", "",
             f"Scoring: {_scoring(rd, final)} (`eval.scoring`, docs/BENCHMARKS.md). "
             f"Protocol: {_protocol(rd, final)} (`rlao.protocol`, docs/FIDELITY.md).", ""]
    if executor:
        lines += [executor_line(executor), ""]
    if final:
        lines += [
            f"Benchmark **{final['benchmark']}**: best workflow by validation accuracy is "
            f"`{final['best']}` (valid {_fmt(final['valid_accuracy'])}, test "
            f"{_fmt(final['test_accuracy'])}, 95% CI {ci_text(final.get('test_ci95'))} on "
            f"{final.get('test_n', 'n/a')} items). "
            f"Executor dollars {_fmt(final.get('dollars'), 4)} (cache hits would have cost "
            f"{_fmt(final.get('cached_dollars'), 4)} more), calls "
            f"{final.get('executor_calls', 'n/a')}, wall {_fmt(final.get('wall_s'), 1)} s.",
            "",
            "| workflow | valid accuracy | test accuracy | test 95% CI |",
            "| --- | --- | --- | --- |",
            f"| **optimized** ({final['best']}) | {_fmt(final['valid_accuracy'])} | "
            f"{_fmt(final['test_accuracy'])} | {ci_text(final.get('test_ci95'))} |",
        ]
        for name, b in (final.get("seed_baselines") or {}).items():
            lines.append(f"| seed: {name} | {_fmt(b['valid_accuracy'])} | "
                         f"{_fmt(b.get('test_accuracy'))} | {ci_text(b.get('test_ci95'))} |")
        lines += ["", "Seed test numbers are computed at the end for this report only; the "
                  "meta-agent only ever saw validation feedback. Intervals: percentile "
                  "bootstrap of the mean item score (`rlao.bootstrap_samples` resamples).", ""]
        lines += paper_lines(final)
    elif seeds:
        lines += ["| benchmark | seed workflow | valid accuracy |", "| --- | --- | --- |"]
        for bench, recs in sorted(seeds.items()):
            for s in recs:
                lines.append(f"| {bench} | {s['name']} | {_fmt(s['val_accuracy'])} |")
        lines.append("")
    if table:
        by_ep: dict[str, list[dict]] = {}
        for t in table:
            if not t.get("seeds"):
                by_ep.setdefault(t["episode_id"], []).append(t)
        if len(by_ep) > 1:
            lines += ["## Episodes", "",
                      "| episode | turns | candidates | valid | dropped | best valid accuracy | "
                      "mean reward | calls | dollars |",
                      "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
            for eid, ts in sorted(by_ep.items()):
                n = sum(t["candidates"] for t in ts)
                rewarded = [(t["mean_reward"], t["candidates"] - t.get("dropped", 0))
                            for t in ts if t["mean_reward"] is not None]
                weight = sum(k for _, k in rewarded)
                mean_reward = sum(r * k for r, k in rewarded) / weight if weight else None
                lines.append(
                    f"| {eid} | {len(ts)} | {n} | {sum(t['valid'] for t in ts)} | "
                    f"{sum(t.get('dropped', 0) for t in ts)} | "
                    f"{_fmt(ts[-1]['best_so_far'])} | {_fmt(mean_reward)} | "
                    f"{sum(t['calls'] for t in ts)} | {_fmt(sum(t['cost_usd'] for t in ts), 4)} |")
            lines.append("")
        lines += ["## Turns", "",
                  "Turn 0 is the seed workflows on validation (candidates: the seeds); the "
                  "meta-agent's turns are 1, 2, ... as in the trajectory rows, metrics.jsonl and "
                  "the plot. Dollars of turn 0 are the seed evaluations'.", "",
                  "Distinct: different programs among the turn's candidates (comments, "
                  "formatting and docstrings ignored; `rlao.redraw_repeats` draws repeats "
                  "again).", "",
                  "| episode | turn | valid/cands | distinct | dropped | best valid acc | "
                  "mean valid acc | best so far | mean reward | repairs | raced out | calls | "
                  "dollars | cache hits' $ | wall s |",
                  "|" + " --- |" * 15]
        for t in table:
            lines.append(
                f"| {t['episode_id']} | {'0 (seeds)' if t.get('seeds') else t['turn']} | "
                f"{t['valid']}/{t['candidates']} | {t.get('distinct', '')} | "
                f"{t.get('dropped', 0)} | "
                f"{_fmt(t['best_val_accuracy'])} | {_fmt(t['mean_val_accuracy'])} | "
                f"{_fmt(t['best_so_far'])} | {_fmt(t['mean_reward'])} | {t['repairs']} | "
                f"{t['racing_stopped']} | {t['calls']} | {_fmt(t['cost_usd'], 4)} | "
                f"{_fmt(t['cached_usd'], 4)} | {_fmt(t['wall_s'], 1)} |")
        lines.append("")
    else:
        lines += ["No completed turns yet.", ""]
    if cost:
        lines += ["## Cost", "", "| part | dollars |", "| --- | --- |"]
        for key in ("seeds_usd", "candidates_usd", "test_usd", "total_usd"):
            if key in cost:
                lines.append(f"| {key[:-4]} | {_fmt(cost[key], 4)} |")
        if "cached_usd" in cost:
            lines.append(f"| cache hits would have cost (not spent) | "
                         f"{_fmt(cost['cached_usd'], 4)} |")
        lines.append("")
    lines += ["![validation accuracy and dollars per turn](curve.png)", ""]
    return "\n".join(lines)


def curve_figure(table: list[dict]):
    """Validation accuracy and cumulative dollars per turn (integer turn ticks, turn 0 = the
    seed workflows when `table` has them; the dollars panel also shows what cache hits would
    have cost, when there were any)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    # A bare Figure, not pyplot's: no global figure registry, so sweep benchmarks running on
    # threads of one process (sweep.task_host) can draw at the same time.
    fig = Figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    by_ep: dict[str, list[dict]] = {}
    for t in table:
        by_ep.setdefault(t["episode_id"], []).append(t)
    for eid, ts in sorted(by_ep.items()):
        turns = [t["turn"] for t in ts]
        line, = ax1.plot(turns, [t["best_so_far"] for t in ts], marker="o", label=f"{eid} best")
        ax1.plot(turns, [t["best_val_accuracy"] if t["best_val_accuracy"] is not None
                         else float("nan") for t in ts],
                 linestyle="--", marker="x", color=line.get_color(), alpha=0.6,
                 label=f"{eid} turn best")
        spent, = ax2.plot(turns, [t["cum_usd"] for t in ts], marker="o", label=f"{eid} spent")
        cached, would = 0.0, []
        for t in ts:
            cached += t.get("cached_usd") or 0.0
            would.append(t["cum_usd"] + cached)
        if cached > 0:  # a cache-served run shows what it would have cost, not a flat $0
            ax2.plot(turns, would, linestyle="--", color=spent.get_color(), alpha=0.6,
                     label=f"{eid} would have cost without the cache")
    ax1.set(xlabel="turn (0 = seed workflows)", ylabel="validation accuracy", title="Validation accuracy",
            ylim=(-0.02, 1.02))
    ax2.set(xlabel="turn (0 = seed workflows)", ylabel="cumulative executor $", title="Dollars")
    ax2.set_ylim(bottom=0)
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if by_ep:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def collect_figure(table: list[dict]):
    """A collection's curve: one line per BENCHMARK, the mean over its episodes of best-so-far
    validation accuracy and of cumulative dollars per turn, with a band of +-1 standard
    deviation over the episodes (clipped to [0, 1] for accuracy); turn 0 = the seeds."""
    import statistics

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    series: dict[str, dict[int, dict[str, list[float]]]] = {}
    episodes: dict[str, set[str]] = {}
    for t in table:
        cell = series.setdefault(t["benchmark"], {}).setdefault(t["turn"], {"acc": [], "usd": []})
        cell["acc"].append(t["best_so_far"])
        cell["usd"].append(t["cum_usd"])
        episodes.setdefault(t["benchmark"], set()).add(t["episode_id"])
    # A bare Figure, not pyplot's: no global figure registry, so sweep benchmarks running on
    # threads of one process (sweep.task_host) can draw at the same time.
    fig = Figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    for bench, by_turn in sorted(series.items()):
        turns = sorted(by_turn)
        n = len(episodes[bench])
        for ax, key, clip in ((ax1, "acc", (0.0, 1.0)), (ax2, "usd", (0.0, None))):
            mean = [statistics.fmean(by_turn[k][key]) for k in turns]
            sd = [statistics.pstdev(by_turn[k][key]) for k in turns]
            line, = ax.plot(turns, mean, marker="o", markersize=3,
                            label=f"{bench} (mean of {n} episode{'s' if n > 1 else ''})")
            if n > 1:
                lo = [max(clip[0], m - s) for m, s in zip(mean, sd, strict=True)]
                hi = [min(clip[1], m + s) if clip[1] is not None else m + s
                      for m, s in zip(mean, sd, strict=True)]
                ax.fill_between(turns, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    ax1.set(xlabel="turn (0 = seed workflows)", ylabel="best validation accuracy so far",
            title="Validation accuracy (mean +- 1 sd over episodes)", ylim=(-0.02, 1.02))
    ax2.set(xlabel="turn (0 = seed workflows)", ylabel="cumulative executor $ per episode",
            title="Dollars (mean +- 1 sd over episodes)")
    ax2.set_ylim(bottom=0)
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if series:  # one legend for both panels, beside the data rather than over it
        fig.legend(*ax1.get_legend_handles_labels(), loc="lower center", fontsize=7,
                   ncol=min(4, len(series)), frameon=False)
    fig.tight_layout(rect=(0, 0.06 + 0.04 * ((len(series) - 1) // 4), 1, 1))
    return fig


def _plot(table: list[dict], path: Path) -> None:
    import io

    several = len({t["episode_id"] for t in table}) > 1
    fig = collect_figure(table) if several else curve_figure(table)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())


def write_report(run_dir: str | Path) -> Path:
    """(Re)generate report.md and curve.png for a run directory; returns report.md's path."""
    rd = RunDir(run_dir)
    if not rd.path.is_dir():
        what = "is not a directory" if rd.path.exists() else "does not exist"
        raise DataError(f"run dir {rd.path} {what}")
    if not rd.has_run():
        raise DataError(f"{rd.path} is not a w4s run directory (no config.yaml, no trajectories)")
    rows = rd.read_rows()
    seeds = rd.all_seeds()
    table = turn_table(rows, seeds, rd.walls(), with_seeds=True)
    atomic_write_text(rd.report, _markdown(rd, table, seeds, rd.load_final(),
                                           rd.load_cost(), rd.load_executor()))
    _plot(table, rd.curve)
    return rd.report
