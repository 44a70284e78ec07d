"""`w4s demo`: the offline end-to-end pipeline (`make demo`); see w4s_ray/demo.py.
`w4s demo --real` (`make demo-real`): the same with a real pretrained meta-agent
(experiments/demo-real.yaml; w4s_ray/demo_real.py)."""

from __future__ import annotations

import argparse


class _DefaultConfig(str):
    """The --config default, told apart from an explicit `--config demo`."""


class _RealAction(argparse.Action):
    """--real: sets demo.real and, unless --config was given, loads demo-real.yaml."""

    def __init__(self, option_strings, dest, **kw):
        super().__init__(option_strings, dest, nargs=0, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, True)
        if isinstance(namespace.config, _DefaultConfig):
            namespace.config = "demo-real"


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
    add_config_args(p, default=_DefaultConfig("demo"))
    p.add_argument("--real", action=_RealAction, default=False,
                   help="a real pretrained meta-agent (SmolLM2-135M-Instruct, prepared from its "
                        "packaged GGUF) instead of the tiny one; default config "
                        "experiments/demo-real.yaml (measured: 39 min on 2 busy cores)")
    add_out_arg(p, "output directory (default: the config's run_dir, runs/demo)")
    add_restart_args(p, "demo (--resume, the default, reuses finished stages)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from w4s_ray.cli import show_progress
    from w4s_ray.demo import run_demo

    if args.out:
        args.cfg.run_dir = args.out
    if args.real:
        args.cfg.demo.real = True
    report = run_demo(args.cfg, fresh=args.fresh, progress=show_progress(args))
    if args.cfg.demo.real:
        print(f"demo report: {report} (meta-agent {args.cfg.demo.model}; collect and compare "
              "ran on the simulated executor)")
    else:
        print(f"demo report: {report} (simulated executor: the w4s simulator, not an LLM)")
    return 0
