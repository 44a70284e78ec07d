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
    from w4s_ray.cli import add_benchmarks_arg, add_config_args, add_out_arg, add_restart_args

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
    add_benchmarks_arg(p, "benchmarks to sweep (default: config `benchmarks`)")
    add_out_arg(p, "output directory (default: the config's run_dir; same as --set run_dir=DIR)")
    p.add_argument("--methods", "-m", help="comma-separated methods for the paper-shaped "
                   "table: hand-designed baselines (w4s baselines list), adas, aflow, w4s "
                   "(default: config sweep.methods; unset: W4S and the seed workflows)")
    add_restart_args(p, "sweep (completed benchmarks and stored baselines are skipped)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import sys

    from w4s_ray import api
    from w4s_ray.cli import benchmarks_of, show_progress
    from w4s_ray.config import load_config
    from w4s_ray.errors import ConfigError
    from w4s_ray.executor.preflight import simulated_note

    cfg = args.cfg
    if args.config_file:
        if args.config and args.config != args.config_file:
            raise ConfigError(f"two configs given: {args.config_file} and --config {args.config}")
        cfg = load_config(args.config_file, args.overrides)
        if args.address:
            cfg.ray.address = args.address
    if args.out:
        cfg.run_dir = args.out
    if args.methods is not None:
        from w4s_ray.sweep.methods import check_methods

        cfg.sweep.methods = check_methods([m for m in args.methods.split(",") if m.strip()])
    res = api.sweep(cfg, benchmarks=benchmarks_of(args), resume=args.resume, fresh=args.fresh,
                    progress=show_progress(args))
    out = {"status": res.status, "failed": res.failed, "wall_s": res.wall_s,
           "executor": res.executor, "report": res.report}
    n = len(out["status"])
    print(f"sweep: {n - len(out['failed'])}/{n} benchmarks completed in {out['wall_s']:.1f} s"
          f"{simulated_note(out.get('executor'))} -> {out['report']}")
    if out["failed"]:
        for b in out["failed"]:
            print(f"  {b}: FAILED: {out['status'][b]['error']}", file=sys.stderr)
        return 1
    return 0
