"""`w4s optimize`: run W4S on one benchmark with the configured meta-agent and executor.

Writes a run directory (resolved config, every workflow, per-turn metrics, cost, the final
workflow, final.json with valid/test accuracy, report.md + curve.png); `--resume` continues a
killed, budget-stopped or executor-stopped run from its last completed turn (and refuses a
directory that holds no run). Before Ray starts: the run directory, the data, the meta-agent
(a missing checkpoint is one line) and the executor (one cheap preflight call; a bad key,
unknown model or provider is one line), so nothing is spent on a run that cannot work.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from w4s_ray.cli import add_config_args

    p = subparsers.add_parser(
        "optimize", help="optimize a workflow for one benchmark (W4S turns, then one test run)",
        description="Run the W4S loop on one benchmark: each turn the meta-agent proposes "
                    "workflows, they are evaluated on validation, the best is kept; at the end "
                    "the best workflow by validation accuracy is evaluated once on test.",
    )
    add_config_args(p)
    p.add_argument("--benchmark", "-b", help="benchmark name (default: config `benchmark`)")
    p.add_argument("--turns", type=int, help="number of turns (default: rlao.turns)")
    p.add_argument("--run-dir", help="output directory (default: <run_dir>/optimize/<benchmark>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --run-dir from its last completed turn")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from w4s_ray.benchmarks import check_benchmarks, get_benchmark
    from w4s_ray.cli import show_progress
    from w4s_ray.errors import ConfigError
    from w4s_ray.executor.preflight import check_executor, simulated_note
    from w4s_ray.meta_agent import check_meta_agent
    from w4s_ray.rlao.loop import TaskSpec
    from w4s_ray.rlao.optimize import optimize
    from w4s_ray.rlao.runs import preflight
    from w4s_ray.runtime.evaluators import EvaluatorPool
    from w4s_ray.runtime.meta_agent_actor import make_hosted_meta_agent, stop
    from w4s_ray.runtime.ray_init import ray_session

    cfg = args.cfg
    name = check_benchmarks([args.benchmark or cfg.benchmark])[0]
    if args.turns is not None and args.turns < 0:
        raise ConfigError(f"--turns must be >= 0, got {args.turns}")
    run_dir = Path(args.run_dir or Path(cfg.run_dir) / "optimize" / name)
    preflight(run_dir, cfg, args.resume)  # bad dir / corrupt rows: fail before starting Ray
    bm = get_benchmark(name, data_dir=cfg.data_dir())
    bm.check_files()  # missing data, meta-agent or a failing executor: one line, before Ray
    check_meta_agent(cfg)
    info = check_executor(cfg.executor)
    spec = TaskSpec.from_benchmark(bm, cfg.rlao.protocol)

    with ray_session(cfg.ray):
        evaluator = agent = None
        try:
            evaluator = EvaluatorPool(cfg)
            agent = make_hosted_meta_agent(cfg)
            final = optimize(cfg, spec, run_dir, evaluator, agent, turns=args.turns,
                             resume=args.resume, progress=show_progress(args), executor=info)
        finally:
            if agent is not None:
                stop(agent)
            if evaluator is not None:
                evaluator.close()
    test = final["test_accuracy"]
    print(f"{name}: best '{final['best']}' valid {final['valid_accuracy']:.3f} "
          f"test {test if test is None else round(test, 3)} ${final['dollars']:.4f} spent "
          f"(cache hits would have cost ${final.get('cached_dollars') or 0.0:.4f})"
          f"{simulated_note(info)} -> {run_dir / 'report.md'}")
    return 0
