"""`w4s`: one verb per pipeline stage.

Each verb lives in `w4s_ray/commands/<verb>.py` and exposes `register(subparsers)`, which adds
its parser and sets `func(args) -> int`. Command modules keep heavy imports (torch, ray,
litellm) inside their handlers, so `w4s --help` stays fast.

Every verb that runs a stage takes `--config FILE` and repeated `--set key.path=value`; the
config is loaded once here and handed to the handler as `args.cfg`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from w4s_ray.env import apply_offline_defaults
from w4s_ray.errors import W4SError

# Order is the pipeline's order; a module that is absent is simply not offered.
VERBS = [
    "data", "sim", "eval", "optimize", "collect", "meta_agent", "train", "compare", "serve", "sweep",
    "demo", "report", "models",
]


def add_config_args(parser: argparse.ArgumentParser, *, default: str | None = None) -> None:
    """The two options every stage shares: a YAML config and --set overrides."""
    parser.add_argument(
        "--config", "-c", default=default,
        help="experiment YAML (a path, or a name under experiments/); default: embedded defaults",
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one config value, e.g. --set executor.model=gpt-4o-mini (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="w4s",
        description="w4s-ray: Weak-for-Strong Harnessing on Ray. One verb per pipeline stage.",
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS:
        try:
            module = importlib.import_module(f"w4s_ray.commands.{verb}")
        except ModuleNotFoundError as exc:
            if exc.name == f"w4s_ray.commands.{verb}":
                continue
            raise
        module.register(sub)
    return parser


def _load_cfg(args: argparse.Namespace):
    if not hasattr(args, "overrides"):
        return None
    from w4s_ray.config import load_config

    return load_config(getattr(args, "config", None), args.overrides)


def main(argv: list[str] | None = None) -> int:
    apply_offline_defaults()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.verb is None else 2
    try:
        args.cfg = _load_cfg(args)
        return int(args.func(args) or 0)
    except W4SError as exc:
        print(f"w4s: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("w4s: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
