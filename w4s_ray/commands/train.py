"""`w4s train`: RWR fine-tuning of the meta-agent on trajectory Parquet (Ray Train); the stage
itself is `w4s_ray.api.train`."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from w4s_ray.cli import add_config_args, add_out_arg, add_restart_args

    p = subparsers.add_parser(
        "train",
        help="RWR-train the meta-agent on collected trajectories (Ray Train, DeepSpeed/DDP)",
        description="Reward-weighted regression on trajectory Parquet. Settings: the `train` "
        "config section (data, base_model, out_dir, strategy, zero_stage, lora, ...).",
    )
    add_config_args(p)
    p.add_argument("--data", help="trajectory Parquet file or directory (train.data)")
    p.add_argument("--base-model", help="model to start from: HF dir, .gguf file, prepared "
                   "preset or hub id (train.base_model; docs/MODELS.md)")
    add_out_arg(p, "output directory (train.out_dir)")
    add_restart_args(p, "training run (from its latest checkpoint)",
                     fresh_aliases=("--overwrite",))
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from w4s_ray import api

    res = api.train(args.cfg, data=args.data, base_model=args.base_model, out=args.out,
                    resume=args.resume, fresh=args.fresh)
    first = res.history[0]["loss"] if res.history else float("nan")
    last = res.history[-1]["loss"] if res.history else float("nan")
    print(f"trained {res.steps} steps (resumed from {res.resumed_from}); weighted loss "
          f"{first:.4f} -> {last:.4f}; model: {res.model_dir}; "
          f"summary: {res.out_dir / 'train_summary.md'}")
    return 0
