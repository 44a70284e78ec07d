"""CPU-seconds of every process below this one, by kind: what a sweep's platform costs.

`TreeCpu` samples /proc every `interval_s` for the descendants of this process (a Ray instance
started here: GCS, raylet, workers, actors, their sandbox children; a simulator started here)
and keeps each one's last CPU time (user + system, its reaped children included). A process
that lived shorter than one interval is still counted, through its parent's reaped-children
time; a child seen alive and later reaped is subtracted from that parent's, so nothing counts
twice. `mark()` returns the per-kind totals so far; the difference of two marks is the CPU one
phase of a bench cost. Linux only (/proc). The sampler itself runs in this process, which is
never counted (callers time their own thread with `time.thread_time`).

Kinds (`kind_of`): benchmark loops (a `sweep.task_host` host, or the Ray task of one
benchmark: a worker that once ran one stays in this kind after it turns `ray::IDLE`), evaluator
actors, sandbox children (workflow, judge, runner, execute, bubblewrap), the pool host and rate
limiter actors, the simulator (the executor's stand-in: not platform), idle Ray workers, and
the Ray system processes (GCS, raylet, dashboard, agents).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

CLK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def kind_of(names: set[str]) -> str:
    """The kind of a process from every command line it was seen with."""
    text = " ".join(names)
    # First: a child seen between fork and exec still shows its parent's command line.
    if "sandbox/children/" in text or any(n.split(" ")[0].endswith("bwrap") for n in names):
        return "sandbox_children"
    if "_BenchmarkHost" in text or "_run_one_benchmark" in text:
        return "benchmark_loops"
    if "EvaluatorActor" in text:
        return "evaluator_actors"
    if "ObjectHost" in text or "RateLimiterActor" in text:
        return "pool_host_and_limiter"
    if "w4s_ray.executor.sim" in text:
        return "simulator"
    if "ray::IDLE" in text:
        return "idle_ray_workers"
    return "ray_system"


@dataclass
class _Proc:
    ppid: int
    self_s: float = 0.0
    children_s: float = 0.0  # reaped children's CPU
    names: set[str] = field(default_factory=set)
    alive: bool = True


def _read(pid: int) -> tuple[int, float, float, str] | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            s = fh.read()
        rest = s[s.rindex(")") + 2:].split()
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmd = fh.read(300).replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except (OSError, ValueError):
        return None
    u, st, cu, cs = (int(x) for x in rest[11:15])
    return int(rest[1]), (u + st) / CLK, (cu + cs) / CLK, cmd


class TreeCpu:
    def __init__(self, interval_s: float = 0.5) -> None:
        self.root = os.getpid()
        self.interval_s = interval_s
        self.procs: dict[int, _Proc] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="tree-cpu")

    def __enter__(self) -> TreeCpu:
        self._scan()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._scan()

    def _scan(self) -> None:
        table: dict[int, tuple[int, float, float, str]] = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                row = _read(int(name))
                if row is not None:
                    table[int(name)] = row
        kids: dict[int, list[int]] = {}
        for pid, row in table.items():
            kids.setdefault(row[0], []).append(pid)
        tree, todo = set(), [self.root]
        while todo:
            for k in kids.get(todo.pop(), []):
                if k not in tree:
                    tree.add(k)
                    todo.append(k)
        with self._lock:
            for pid, p in self.procs.items():
                if p.alive and pid not in tree:
                    p.alive = False
            for pid in tree:
                ppid, self_s, child_s, cmd = table[pid]
                p = self.procs.get(pid)
                if p is None or not p.alive:  # new, or a recycled pid
                    p = self.procs[pid] = _Proc(ppid)
                p.self_s, p.children_s = max(p.self_s, self_s), max(p.children_s, child_s)
                if cmd:
                    p.names.add(cmd)

    def mark(self) -> dict[str, float]:
        """CPU-seconds so far per kind (plus "processes_<kind>": how many were seen)."""
        self._scan()
        with self._lock:
            reaped: dict[int, float] = {}
            for p in self.procs.values():
                if not p.alive:
                    reaped[p.ppid] = reaped.get(p.ppid, 0.0) + p.self_s + p.children_s
            out: dict[str, float] = {}
            for pid, p in self.procs.items():
                k = kind_of(p.names)
                own = p.self_s + max(0.0, p.children_s - reaped.get(pid, 0.0))
                out[k] = out.get(k, 0.0) + own
                out[f"processes_{k}"] = out.get(f"processes_{k}", 0) + 1
        return out


def diff(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: round(v - before.get(k, 0.0), 3) for k, v in after.items()}


def now() -> float:
    return time.monotonic()
