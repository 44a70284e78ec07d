"""Bench: an RLAO collection dry run on a local multi-node Ray cluster, zero-latency simulator.

Cluster: `ray.cluster_utils.Cluster` on this machine, the shape of clusters/aws-gpu.yaml (a
head, a `meta_agent` node, `--eval-nodes` nodes declaring `evaluator`), so placement by role is
what a real cluster does. Workload: `collect` (runtime/collect.py) over `--benchmarks`, with
`--episodes` x `--turns` x `--candidates` from the scripted `seed-variants` meta-agent and
`--limit` validation items per evaluation, on the simulator with NO latency (the executor
costs nothing, so what is left is the platform: driver, actors, sandboxes, Parquet). The
paper's recipe is 4 benchmarks x 2 episodes x 10 turns x 5 candidates x full validation sets;
the defaults are a reduced version of it that fits the 2-core box, `--full` runs the recipe
(limit = full sets).

Figures (informational, no targets; docs/PERFORMANCE.md projects them to 100 nodes):
- item-evaluations/s (validation items scored, seeds included) and executor calls/s;
- driver peak RSS, evaluator actor peak RSS (per actor, with its sandbox children);
- peak object-store use across the cluster;
- trajectory Parquet size on disk, and the time to write all rows as one Parquet file.

    python bench/bench_dryrun.py [--benchmarks gsm8k,svamp] [--episodes 1] [--turns 2]
                                 [--candidates 5] [--limit 20] [--eval-nodes 2] [--full]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

PAPER = {"benchmarks": ["gsm8k", "svamp", "mmlu_pro", "drop"], "episodes": 2, "turns": 10,
         "candidates": 5, "limit": None}


class _ClusterSampler:
    """Peaks of evaluator-actor RSS (found through the GCS actor table) and object-store use."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.actor_peak = 0
        self.store_peak = 0
        self.actors_seen: set[int] = set()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self.interval_s = interval_s

    def _loop(self) -> None:
        import ray
        import ray._private.state as state

        while not self._stop.is_set():
            try:
                for a in state.actors().values():
                    if a["ActorClassName"] == "EvaluatorActor" and a["State"] == "ALIVE":
                        self.actors_seen.add(a["Pid"])
                        self.actor_peak = max(self.actor_peak, common.tree_rss(a["Pid"]))
                total = ray.cluster_resources().get("object_store_memory", 0)
                free = ray.available_resources().get("object_store_memory", total)
                self.store_peak = max(self.store_peak, total - free)
            except Exception:  # noqa: BLE001 - a transient GCS read: sample again
                pass
            self._stop.wait(self.interval_s)

    def __enter__(self) -> _ClusterSampler:
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join(timeout=10)


def run(benchmarks: list[str] | None = None, episodes: int = 1, turns: int = 2,
        candidates: int = 5, limit: int | None = 20, eval_nodes: int = 2,
        num_evaluators: int = 4) -> list[dict]:
    import pyarrow.parquet as pq
    import ray
    from ray.cluster_utils import Cluster

    from w4s_ray.benchmarks import get_benchmark
    from w4s_ray.config import load_config
    from w4s_ray.rlao import trajectories as traj
    from w4s_ray.rlao.runs import RunDir
    from w4s_ray.runtime.collect import collect

    benchmarks = benchmarks or ["gsm8k", "svamp"]
    tmp = tempfile.mkdtemp(prefix="w4sdr", dir="/tmp")  # short: Unix socket paths
    os.environ["RAY_TMPDIR"] = tmp  # the cluster's address file stays out of /tmp/ray
    store = 100 * 2**20
    sim = common.fixed_sim(0.0)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1,
                                                            "object_store_memory": store})
    try:
        cluster.add_node(num_cpus=1, object_store_memory=store, resources={"meta_agent": 1})
        for _ in range(eval_nodes):
            cluster.add_node(num_cpus=1, object_store_memory=store, resources={"evaluator": 8})
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
        cfg = load_config(None, [
            f"run_dir={tmp}/runs", "name=dryrun", f"executor.api_base={sim.url}",
            "executor.cache.enabled=false", f"eval.limit={'null' if limit is None else limit}",
            f"rlao.candidates={candidates}", "rlao.max_repairs=1",
            "meta_agent.backend=scripted", "meta_agent.model=seed-variants",
            f"eval.num_evaluators={num_evaluators}", "eval.actor_num_cpus=0.1",
        ])
        out = Path(tmp) / "collect"
        driver = common.RssSampler({"driver": os.getpid()}, interval_s=0.2, children=False)
        with driver, _ClusterSampler() as cs:
            t0 = time.perf_counter()
            summary = collect(cfg, benchmarks, out, episodes=episodes, turns=turns,
                              progress=False)
            wall = time.perf_counter() - t0
        rd = RunDir(out)
        rows = rd.read_rows()
        n_seeds = {b: len(rd.load_seeds(b) or []) for b in benchmarks}
        seeds = sum(n_seeds.values())
        evaluated = [r for r in rows if r["val_accuracy"] is not None]
        # Items per evaluation: the limit, or each benchmark's validation set if smaller.
        sizes = {b: len(get_benchmark(b, cfg.data_dir()).load("valid")) for b in benchmarks}
        per = {b: min(sizes[b], limit) if limit is not None else sizes[b] for b in benchmarks}
        items = sum(per[r["benchmark"]] for r in evaluated) + sum(
            per[b] * n for b, n in n_seeds.items())
        calls = sum(int(r["eval_calls"]) for r in rows)
        part_bytes = sum(p.stat().st_size for p in traj.part_files(rd.trajectories))
        table = traj.to_table(rows)
        t1 = time.perf_counter()
        pq.write_table(table, Path(tmp) / "all.parquet")
        write_s = time.perf_counter() - t1
    finally:
        ray.shutdown()
        cluster.shutdown()
        sim.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    params = {"benchmarks": benchmarks, "episodes": episodes, "turns": turns,
              "candidates": candidates, "limit": limit, "eval_nodes": eval_nodes,
              "num_evaluators": num_evaluators, "rows": len(rows), "seeds": seeds,
              "evaluated_candidates": len(evaluated), "item_evaluations": items,
              "executor_calls": calls, "wall_s": round(wall, 2),
              "episodes_done": summary["episodes"], "latency_ms": 0.0,
              "evaluator_actors_seen": len(cs.actors_seen)}
    return [
        common.row("dryrun_item_evaluations_per_s", round(items / wall, 2), None,
                   "item-evaluations/s (higher is better)", params),
        common.row("dryrun_executor_calls_per_s", round(calls / wall, 2), None,
                   "calls/s (higher is better)", params),
        common.row("dryrun_driver_peak_rss", driver.peaks_mib["driver"], None, "MiB", params),
        common.row("dryrun_evaluator_actor_peak_rss", round(cs.actor_peak / 2**20, 1), None,
                   "MiB (one actor with its sandboxes)", params),
        common.row("dryrun_object_store_peak", round(cs.store_peak / 2**20, 2), None,
                   "MiB (whole cluster)", params),
        common.row("dryrun_parquet_bytes_per_row", round(part_bytes / max(1, len(rows)), 1),
                   None, "bytes/row (turn parts on disk)", {**params, "bytes": part_bytes}),
        common.row("dryrun_parquet_write_ms_per_1k_rows",
                   round(write_s * 1000 * 1000 / max(1, len(rows)), 2), None,
                   "ms per 1000 rows (one file)", params),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmarks", default="gsm8k,svamp")
    ap.add_argument("--episodes", type=int, default=1)
    ap.add_argument("--turns", type=int, default=2)
    ap.add_argument("--candidates", type=int, default=5)
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--eval-nodes", type=int, default=2)
    ap.add_argument("--num-evaluators", type=int, default=4)
    ap.add_argument("--full", action="store_true", help="the paper's recipe (long)")
    ap.add_argument("--out", default=None, help="also merge the rows into this results.json")
    a = ap.parse_args()
    kw = dict(benchmarks=a.benchmarks.split(","), episodes=a.episodes, turns=a.turns,
              candidates=a.candidates, limit=a.limit, eval_nodes=a.eval_nodes,
              num_evaluators=a.num_evaluators)
    if a.full:
        kw.update(PAPER)
    rows = run(**kw)
    print(common.markdown_table(rows))
    if a.out:
        _merge(Path(a.out), rows)


def _merge(path: Path, rows: list[dict]) -> None:
    """Replace this module's entries in a results.json written by run_all.py."""
    import datetime as dt

    data = json.loads(path.read_text()) if path.exists() else {"entries": []}
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    load = list(os.getloadavg())
    data["entries"] = [e for e in data.get("entries", []) if e.get("module") != "bench_dryrun"]
    data["entries"] += [{**r, "module": "bench_dryrun", "measured_at": now, "load_avg": load}
                        for r in rows]
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
