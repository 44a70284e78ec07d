"""`w4s collect`: RLAO data collection, episodes over several benchmarks in parallel on Ray.

Appends one Parquet part per completed turn to <out>/trajectories (schema:
docs/TRAJECTORIES.md); `--resume` continues from the rows already there (and refuses a
directory that holds no run). The meta-agent and the executor (one preflight call) are
checked before Ray starts.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from w4s_ray.cli import add_config_args

    p = subparsers.add_parser(
        "collect", help="collect RLAO trajectories (episodes over several benchmarks, on Ray)",
        description="Run W4S episodes on several benchmarks in parallel and write one row per "
                    "candidate workflow to a Parquet dataset for RWR training.",
    )
    add_config_args(p)
    p.add_argument("--benchmarks", help="comma-separated names (default: config `benchmarks`)")
    p.add_argument("--episodes", type=int,
                   help="episodes per benchmark (default: rlao.episodes_per_benchmark)")
    p.add_argument("--turns", type=int, help="turns per episode (default: rlao.turns)")
    p.add_argument("--out", help="output directory (default: <run_dir>/collect)")
    p.add_argument("--resume", action="store_true", help="continue the collection in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from w4s_ray.benchmarks import check_benchmarks, get_benchmark
    from w4s_ray.cli import show_progress
    from w4s_ray.errors import ConfigError
    from w4s_ray.executor.preflight import check_executor, simulated_note
    from w4s_ray.meta_agent import check_meta_agent
    from w4s_ray.rlao.runs import preflight
    from w4s_ray.runtime.collect import collect
    from w4s_ray.runtime.ray_init import ray_session

    cfg = args.cfg
    names = check_benchmarks(args.benchmarks.split(",") if args.benchmarks else cfg.benchmarks)
    for flag in ("episodes", "turns"):
        val = getattr(args, flag)
        if val is not None and val < 1:
            raise ConfigError(f"--{flag} must be >= 1, got {val}")
    out = Path(args.out or Path(cfg.run_dir) / "collect")
    preflight(out, cfg, args.resume)
    for name in names:  # missing data, meta-agent or a failing executor: one line, before Ray
        get_benchmark(name, data_dir=cfg.data_dir()).check_files()
    check_meta_agent(cfg)
    info = check_executor(cfg.executor)
    with ray_session(cfg.ray):
        summary = collect(cfg, names, out, episodes=args.episodes, turns=args.turns,
                          resume=args.resume, progress=show_progress(args), executor=info)
    print(f"collected {summary['rows']} rows from {summary['episodes']} episodes"
          f"{simulated_note(info)} -> {out / 'trajectories'} (report: {out / 'report.md'})")
    return 0
