"""`w4s compare`: do a meta-agent's sampled workflows score better than another's?

Typical use after `w4s train`: `w4s compare -c experiments/demo.yaml --model
warm=runs/demo/tiny-meta-agent/model --model trained=runs/demo/train/model`. The first model is
the baseline of the paired differences. Writes compare.md / compare.json / compare.png.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from w4s_ray.cli import add_benchmarks_arg, add_config_args, add_out_arg, add_restart_args

    p = subparsers.add_parser(
        "compare", help="compare meta-agents by the validation accuracy of workflows they sample",
        description="Sample workflows from each local meta-agent model in the first-turn W4S "
                    "state of each benchmark, score every sample on validation (no working "
                    "workflow = 0), and report means per model, seed and benchmark with paired "
                    "differences against the first model.",
    )
    add_config_args(p)
    p.add_argument("--model", "-m", action="append", default=[], metavar="NAME=PATH",
                   help="a model: HF directory, .gguf file, prepared preset or hub id "
                        "(repeat; first = baseline)")
    add_benchmarks_arg(p, "benchmarks to compare on (default: config compare.benchmarks, "
                       "else `benchmarks`)")
    p.add_argument("--samples", type=int,
                   help="workflows per (seed, benchmark) and model (default: compare.samples)")
    p.add_argument("--seeds", help="comma-separated sampling seeds (default: compare.seeds)")
    add_out_arg(p, "output directory (default: <run_dir>/compare)")
    add_restart_args(p, "comparison (without either, one with the same settings is continued)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from w4s_ray.benchmarks import check_benchmarks, get_benchmark
    from w4s_ray.cli import benchmarks_of, show_progress
    from w4s_ray.errors import ConfigError
    from w4s_ray.executor.preflight import check_executor, simulated_note
    from w4s_ray.runtime.policy_compare import (
        check_local_models,
        clear_comparison,
        compare_policies,
        parse_model_args,
    )
    from w4s_ray.runtime.ray_init import ray_session

    cfg = args.cfg
    models = parse_model_args(args.model)
    check_local_models(models, cfg.models)
    names = check_benchmarks(benchmarks_of(args) or cfg.compare.benchmarks or cfg.benchmarks)
    seeds = list(cfg.compare.seeds)
    if args.seeds is not None:
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            raise ConfigError(f"--seeds {args.seeds!r}: expected comma-separated integers") from None
    samples = cfg.compare.samples if args.samples is None else args.samples
    if samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {samples}")
    if not seeds:
        raise ConfigError("--seeds: give at least one seed")
    for name in names:
        get_benchmark(name, data_dir=cfg.data_dir()).check_files()
    info = check_executor(cfg.executor)
    from w4s_ray import storage

    where = args.out or storage.join(cfg.run_dir, "compare")
    with storage.staged(where, cfg.storage, what="--out" if args.out else "run_dir") as st:
        out = Path(st.path)  # a URI's current content is downloaded first
        if args.resume and not (out / "samples.jsonl").exists():
            raise ConfigError(f"--resume: {where} holds no comparison to resume; check the "
                              "directory, or drop --resume to start one")
        if args.fresh:
            clear_comparison(out)
        with ray_session(cfg.ray):
            summary = compare_policies(cfg, models, names, out, samples=samples, seeds=seeds,
                                       progress=show_progress(args))
    for m in summary["models"]:
        p = summary["per_model"][m]
        line = (f"{m}: mean valid acc of a sample {100 * p['mean_accuracy']:.1f}% "
                f"(valid rate {100 * p['valid_rate']:.0f}%, {p['samples']} samples)")
        if d := p.get("diversity"):
            line += (f"; {d['distinct_mean']:.1f} distinct workflows of {d['samples_per_cell']} "
                     f"per cell ({d['distinct_valid_mean']:.1f} valid), "
                     f"{d['beat_best_seed']} beat the best seed")
        if m in summary["paired"]:
            d = summary["paired"][m]
            line += (f"; vs {d['vs']}: {100 * d['mean_diff']:+.1f} points "
                     f"(stderr {100 * d['stderr']:.1f})")
        print(line)
    print(f"report{simulated_note(info)}: {out / 'compare.md'}")
    return 0
