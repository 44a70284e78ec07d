"""`make bench`: run every bench/bench_*.py, print one table of figures, write results.json.

Each script runs in its own child process (`python run_all.py --child <script>`): the child
imports the script, calls `run(**budget)` and writes the rows as JSON. So one script's crash,
hang (per-script timeout, the child's whole process group is killed) or leftover imports never
touch another's figures, and driver memory figures are the script's own. A script that fails
becomes one row carrying its error. Scripts run one after another, never side by side: the
figures are ratios measured inside one script, and two scripts at once would load each other.

Output: the table (value, target, pass/miss) on stdout, and `results.json` — machine
description, timestamp, and one entry per figure (name, value, target, unit, params, what
limits it when the script says, plus the module, when it was measured and the load average) —
plus `results.md`, `results.png` and the results section of docs/PERFORMANCE.md
(`perf_doc.py`: every figure with its target, value and what limits it), each written
whole-or-nothing (write-then-rename). `--only` re-measures those scripts and keeps every other
script's entries from the existing results.json (each entry says when it was measured);
`--render` only regenerates the md, png and doc from results.json.

    python bench/run_all.py [--only executor,eval] [--out bench/results.json] [--full]
    python bench/run_all.py --render

`BUDGET` sizes each script so the whole run fits in ~15 minutes on a 2-core box; `--full`
runs every script with its own defaults instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

import common  # noqa: E402
import perf_doc  # noqa: E402

from w4s_ray.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text  # noqa: E402

# Keyword arguments per script for the default (time-boxed) run, and a timeout per script.
BUDGET: dict[str, dict[str, Any]] = {
    "bench_executor": {"n": 640, "concurrency": 64, "latency_ms": 500.0},
    "bench_eval": {"latency_ms": 1000.0, "concurrency": [16, 64, 256]},
    "bench_p2_official": {"latency_ms": 2000.0, "items": 64, "evaluators": 4},
    "bench_memory": {},
    "bench_scaling": {},
    "bench_racing": {"items": 64, "candidates": 5},
    "bench_train": {"steps": 2},
    "bench_train_memory": {},
    "bench_sweep": {"latency_ms": 1500.0},
    "bench_dryrun": {"limit": 10},
    "bench_serve": {"window_s": 30.0},
    "bench_ratelimit": {},  # per-minute limits over 60 s windows (bench_ratelimit.run)
}
TIMEOUT_S: dict[str, float] = {"bench_sweep": 720.0, "bench_eval": 300.0, "bench_dryrun": 900.0,
                               "bench_serve": 900.0, "bench_ratelimit": 1200.0,
                               "bench_train": 900.0, "bench_train_memory": 600.0}
PERFORMANCE_DOC = BENCH_DIR.parent / "docs" / "PERFORMANCE.md"
DEFAULT_TIMEOUT_S = 240.0


def discover(bench_dir: Path) -> list[Path]:
    return sorted(p for p in bench_dir.glob("bench_*.py") if p.is_file())


def error_row(module: str, message: str) -> dict[str, Any]:
    line = " ".join(str(message).split())[:500] or "failed"
    return {"name": module, "value": None, "target": None, "unit": "", "params": {},
            "error": line}


def check_rows(module: str, rows: Any) -> list[dict[str, Any]]:
    """The rows a script returned, or one error row saying what is wrong with them."""
    if not isinstance(rows, list) or not rows:
        return [error_row(module, f"run() returned {type(rows).__name__}, not a non-empty list")]
    out = []
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            out.append(error_row(module, f"row {i} is a {type(r).__name__}, not a dict"))
            continue
        missing = [k for k in common.ROW_KEYS if k not in r]
        if missing:
            out.append(error_row(f"{module}:{r.get('name', i)}", f"row missing key(s) {missing}"))
            continue
        out.append(r)
    return out


def _child(script: str, kwargs_json: str, out_path: str) -> int:
    """Inside the child: import the script, call run(**kwargs), write rows (or the error)."""
    path = Path(script)
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path}")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = mod
        spec.loader.exec_module(mod)
        if not callable(getattr(mod, "run", None)):
            raise AttributeError(f"{path.name} has no run()")
        payload: dict[str, Any] = {"rows": mod.run(**json.loads(kwargs_json))}
    except BaseException as exc:  # noqa: BLE001 - reported as the script's error row
        payload = {"error": f"{type(exc).__name__}: {exc}"}
    atomic_write_text(out_path, json.dumps(payload, default=str))
    return 0


def run_script(script: Path, kwargs: dict[str, Any], timeout_s: float,
               log_dir: Path | None = None) -> tuple[list[dict], float]:
    """Run one script in a child process group; (rows or an error row, seconds).

    The child's output goes to `log_dir/<script>.log` when given (the place to look when a
    figure is an error)."""
    module = script.stem
    with tempfile.TemporaryDirectory(prefix="w4s-bench-") as tmp:
        out = Path(tmp) / "rows.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(script),
               "--kwargs", json.dumps(kwargs), "--child-out", str(out)]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            log, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            log, _ = proc.communicate()
            _save_log(log_dir, module, log)
            return [error_row(module, f"timed out after {timeout_s:.0f} s")], \
                time.perf_counter() - t0
        seconds = time.perf_counter() - t0
        _save_log(log_dir, module, log)
        if not out.exists():
            tail = (log or "").strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
            return [error_row(module, f"child died: {tail[0]}")], seconds
        payload = json.loads(out.read_text())
    if "error" in payload:
        return [error_row(module, payload["error"])], seconds
    return check_rows(module, payload.get("rows")), seconds


def _save_log(log_dir: Path | None, module: str, log: str | None) -> None:
    if log_dir is not None:
        atomic_write_text(log_dir / f"{module}.log", log or "")


def plot(entries: list[dict], path: Path) -> None:
    """Each targeted figure as value/target (pass: >=1 for '>=', <=1 for '<='), coloured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [e for e in entries if e.get("target") and isinstance(e.get("value"), (int, float))]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.2))
    names = [e["name"] for e in rows]
    ratios = [e["value"] / e["target"] for e in rows]
    colors = ["tab:green" if common.verdict(e) == "pass" else "tab:red" for e in rows]
    ax.barh(names, ratios, color=colors)
    ax.axvline(1.0, color="black", lw=1)
    ax.set_xlabel("value / target  (green: meets target; '>=' targets pass right of 1, "
                  "'<=' left of 1)")
    ax.invert_yaxis()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, tmp.read_bytes())
    tmp.unlink()


def run_all(bench_dir: Path, out: Path, only: list[str] | None = None,
            full: bool = False, budget: dict[str, dict] | None = None,
            timeouts: dict[str, float] | None = None, default_timeout_s: float = DEFAULT_TIMEOUT_S,
            progress: bool = True, doc: Path | None = None) -> dict[str, Any]:
    budget = BUDGET if budget is None else budget
    timeouts = TIMEOUT_S if timeouts is None else timeouts
    scripts = discover(bench_dir)
    if only:
        wanted = {f"bench_{n}" if not n.startswith("bench_") else n for n in only}
        scripts = [s for s in scripts if s.stem in wanted]
    started = dt.datetime.now(dt.UTC)
    entries: list[dict[str, Any]] = []
    modules: dict[str, Any] = {}
    for script in scripts:
        name = script.stem
        kwargs = {} if full else budget.get(name, {})
        if progress:
            print(f"[bench] {name} {json.dumps(kwargs)} ...", flush=True)
        rows, seconds = run_script(script, kwargs, timeouts.get(name, default_timeout_s),
                                   log_dir=out.parent / "logs")
        when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        load = [round(x, 2) for x in os.getloadavg()]
        for r in rows:
            entries.append({**r, "module": name, "measured_at": when, "load_avg": load})
        err = next((r["error"] for r in rows if r.get("error")), None)
        modules[name] = {"seconds": round(seconds, 1), "kwargs": kwargs, "error": err}
        if progress:
            print(f"[bench] {name}: {len(rows)} figure(s) in {seconds:.0f} s"
                  + (f" - ERROR {err}" if err else ""), flush=True)
    if only and out.exists():  # keep what the other scripts measured before
        old = json.loads(out.read_text())
        ran = set(modules)
        entries = [e for e in old.get("entries", []) if e.get("module") not in ran] + entries
        modules = {**{k: v for k, v in old.get("modules", {}).items() if k not in ran},
                   **modules}
    result = {
        "timestamp": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": common.machine(),
        "modules": modules,
        "entries": entries,
    }
    atomic_write_json(out, result)
    write_reports(out, result, doc)
    return result


def write_reports(out: Path, result: dict[str, Any], doc: Path | None) -> None:
    """results.md, results.png and the doc's results section, from `result`."""
    entries = result["entries"]
    table = common.markdown_table(entries)
    m = result["machine"]
    header = (f"Measured {result['timestamp']} on {m['nproc']} cores ({m['cpu_model']}), "
              f"{m['ram_gib']} GiB, Python {m['python']}; load average at the end "
              f"{m['load_avg']}.\n\n")
    atomic_write_text(out.with_suffix(".md"), header + table + "\n")
    try:
        plot(entries, out.with_suffix(".png"))
    except Exception as exc:  # noqa: BLE001 - a missing plot must not lose the figures
        print(f"[bench] plot failed: {exc}", file=sys.stderr)
    if doc is not None:
        atomic_write_text(doc, perf_doc.update(doc, result))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated script names (executor,eval,...)")
    ap.add_argument("--out", default=str(BENCH_DIR / "results.json"))
    ap.add_argument("--bench-dir", default=str(BENCH_DIR))
    ap.add_argument("--full", action="store_true", help="each script's own default sizes")
    ap.add_argument("--render", action="store_true",
                    help="only regenerate results.md/png and docs/PERFORMANCE.md from --out")
    ap.add_argument("--doc", default=str(PERFORMANCE_DOC),
                    help="the doc whose results section is regenerated ('' for none)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--kwargs", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        return _child(a.child, a.kwargs, a.child_out)
    from w4s_ray.env import apply_offline_defaults

    apply_offline_defaults()
    doc = Path(a.doc) if a.doc else None
    if a.render:
        write_reports(Path(a.out), json.loads(Path(a.out).read_text()), doc)
        print(f"regenerated from {a.out}" + (f" (and {doc})" if doc else ""))
        return 0
    t0 = time.perf_counter()
    result = run_all(Path(a.bench_dir), Path(a.out),
                     only=a.only.split(",") if a.only else None, full=a.full, doc=doc)
    print()
    print(common.markdown_table(result["entries"]))
    print(f"\n{len(result['entries'])} figures in {time.perf_counter() - t0:.0f} s; "
          f"written to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
