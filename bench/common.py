"""Shared helpers of the bench scripts: result rows, pass/miss, the machine, RSS sampling.

A bench script's `run()` returns a list of rows `{"name", "value", "target", "unit",
"params"}` (optionally `"direction"`: ">=" or "<="). `verdict(row)` decides pass/miss against
the target; `markdown_table(rows)` prints them. `machine()` describes the box a figure was
measured on (cores, RAM, CPU model, load, versions) so that a number is never read without its
context. `RssSampler` samples resident memory of processes (with their children) from a
thread. `fixed_sim(latency_ms)` starts the simulated executor with a fixed per-call latency.

Nothing here times anything by itself or asserts a speed: the figures are ratios the scripts
measure side by side in one run.
"""

from __future__ import annotations

import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
# Like the Makefile and tests: the shared benchmark data next to the checkout, unless set.
os.environ.setdefault("W4S_DATA_DIR", str(REPO.parent / "shared" / "datasets"))

ROW_KEYS = ("name", "value", "target", "unit", "params")


def quick() -> bool:
    """`W4S_BENCH_QUICK=1`: smaller sizes (what `make bench` uses to fit its time budget)."""
    return os.environ.get("W4S_BENCH_QUICK", "1") not in ("0", "", "false", "no")


def row(name: str, value: float | None, target: float | None, unit: str,
        params: dict[str, Any] | None = None, direction: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "value": value, "target": target, "unit": unit,
                           "params": dict(params or {})}
    if direction is not None:
        if direction not in (">=", "<="):
            raise ValueError(f"direction must be '>=' or '<=', got {direction!r}")
        out["direction"] = direction
    return out


def direction(r: dict[str, Any]) -> str:
    """'>=' when bigger is better, else '<='. Explicit `direction` wins; then the unit/name."""
    explicit = r.get("direction")
    if explicit in (">=", "<="):
        return explicit
    text = f"{r.get('unit', '')} {r.get('name', '')}".lower()
    if "lower is better" in text:
        return "<="
    if any(w in text for w in ("higher is better", "speedup", "fraction", "per_s", "/s",
                               "throughput")):
        return ">="
    if str(r.get("unit", "")).strip().lower().startswith("x"):
        return ">="
    return "<="


def verdict(r: dict[str, Any]) -> str:
    """'pass' | 'miss' | 'error' (no value) | '-' (informational: no target)."""
    if r.get("error"):
        return "error"
    value, target = r.get("value"), r.get("target")
    if target is None:
        return "-"
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "error"
    ok = value >= target if direction(r) == ">=" else value <= target
    return "pass" if ok else "miss"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
    return "-" if v is None else str(v)


def markdown_table(rows: Iterable[dict[str, Any]]) -> str:
    lines = ["| figure | value | target | result | unit |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        tgt = "-" if r.get("target") is None else f"{direction(r)} {_fmt(r['target'])}"
        value = _fmt(r.get("value")) if not r.get("error") else f"error: {r['error'][:80]}"
        lines.append(f"| {r.get('name')} | {value} | {tgt} | {verdict(r)} | {r.get('unit', '')} |")
    return "\n".join(lines)


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """The box and software a figure was measured on, and how loaded it was."""
    import psutil

    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {p: _version(p) for p in ("ray", "torch", "litellm", "openai", "transformers",
                                               "deepspeed", "pyarrow")},
    }


def tree_rss(pid: int) -> int:
    """Resident bytes of `pid` plus all its live descendants (0 if it is gone)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass  # a child that exited between the listing and the read
    return total


class RssSampler:
    """Samples resident memory of named processes from a daemon thread; keeps the peaks.

    `targets` maps a label to a pid; `children=True` counts each process with its descendants
    (an evaluator actor with its sandbox children). Use as a context manager; `peaks_mib`
    holds the peak per label and `samples` the number of samples taken.
    """

    def __init__(self, targets: dict[str, int], interval_s: float = 0.05,
                 children: bool = True) -> None:
        self.targets = dict(targets)
        self.interval_s = interval_s
        self.children = children
        self.peaks: dict[str, int] = {k: 0 for k in self.targets}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def _read(self, pid: int) -> int:
        if self.children:
            return tree_rss(pid)
        import psutil

        try:
            return psutil.Process(pid).memory_info().rss
        except psutil.Error:
            return 0

    def sample(self) -> None:
        for label, pid in self.targets.items():
            self.peaks[label] = max(self.peaks[label], self._read(pid))
        self.samples += 1

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    @property
    def peaks_mib(self) -> dict[str, float]:
        return {k: round(v / 2**20, 1) for k, v in self.peaks.items()}

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()


def fixed_sim(latency_ms: float, **sim_overrides: Any):
    """The simulator as a subprocess with a fixed per-call latency (a `SimHandle`)."""
    from w4s_ray.config import ExperimentConfig, SimConfig
    from w4s_ray.env import apply_offline_defaults
    from w4s_ray.executor.sim.launch import start_sim

    apply_offline_defaults()
    cfg = SimConfig(latency="fixed", latency_ms=latency_ms, **sim_overrides)
    return start_sim(cfg, ExperimentConfig().data_dir(), port=0)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def seed_requests(benchmarks: Iterable[str], seeds: Iterable[str], items: int,
                  split: str = "valid") -> list[Any]:
    """EvalRequests for the named seed workflows of each benchmark (tag "<bench>/<seed>")."""
    from w4s_ray.benchmarks import get_benchmark
    from w4s_ray.workflow.evaluate import EvalRequest

    reqs = []
    for name in benchmarks:
        code = get_benchmark(name).seed_workflows()
        for s in seeds:
            if s in code:
                reqs.append(EvalRequest(code=code[s], benchmark=name, split=split, limit=items,
                                        tag=f"{name}/{s}"))
    return reqs


NOOP_WORKFLOW = "def solver(agent, task):\n    return {'answer': ''}\n"


def warm_pool(pool: Any, benchmarks: Iterable[str]) -> None:
    """Every actor of an EvaluatorPool imports the runtime and loads each benchmark, so a
    timed batch does not pay one-time start-up costs (the baseline's are paid before too)."""
    from w4s_ray.workflow.evaluate import EvalRequest

    for name in benchmarks:
        # concurrent requests are spread least-loaded: one per actor
        pool.evaluate([EvalRequest(code=NOOP_WORKFLOW, benchmark=name, limit=1, tag="warm-up")
                       for _ in pool.actors])
