"""`w4s collect`: RLAO data collection, episodes over several benchmarks in parallel on Ray.

Appends one Parquet part per completed turn to <out>/trajectories (schema:
docs/TRAJECTORIES.md); `--resume` continues from the rows already there (and refuses a
directory that holds no run). The meta-agent and the executor (one preflight call) are
checked before Ray starts. The stage itself is `w4s_ray.api.collect`.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from w4s_ray.cli import add_benchmarks_arg, add_config_args, add_out_arg, add_restart_args

    p = subparsers.add_parser(
        "collect", help="collect RLAO trajectories (episodes over several benchmarks, on Ray)",
        description="Run W4S episodes on several benchmarks in parallel and write one row per "
                    "candidate workflow to a Parquet dataset for RWR training.",
    )
    add_config_args(p)
    add_benchmarks_arg(p, "benchmarks to collect on (default: config `benchmarks`)")
    p.add_argument("--episodes", type=int,
                   help="episodes per benchmark (default: rlao.episodes_per_benchmark)")
    p.add_argument("--turns", type=int, help="turns per episode (default: rlao.turns)")
    add_out_arg(p, "output directory (default: <run_dir>/collect)")
    add_restart_args(p, "collection")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from w4s_ray import api
    from w4s_ray.cli import benchmarks_of, show_progress
    from w4s_ray.executor.preflight import simulated_note

    res = api.collect(args.cfg, benchmarks=benchmarks_of(args), episodes=args.episodes,
                      turns=args.turns, out=args.out, resume=args.resume, fresh=args.fresh,
                      progress=show_progress(args))
    print(f"collected {res.rows} rows from {res.episodes} episodes"
          f"{simulated_note(res.executor)} -> {res.trajectories} (report: {res.report})")
    return 0
