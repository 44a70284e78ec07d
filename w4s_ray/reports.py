"""`w4s report DIR`: which stage wrote a directory, and its report written again from its files.

Kinds, recognised by the files each stage writes (first match wins):

    sweep     sweep.json or sweep_report.md    -> sweep_report.md, sweep_*.png
    compare   compare.json or samples.jsonl    -> compare.md, compare.png
    train     train_log.jsonl                  -> train_summary.md, loss.png
    search    records.jsonl (ADAS / AFlow)     -> report.md, curve.png
    optimize  config.yaml or trajectories/, final.json or one episode -> report.md, curve.png
    collect   the same, several episodes (workflows/ per episode)  -> report.md, curve.png

Nothing is evaluated or recomputed beyond aggregation: the reports read what the run wrote. Not
here: the demo's own report (it summarises its stages as they ran; regenerate a stage's report
with `w4s report runs/demo/<stage>`).
"""

from __future__ import annotations

import json
from pathlib import Path

from w4s_ray.errors import DataError

KINDS = ("optimize", "collect", "sweep", "train", "compare", "search")


def run_kind(path: str | Path) -> str:
    """The kind of run directory `path` is (module docstring); a DataError in one line if it is
    none, or does not exist."""
    p = Path(path)
    if not p.is_dir():
        what = "is not a directory" if p.exists() else "does not exist"
        raise DataError(f"run dir {p} {what}")
    if (p / "sweep.json").exists() or (p / "sweep_report.md").exists():
        return "sweep"
    if (p / "compare.json").exists() or (p / "samples.jsonl").exists():
        return "compare"
    if (p / "train_log.jsonl").exists():
        return "train"
    if (p / "records.jsonl").exists():
        return "search"
    from w4s_ray.rlao.runs import RunDir

    rd = RunDir(p)
    if rd.has_run():  # optimize writes final.json and keeps workflows/ flat; collect nests
        if rd.final.exists():
            return "optimize"
        nested = rd.workflows.is_dir() and any(d.is_dir() for d in rd.workflows.iterdir())
        several = len({r["episode_id"] for r in rd.read_rows()}) > 1
        return "collect" if nested or several else "optimize"
    raise DataError(f"{p} is not a w4s run directory (none of the files optimize, collect, "
                    "sweep, train or compare write)")


def write_report(path: str | Path) -> tuple[str, Path]:
    """Regenerate the report of the run directory at `path`: (kind, the report's path)."""
    p = Path(path)
    kind = run_kind(p)
    if kind == "sweep":
        from w4s_ray.sweep.layout import SweepLayout
        from w4s_ray.sweep.report import write_sweep_report

        status = SweepLayout(p).load_status().get("benchmarks") or {}
        names = list(status) or sorted(d.name for d in p.iterdir()
                                       if d.is_dir() and (d / "config.yaml").exists())
        return kind, write_sweep_report(p, names)
    if kind == "compare":
        return kind, _compare_report(p)
    if kind == "train":
        from w4s_ray.train.trainer import rewrite_reports

        return kind, rewrite_reports(p)
    if kind == "search":
        from w4s_ray.optimizers.report import write_report as write_search
        from w4s_ray.optimizers.run import SearchDir

        return kind, write_search(SearchDir(p))
    from w4s_ray.rlao.report import write_report as write_run

    return kind, write_run(p)


def _compare_report(p: Path) -> Path:
    from w4s_ray.rlao import policy_eval as pe
    from w4s_ray.runtime.policy_compare import _load_done
    from w4s_ray.utils.io import atomic_write_json, atomic_write_text

    summary = None
    if (p / "compare.json").exists():
        try:
            summary = json.loads((p / "compare.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            summary = None  # derived: rebuilt from the samples below
    if summary is None:  # stopped before the end: what the finished cells say
        settings = json.loads((p / "settings.json").read_text(encoding="utf-8")) \
            if (p / "settings.json").exists() else {}
        models = list(settings.get("models") or {})
        summary = pe.summarize(_load_done(p / "samples.jsonl"),
                               baseline=models[0] if models else None)
        summary["samples_per_cell"] = settings.get("samples")
        summary["settings"] = settings
        atomic_write_json(p / "compare.json", summary)
    settings = summary.get("settings") or {}
    atomic_write_text(p / "compare.md", pe.render_markdown(
        summary, samples_per_cell=summary.get("samples_per_cell") or settings.get("samples") or 0,
        models_desc=settings.get("models")))
    pe.plot(summary, p / "compare.png")
    return p / "compare.md"
