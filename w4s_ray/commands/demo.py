"""`w4s demo`: the offline end-to-end pipeline (`make demo`); see w4s_ray/demo.py."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from w4s_ray.cli import add_config_args, add_out_arg, add_restart_args

    p = subparsers.add_parser(
        "demo", help="offline end to end: simulator, tiny meta-agent, collect, train, serve, "
                     "optimize a held-out benchmark with the served model, report",
        description="Runs every stage of W4S on this machine with the simulated executor and "
                    "the tiny meta-agent (experiments/demo.yaml; about 6 minutes on 2 idle cores). "
                    "Stage outputs go under run_dir; a second run reuses finished stages. "
                    "Prints the report's path at the end.",
    )
    add_config_args(p, default="demo")
    add_out_arg(p, "output directory (default: the config's run_dir, runs/demo)")
    add_restart_args(p, "demo (--resume, the default, reuses finished stages)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from w4s_ray.cli import show_progress
    from w4s_ray.demo import run_demo

    if args.out:
        args.cfg.run_dir = args.out
    report = run_demo(args.cfg, fresh=args.fresh, progress=show_progress(args))
    print(f"demo report: {report} (simulated executor: the w4s simulator, not an LLM)")
    return 0
