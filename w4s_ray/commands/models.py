"""`w4s models`: prepare and inspect model inputs (docs/MODELS.md).

    w4s models list                       # presets: installed? prepared? where?
    w4s models prepare smollm2 [--out DIR] [--fresh]
    w4s models resolve SPEC               # the local directory a model spec loads from

`prepare` converts a GGUF shipped inside an installed Python package into a normal checkpoint
under `models.dir` (default runs/models); it installs and downloads nothing. `resolve` runs the
same resolver every stage uses (HF dir, .gguf file, preset name, hub id), converting a GGUF into
the cache on first use, and prints where the checkpoint is.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from w4s_ray.cli import add_config_args

    p = subparsers.add_parser(
        "models", help="prepare and inspect model inputs (GGUF, presets, hub ids)",
        description="Model inputs every stage accepts: an HF directory, a .gguf file, a "
                    "prepared preset name, or a hub id. See docs/MODELS.md.",
    )
    sub = p.add_subparsers(dest="models_cmd", metavar="COMMAND")
    pl = sub.add_parser("list", help="known presets and whether they are prepared")
    add_config_args(pl)
    pl.set_defaults(func=_list)
    pp = sub.add_parser("prepare", help="convert a preset's packaged GGUF into a checkpoint")
    add_config_args(pp)
    pp.add_argument("name", help="preset name (see `w4s models list`)")
    from w4s_ray.cli import add_out_arg

    add_out_arg(pp, "models directory (models.dir; default runs/models)")
    pp.add_argument("--fresh", "--force", dest="fresh", action="store_true",
                    help="convert again even if prepared (--force: the older name)")
    pp.set_defaults(func=_prepare)
    pr = sub.add_parser("resolve", help="print the local checkpoint directory of a model spec")
    add_config_args(pr)
    pr.add_argument("spec", help="HF directory, .gguf file, preset name or hub id")
    pr.set_defaults(func=_resolve)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _list(args: argparse.Namespace) -> int:
    from w4s_ray.errors import W4SError
    from w4s_ray.models import presets

    mdir = args.cfg.models.dir
    print("| preset | package | prepared | directory | model |")
    print("| --- | --- | --- | --- | --- |")
    for name, pr in sorted(presets.PRESETS.items()):
        try:
            presets.preset_gguf(pr)
            installed = pr.pip_name
        except W4SError:
            installed = f"{pr.pip_name} (not installed)"
        prepared = "yes" if presets.is_prepared(pr, mdir) else "no"
        print(f"| {name} | {installed} | {prepared} | {presets.prepared_dir(pr, mdir)} | "
              f"{pr.description} |")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    import time

    from w4s_ray.models import presets

    mdir = args.out or args.cfg.models.dir
    preset = presets.get_preset(args.name)
    print(f"preparing {args.name}: {preset.description}", flush=True)
    t0 = time.monotonic()
    out, rec, converted = presets.prepare(args.name, mdir, force=args.fresh)
    if converted:
        size = sum(f.stat().st_size for f in out.iterdir() if f.is_file()) / 2**20
        print(f"converted {rec['gguf']} -> {out} ({rec['parameters'] / 1e6:.1f} M parameters, "
              f"{size:.0f} MiB, {time.monotonic() - t0:.0f} s)")
    else:
        print(f"already prepared: {out} (use --fresh to convert again)")
    print(f"use it as: --model {out}  (or the preset name '{args.name}' with models.dir={mdir})")
    return 0


def _resolve(args: argparse.Namespace) -> int:
    from w4s_ray.models.resolve import resolve_for

    print(resolve_for(args.cfg.models, args.spec))
    return 0
