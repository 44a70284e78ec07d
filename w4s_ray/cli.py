"""`w4s`: one verb per pipeline stage.

Each verb lives in `w4s_ray/commands/<verb>.py` and exposes `register(subparsers)`, which adds
its parser and sets `func(args) -> int`. Command modules keep their imports inside their
handlers, the one place in the package that does so on purpose: measured here, `import
w4s_ray.cli` takes 0.02 s, while the modules behind the verbs take up to 6 s to import (torch,
transformers, Ray Train for `train`; Ray for `sweep`), which `w4s --help` and every other verb
would otherwise pay.

Every verb that runs a stage takes `--config FILE` and repeated `--set key.path=value`; the
config is loaded once here and handed to the handler as `args.cfg`. They also take
`--address` (join that Ray cluster; same as `--set ray.address=...`), and `--verbose` /
`--quiet` (also accepted before the verb; see `w4s_ray.console`), and `--include PATH` (your
own benchmarks and seeds, `w4s_ray.benchmarks.plugins`). `w4s --version` prints the
installed version. The stages themselves are the Python API (`w4s_ray.api`); a verb parses,
calls it and prints.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from w4s_ray import console
from w4s_ray.env import apply_offline_defaults
from w4s_ray.errors import ConfigError, W4SError

# Order is the pipeline's order; a module that is absent is simply not offered.
VERBS = [
    "data", "sim", "eval", "baselines", "optimize", "collect", "meta_agent", "train", "compare", "serve", "sweep",
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
    parser.add_argument(
        "--include", action="append", default=[], metavar="PATH",
        help="load your own benchmarks / seed workflows from a directory or an installed "
             "module (repeatable; adds to the config's `include`; docs/HOWTO.md)",
    )
    parser.add_argument(
        "--address", default=None, metavar="ADDR",
        help="join the Ray cluster at ADDR (host:port, ray://..., or auto); default: a private "
             "local Ray (or $RAY_ADDRESS when set)",
    )
    add_verbosity_args(parser)


def add_verbosity_args(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    parser.add_argument("--verbose", "-v", dest=f"{prefix}verbose", action="store_true",
                        help="library logs, Ray Data/Train progress, every warning")
    parser.add_argument("--quiet", "-q", dest=f"{prefix}quiet", action="store_true",
                        help="errors and the final lines only; no progress bars")


def add_out_arg(parser: argparse.ArgumentParser, help: str, *aliases: str) -> None:
    """`--out DIR` (`-o`): where a verb writes its directory; `aliases` keep older spellings
    (e.g. `--run-dir`) working."""
    parser.add_argument("--out", "-o", *aliases, dest="out", metavar="DIR", help=help)


def add_benchmarks_arg(parser: argparse.ArgumentParser, help: str) -> None:
    """`--benchmarks/--benchmark/-b`: one name, a comma list, or the flag repeated (the same
    spelling on every verb; see `benchmarks_of`)."""
    parser.add_argument("--benchmarks", "--benchmark", "-b", dest="benchmarks", action="append",
                        metavar="NAMES", help=help + " (one name, a comma list, or repeat -b)")


def benchmarks_of(args: argparse.Namespace) -> list[str] | None:
    """The names given with `-b` (None when the flag was not given)."""
    given = getattr(args, "benchmarks", None)
    if given is None:
        return None
    names = [n.strip() for v in given for n in v.split(",") if n.strip()]
    if not names:
        raise ConfigError("--benchmarks: no benchmark names given")
    return list(dict.fromkeys(names))


def one_benchmark(args: argparse.Namespace, verb: str) -> str | None:
    """The one benchmark of a verb that runs on one (None: the config's `benchmark`)."""
    names = benchmarks_of(args)
    if names and len(names) > 1:
        raise ConfigError(f"`w4s {verb}` runs on one benchmark, got {len(names)} "
                          f"({', '.join(names)}); `w4s sweep -b {','.join(names)}` runs many")
    return names[0] if names else None


def add_restart_args(parser: argparse.ArgumentParser, what: str,
                     fresh_aliases: tuple[str, ...] = ()) -> None:
    """The one "resume / start over" pair every resumable verb shares."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true",
                       help=f"continue the {what} in the output directory where it stopped")
    group.add_argument("--fresh", *fresh_aliases, dest="fresh", action="store_true",
                       help=f"discard the earlier {what} in the output directory and start "
                            "over (only the files w4s wrote there)")


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars for this command: not with --no-progress or --quiet."""
    return not getattr(args, "no_progress", False) and console.progress_enabled()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="w4s",
        description="w4s-ray: Weak-for-Strong Harnessing on Ray. One verb per pipeline stage.",
    )
    parser.add_argument("--version", action="version", version=f"w4s {_version()}")
    add_verbosity_args(parser, prefix="global_")
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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("w4s-ray")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _load_cfg(args: argparse.Namespace):
    if not hasattr(args, "overrides"):
        return None
    from w4s_ray.config import load_config

    cfg = load_config(getattr(args, "config", None), args.overrides)
    if getattr(args, "address", None):
        cfg.ray.address = args.address
    if getattr(args, "include", None):
        cfg.include = [*cfg.include, *args.include]
    if cfg.include:  # registered before any verb looks a benchmark up
        from w4s_ray.benchmarks.plugins import load_includes

        load_includes(cfg.include)
    return cfg


def _configure_console(args: argparse.Namespace) -> None:
    verbose = getattr(args, "verbose", False) or args.global_verbose
    quiet = getattr(args, "quiet", False) or args.global_quiet
    if verbose and quiet:
        raise ConfigError("--verbose and --quiet exclude each other")
    console.configure(verbose=verbose, quiet=quiet)


def main(argv: list[str] | None = None) -> int:
    apply_offline_defaults()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.verb is None else 2
    try:
        _configure_console(args)
        # --no-progress also silences the activity lines (Ray start, seeds, final test).
        console.no_progress(bool(getattr(args, "no_progress", False)))
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
