"""`w4s sweep CONFIG`: baselines + W4S optimization on many benchmarks in parallel on Ray.

Writes one run directory per benchmark under `run_dir` plus `sweep_report.md` and plots there
(see docs/SWEEP.md). Exit codes: 0 all benchmarks completed; 1 some failed (the report names
them); 3 the shared executor budget ran out; 2 bad input (nothing started) or an executor
endpoint that cannot serve the run (bad key, unknown model: all benchmarks stop, the report
says what was done, `--resume` continues once fixed).
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from w4s_ray.cli import add_config_args

    p = subparsers.add_parser(
        "sweep", help="baselines + W4S on many benchmarks at once (one pool, rate limit, budget)",
        description="For every benchmark of the config (all eleven by default): evaluate the "
                    "seed-workflow baselines on test and run W4S optimization (validation-only "
                    "selection, one final test evaluation), all in parallel on Ray, sharing one "
                    "evaluator pool, one executor rate limit and one budget. Writes "
                    "<run_dir>/sweep_report.md.",
    )
    p.add_argument("config_file", nargs="?", metavar="CONFIG",
                   help="experiment YAML (same as --config)")
    add_config_args(p)
    p.add_argument("--benchmarks", "-b", help="comma-separated benchmarks (default: config "
                   "`benchmarks`)")
    p.add_argument("--resume", action="store_true",
                   help="skip completed benchmarks and stored baselines, resume the others")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import sys

    from w4s_ray.cli import show_progress
    from w4s_ray.config import load_config
    from w4s_ray.errors import ConfigError
    from w4s_ray.executor.preflight import simulated_note
    from w4s_ray.runtime.sweep import run_sweep

    cfg = args.cfg
    if args.config_file:
        if args.config and args.config != args.config_file:
            raise ConfigError(f"two configs given: {args.config_file} and --config {args.config}")
        cfg = load_config(args.config_file, args.overrides)
        if args.address:
            cfg.ray.address = args.address
    benches = None
    if args.benchmarks is not None:
        benches = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
        if not benches:
            raise ConfigError("--benchmarks: no benchmark names given")
    out = run_sweep(cfg, benches, resume=args.resume, progress=show_progress(args))
    n = len(out["status"])
    print(f"sweep: {n - len(out['failed'])}/{n} benchmarks completed in {out['wall_s']:.1f} s"
          f"{simulated_note(out.get('executor'))} -> {out['report']}")
    if out["failed"]:
        for b in out["failed"]:
            print(f"  {b}: FAILED: {out['status'][b]['error']}", file=sys.stderr)
        return 1
    return 0
