"""`w4s train`: RWR fine-tuning of the meta-agent on trajectory Parquet (Ray Train); the stage
itself is `w4s_ray.api.train`."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from w4s_ray.cli import add_config_args

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
    p.add_argument("--out", help="output directory (train.out_dir)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its latest checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="discard an earlier run's checkpoints in --out and start over")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from w4s_ray import api

    res = api.train(args.cfg, data=args.data, base_model=args.base_model, out=args.out,
                    resume=args.resume, overwrite=args.overwrite)
    first = res.history[0]["loss"] if res.history else float("nan")
    last = res.history[-1]["loss"] if res.history else float("nan")
    print(f"trained {res.steps} steps (resumed from {res.resumed_from}); weighted loss "
          f"{first:.4f} -> {last:.4f}; model: {res.model_dir}; "
          f"summary: {res.out_dir / 'train_summary.md'}")
    return 0
