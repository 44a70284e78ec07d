"""`w4s baselines list|show`: the hand-designed baseline workflows (docs/BASELINES.md).

- `list`: one row per baseline — name, method, what it does, calls and sampling settings,
  where it comes from — for every benchmark family (math, reading, multiple choice, code).
- `show NAME --benchmark B [--out FILE]`: the workflow source of baseline NAME rendered for
  benchmark B (print it, or write FILE), ready for `w4s eval --workflow FILE`.
"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from w4s_ray.cli import add_benchmarks_arg, add_config_args

    p = sub.add_parser("baselines", help="list or show the hand-designed baseline workflows",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="baselines_verb", metavar="{list,show}")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    pl = verbs.add_parser("list", help="the baselines, their settings and origin (a table)")
    add_config_args(pl)
    pl.set_defaults(func=cmd_list)

    ps = verbs.add_parser("show", help="a baseline's workflow source for one benchmark")
    add_config_args(ps)
    ps.add_argument("name", help="baseline name (see `w4s baselines list`)")
    add_benchmarks_arg(ps, "the benchmark, e.g. gsm8k (required)")
    ps.add_argument("--out", "-o", default=None, metavar="FILE",
                    help="write the workflow here instead of printing it")
    ps.set_defaults(func=cmd_show)


def cmd_list(args: argparse.Namespace) -> int:
    from w4s_ray.baselines import FAMILIES, list_baselines
    from w4s_ray.commands.data import _table

    rows = [[b.name, b.title, b.description, b.settings, b.origin] for b in list_baselines()]
    print(_table(["name", "method", "what it does", "calls / sampling", "origin"], rows))
    print(f"\nfamilies: {', '.join(FAMILIES)} (every baseline renders for each; "
          "`w4s baselines show NAME --benchmark B`)")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from w4s_ray.baselines import render_baseline
    from w4s_ray.benchmarks import get_benchmark
    from w4s_ray.cli import one_benchmark
    from w4s_ray.errors import ConfigError, W4SError
    from w4s_ray.utils.io import atomic_write_text

    name = one_benchmark(args, "baselines show")
    if name is None:
        raise ConfigError("baselines show: give the benchmark with -b NAME")
    bench = get_benchmark(name, args.cfg.data_dir())
    source = render_baseline(args.name, bench.kind, bench.answer_format)
    if args.out:
        try:
            atomic_write_text(args.out, source)
        except OSError as exc:
            raise W4SError(f"cannot write {args.out}: {exc.strerror or exc}") from None
        print(f"wrote {args.out} ({args.name} for {bench.name})", file=sys.stderr)
    else:
        sys.stdout.write(source)
    return 0
