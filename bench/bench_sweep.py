"""Bench: an eleven-benchmark sweep run in parallel on Ray vs the same sweep run sequentially,
and the platform's CPU cost per benchmark and per candidate evaluation, with and without the
shared benchmark host.

Workload: `w4s sweep` over all eleven benchmarks (seed baselines on test, 1 W4S turn of 1
candidate from the scripted `seed-variants` meta-agent, final test evaluation; 2 validation
and 2 test items per evaluation; `rlao.protocol=w4s-ray`, so a turn whose one candidate scores
0 on two items does not stop a benchmark) on the simulator with a FIXED per-call latency,
completion cache off. Three runs in one Ray instance: all eleven at once on the new path
(`sweep.task_host=shared`: every benchmark's loop on a thread of one host process;
`data.node_cache=true`: each benchmark's splits built once for the machine, from an empty
cache; `executor.lazy_litellm=true`: evaluator actors price calls from litellm's bundled map
without importing litellm; `sweep.pool_host=auto`: the evaluator pool lives in that host, not
in an actor of its own), all eleven at once on the old path (`per_benchmark`: one Ray
task, so one worker process with its own imports, per benchmark, and the pool in an actor of
its own; `node_cache=false`: every evaluator actor builds every benchmark itself;
`lazy_litellm=false`: every evaluator actor imports litellm), and `sweep.max_parallel=1` (one at a time, new path).

Figures: sequential wall / parallel wall (target >= 8: the executor's latency dominates a
benchmark's work, so eleven benchmarks overlap almost perfectly on a machine whose CPUs are
not the bottleneck) for both paths; the CPU ceiling of each (sequential wall / (parallel
CPU-seconds / cores): a parallel run cannot finish before its CPU work does); its
critical-path ceiling (sequential wall / the slowest benchmark's own wall in the sequential
run: nor before its slowest benchmark does, however many cores); and the
platform's CPU-seconds per benchmark of each parallel run, by kind of process
(`bench/cpu_tree.py`: every process this bench started except the simulator, which stands in
for the remote API, plus the driver thread). CPU is counted per process tree, not
machine-wide, so other jobs on the box do not inflate it (they still slow the walls). Two more
parallel sweeps per path, with 4 candidates per turn and then with 1 again (both after the
first runs, so both start on warm Ray workers), give the platform's CPU-seconds per further
candidate evaluation (their difference over the 33 added evaluations).

    python bench/bench_sweep.py [--latency-ms 1000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cpu_tree  # noqa: E402  (bench/ is not a package)

MORE = 4  # candidates per turn of the second pair of parallel sweeps (per-candidate cost)
ELEVEN = ["mgsm", "gsm8k", "gsm_hard", "gsm_plus", "svamp", "math", "drop", "mmlu_pro", "gpqa",
          "humaneval", "mbpp"]


def _busy_cpu_s() -> float:
    """Machine-wide busy CPU seconds so far (/proc/stat: all but idle and iowait)."""
    import os

    with open("/proc/stat") as fh:
        f = [int(x) for x in fh.readline().split()[1:]]
    return (sum(f) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")


def _sweep(sim_url: str, root: Path, max_parallel: int | None, new_path: bool,
           tree, candidates: int = 1) -> dict:
    from w4s_ray.config import load_config
    from w4s_ray.runtime.sweep import run_sweep

    cfg = load_config(None, [
        f"run_dir={root}", "name=bench-sweep", f"executor.api_base={sim_url}",
        "executor.cache.enabled=false", "executor.timeout_s=120", "eval.num_evaluators=3",
        "eval.limit=2", "rlao.test_limit=2", "rlao.turns=1", f"rlao.candidates={candidates}",
        "rlao.max_repairs=0", "rlao.protocol=w4s-ray", "meta_agent.backend=scripted",
        "meta_agent.model=seed-variants",
        f"sweep.task_host={'shared' if new_path else 'per_benchmark'}",
        f"data.node_cache={'true' if new_path else 'false'}",
        f"executor.lazy_litellm={'true' if new_path else 'false'}",
        f"sweep.max_parallel={'null' if max_parallel is None else max_parallel}",
    ])
    m0, c0, d0, t0 = tree.mark(), _busy_cpu_s(), time.thread_time(), time.perf_counter()
    out = run_sweep(cfg, ELEVEN, progress=False)
    wall = time.perf_counter() - t0
    busy = _busy_cpu_s() - c0
    by_kind = cpu_tree.diff(tree.mark(), m0)
    by_kind["driver_thread"] = round(time.thread_time() - d0, 3)
    if out["failed"]:
        raise RuntimeError(f"bench sweep failed on {out['failed']}: "
                           f"{[out['status'][b]['error'] for b in out['failed']]}")
    cpu = {k: v for k, v in by_kind.items() if not k.startswith("processes_")}
    platform = sum(v for k, v in cpu.items() if k != "simulator")
    return {"wall": wall, "machine_busy": busy, "tree_cpu": sum(cpu.values()),
            "platform_cpu": platform, "by_kind": by_kind,
            # each benchmark's own wall inside the sweep (from its start to its result)
            "bench_walls": {b: out["status"][b]["wall_s"] for b in ELEVEN}}


def run(latency_ms: float = 1000.0) -> list[dict]:
    import ray

    from w4s_ray.config import ExperimentConfig, RayConfig, SimConfig
    from w4s_ray.env import apply_offline_defaults
    from w4s_ray.executor.sim.launch import start_sim
    from w4s_ray.runtime.ray_init import init_ray

    apply_offline_defaults()
    # The driver's own one-time imports (the sweep, litellm for the preflight call) before any
    # measurement: they would otherwise count against whichever sweep runs first.
    from w4s_ray.executor.providers import import_litellm
    from w4s_ray.runtime.sweep import run_sweep  # noqa: F401

    import_litellm()
    data_dir = ExperimentConfig().data_dir()
    sim = start_sim(SimConfig(latency="fixed", latency_ms=latency_ms), data_dir, port=0)
    started = not ray.is_initialized()
    init_ray(RayConfig(num_cpus=4))
    try:
        with tempfile.TemporaryDirectory(prefix="w4s-bench-sweep-") as tmp, \
                cpu_tree.TreeCpu() as tree:
            # The new path first: it pays the cold start of Ray workers (the conservative order).
            # ...and builds every benchmark once for the machine: no cache left from before.
            shutil.rmtree(Path.home() / ".cache" / "w4s" / "benchmarks", ignore_errors=True)
            new = _sweep(sim.url, Path(tmp) / "parallel", None, True, tree)
            old = _sweep(sim.url, Path(tmp) / "parallel-old", None, False, tree)
            seq = _sweep(sim.url, Path(tmp) / "sequential", 1, True, tree)
            # The same parallel sweeps with MORE candidates per turn, then with one again: the
            # difference in platform CPU between two WARM runs (Ray reuses idle workers, so a
            # first run's cold start would otherwise count against the smaller one) is what
            # each further candidate evaluation costs the platform.
            new_m = _sweep(sim.url, Path(tmp) / "parallel-m", None, True, tree, MORE)
            old_m = _sweep(sim.url, Path(tmp) / "parallel-old-m", None, False, tree, MORE)
            new_w = _sweep(sim.url, Path(tmp) / "parallel-warm", None, True, tree)
            old_w = _sweep(sim.url, Path(tmp) / "parallel-old-warm", None, False, tree)
    finally:
        if started:
            ray.shutdown()
        sim.stop()
    import os

    ncpu = os.cpu_count() or 1
    n = len(ELEVEN)
    params = {"latency_ms": latency_ms, "benchmarks": n, "turns": 1, "candidates": 1,
              "valid_items": 2, "test_items": 2, "cpus": ncpu,
              "sequential_wall_s": round(seq["wall"], 2),
              "parallel_wall_s": round(new["wall"], 2),
              "parallel_wall_s_old_path": round(old["wall"], 2),
              "parallel_tree_cpu_s": round(new["tree_cpu"], 1),
              "parallel_tree_cpu_s_old_path": round(old["tree_cpu"], 1),
              "parallel_machine_busy_cpu_s": round(new["machine_busy"], 1),
              "parallel_machine_busy_cpu_s_old_path": round(old["machine_busy"], 1),
              "cpu_s_by_kind_shared_host": new["by_kind"],
              "cpu_s_by_kind_old_path": old["by_kind"],
              "sequential_benchmark_walls_s": seq["bench_walls"],
              "parallel_benchmark_walls_s": new["bench_walls"],
              # the parallel sweep's time outside its slowest benchmark: start-up (preflight,
              # pool, host) and the wrap-up (report)
              "parallel_outside_benchmarks_s": round(
                  new["wall"] - max(new["bench_walls"].values()), 2)}

    def ceiling(par: dict) -> float:
        # The parallel sweep cannot finish before its CPU work does: CPU-seconds / cores is a
        # floor on its wall time here, so sequential wall / that floor caps the speedup.
        return round(seq["wall"] / max(par["tree_cpu"] / ncpu, 1e-9), 2)

    per_new, per_old = new["platform_cpu"] / n, old["platform_cpu"] / n
    extra = n * (MORE - 1)  # candidate evaluations (each with its self-check) added
    cand_new = (new_m["platform_cpu"] - new_w["platform_cpu"]) / extra
    cand_old = (old_m["platform_cpu"] - old_w["platform_cpu"]) / extra
    params.update({"more_candidates": MORE,
                   "parallel_platform_cpu_s": round(new["platform_cpu"], 2),
                   "parallel_platform_cpu_s_warm": round(new_w["platform_cpu"], 2),
                   "parallel_platform_cpu_s_more_candidates": round(new_m["platform_cpu"], 2),
                   "parallel_platform_cpu_s_old_path": round(old["platform_cpu"], 2),
                   "parallel_platform_cpu_s_old_path_warm": round(old_w["platform_cpu"], 2),
                   "parallel_platform_cpu_s_old_path_more_candidates":
                       round(old_m["platform_cpu"], 2),
                   "cpu_s_by_kind_shared_host_warm": new_w["by_kind"],
                   "cpu_s_by_kind_shared_host_more_candidates": new_m["by_kind"]})
    # However many cores, a parallel sweep cannot end before its slowest benchmark does:
    # sequential wall / the slowest benchmark's own wall (in the sequential run, where
    # nothing competes with it) caps the speedup as well as the CPUs do.
    slowest = max(seq["bench_walls"], key=seq["bench_walls"].get)
    path_ceiling = round(seq["wall"] / max(seq["bench_walls"][slowest], 1e-9), 2)
    cpu_ceiling = ceiling(new)
    alone, together = (statistics.median(r["bench_walls"].values()) for r in (seq, new))
    first = (f"critical-path ceiling {path_ceiling:g} ({slowest} {seq['bench_walls'][slowest]:g}"
             f" s alone), CPU ceiling {cpu_ceiling:g}" if path_ceiling <= cpu_ceiling else
             f"CPU ceiling {cpu_ceiling:g}, critical-path ceiling {path_ceiling:g}")
    limit = (f"{first}; below both: a benchmark takes {together:g} s in the parallel sweep "
             f"against {alone:g} s alone (medians) while this sweep keeps "
             f"{new['tree_cpu'] / new['wall']:.2f} of {ncpu} cores busy on average, and "
             f"{params['parallel_outside_benchmarks_s']:g} s of it is outside every benchmark "
             f"(start-up, report)")
    return [
        {"name": "sweep_parallel_speedup", "value": round(seq["wall"] / new["wall"], 3),
         "target": 8.0, "unit": "x, sequential wall / parallel wall (higher is better)",
         "params": params, "limit": limit},
        {"name": "sweep_parallel_speedup_old_path",
         "value": round(seq["wall"] / old["wall"], 3), "target": None,
         "unit": "x, the same on the old path (task_host=per_benchmark, node_cache and lazy_litellm off)",
         "params": params, "limit": limit},
        {"name": "sweep_parallel_cores_busy", "value": round(new["tree_cpu"] / new["wall"], 2),
         "target": None,
         "unit": f"mean cores busy with this sweep's processes (of {ncpu})", "params": params},
        {"name": "sweep_speedup_critical_path_ceiling", "value": path_ceiling, "target": None,
         "unit": "x, sequential wall / the slowest benchmark's wall when it ran alone: the "
                 "most any number of cores allows", "params": params},
        {"name": "sweep_speedup_cpu_ceiling", "value": cpu_ceiling, "target": None,
         "unit": "x, sequential wall / (parallel CPU s / cores): the most this machine's "
                 "CPUs allow", "params": params},
        {"name": "sweep_speedup_cpu_ceiling_old_path", "value": ceiling(old),
         "target": None,
         "unit": "x, the same on the old path (task_host=per_benchmark, node_cache and lazy_litellm off)",
         "params": params},
        {"name": "sweep_platform_cpu_s_per_benchmark", "value": round(per_new, 2),
         "target": round(per_old / 2, 2), "direction": "<=",
         "unit": "CPU s per benchmark (all processes but the simulator) of the parallel "
                 "sweep; target: half the old path's, measured in the same run",
         "params": params,
         "limit": "per run: 3 evaluator actors' start (Ray worker, platform imports, "
                  "benchmarks from the node cache), the limiter and benchmark host workers, "
                  "Ray itself; per evaluation: a fresh sandbox child and the actor's own "
                  "work (params cpu_s_by_kind_*)"},
        {"name": "sweep_platform_cpu_s_per_candidate", "value": round(cand_new, 3),
         "target": round(cand_old / 2, 3), "direction": "<=",
         "unit": f"CPU s per further candidate evaluation (platform CPU of the parallel sweep "
                 f"with {MORE} candidates per benchmark minus with 1, both warm, per added "
                 "candidate; "
                 "its 1-item self-check and validation evaluation); target: half the old "
                 "path's, measured in the same run",
         "params": params,
         "limit": "per candidate: a fresh sandbox child per evaluation (the self-check and "
                  "the validation run), the evaluator actor's feedback and the driver's "
                  "bookkeeping; the shared host and node cache remove per-benchmark costs, "
                  "not these (no pre-forked sandbox template)"},
        {"name": "sweep_platform_cpu_s_per_candidate_old_path", "value": round(cand_old, 3),
         "target": None,
         "unit": "CPU s per further candidate evaluation on the old path (task_host="
                 "per_benchmark, node_cache and lazy_litellm off)", "params": params},
        {"name": "sweep_platform_cpu_s_per_benchmark_old_path",
         "value": round(per_old, 2), "target": None,
         "unit": "CPU s per benchmark on the old path (task_host=per_benchmark, node_cache and lazy_litellm off)",
         "params": params},
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency-ms", type=float, default=1000.0)
    args = ap.parse_args()
    for r in run(args.latency_ms):
        print(json.dumps(r))
    p = r["params"]
    print(f"sequential {p['sequential_wall_s']} s / parallel {p['parallel_wall_s']} s "
          f"(old path {p['parallel_wall_s_old_path']} s); parallel CPU "
          f"{p['parallel_tree_cpu_s']} s (old path {p['parallel_tree_cpu_s_old_path']}"
          f" s) on {p['cpus']} cores")


if __name__ == "__main__":
    main()
