"""`w4s meta-agent`: the meta-agent's own tools. Sub-verb `init-tiny` builds the offline model."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from w4s_ray.cli import add_benchmarks_arg, add_config_args, add_out_arg

    p = subparsers.add_parser("meta-agent", help="meta-agent tools (init-tiny)")
    sub = p.add_subparsers(dest="meta_agent_cmd", metavar="CMD")
    init = sub.add_parser(
        "init-tiny",
        help="build the tiny offline meta-agent and warm-start it on the seed workflows",
        description="Trains a local BPE tokenizer, builds a small Llama model (config section "
        "`tiny`), warm-starts it on W4S prompts paired with seed workflows and variations, and "
        "reports how often it emits a parseable solver. No hub access.",
    )
    add_config_args(init)
    add_out_arg(init, "output directory (tiny.out_dir); the model goes to OUT/model")
    init.add_argument("--steps", type=int, help="warm-start steps (tiny.warmstart_steps)")
    add_benchmarks_arg(init, "benchmarks to warm-start on (default: all eleven)")
    init.add_argument("--samples", type=int,
                      help="samples per benchmark for the parse-rate check (tiny.parse_samples)")
    init.set_defaults(func=_init_tiny)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _init_tiny(args: argparse.Namespace) -> int:
    from w4s_ray.errors import ConfigError
    from w4s_ray.storage import require_local
    from w4s_ray.train.tiny import init_tiny

    require_local(args.out or args.cfg.tiny.out_dir, "--out" if args.out else "tiny.out_dir")
    if args.steps is not None and args.steps < 0:
        raise ConfigError("--steps must be >= 0")
    if args.samples is not None and args.samples < 1:
        raise ConfigError("--samples must be >= 1")
    from w4s_ray.cli import benchmarks_of

    benches = benchmarks_of(args)
    if benches:
        from w4s_ray.benchmarks import get_benchmark

        for b in benches:
            get_benchmark(b)  # unknown name -> DataError listing the known ones
    rep = init_tiny(args.cfg.tiny, out_dir=args.out, benchmarks=benches, steps=args.steps,
                    samples_per_benchmark=args.samples, protocol=args.cfg.rlao.protocol)
    print(f"tiny meta-agent: {rep['model_dir']}; warm start {rep['steps']} steps, loss "
          f"{rep['loss_first'] or 0:.3f} -> {rep['loss_last'] or 0:.3f}; parseable solver rate "
          f"{rep['parse_rate']:.2f} ({rep['k']} samples x {len(rep['benchmarks'])} benchmarks "
          f"at T={rep['temperature']})")
    return 0
