"""`w4s sim serve`: run the simulated OpenAI-compatible executor in the foreground."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from w4s_ray.cli import add_config_args
    from w4s_ray.executor.sim.options import add_sim_args

    p = subparsers.add_parser("sim", help="the simulated strong executor (offline stand-in for an LLM API)")
    sub = p.add_subparsers(dest="sim_cmd", metavar="CMD")
    serve = sub.add_parser(
        "serve", help="serve the simulator over HTTP (OpenAI chat-completions protocol)",
        description="Serve a simulated LLM at http://HOST:PORT/v1. It recognises benchmark items "
                    "in prompts and answers them right with a profile's accuracy (a simulator, "
                    "not a language model; see docs/EXECUTOR.md).",
    )
    add_config_args(serve)
    add_sim_args(serve)
    serve.set_defaults(func=_serve)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _serve(args: argparse.Namespace) -> int:
    from w4s_ray.executor.sim.options import sim_config_from_args
    from w4s_ray.executor.sim.server import serve

    sim_cfg = sim_config_from_args(args.cfg.sim, args)
    data_dir = args.data_dir or (None if args.items_file else str(args.cfg.data_dir()))
    serve(sim_cfg, data_dir, args.items_file)
    return 0
