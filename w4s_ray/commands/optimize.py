"""`w4s optimize`: run W4S on one benchmark with the configured meta-agent and executor.

Writes a run directory (resolved config, every workflow, per-turn metrics, cost, the final
workflow, final.json with valid/test accuracy, report.md + curve.png); `--resume` continues a
killed, budget-stopped or executor-stopped run from its last completed turn (and refuses a
directory that holds no run). Before Ray starts: the run directory, the data, the meta-agent
(a missing checkpoint is one line) and the executor (one cheap preflight call; a bad key,
unknown model or provider is one line), so nothing is spent on a run that cannot work. The stage itself is `w4s_ray.api.optimize`.
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
    from w4s_ray import api
    from w4s_ray.cli import show_progress
    from w4s_ray.executor.preflight import simulated_note

    res = api.optimize(args.cfg, benchmark=args.benchmark, turns=args.turns,
                       run_dir=args.run_dir, resume=args.resume, progress=show_progress(args))
    test = res.test_accuracy
    print(f"{res.benchmark}: best '{res.best}' valid {res.valid_accuracy:.3f} "
          f"test {test if test is None else round(test, 3)} ${res.dollars:.4f} spent "
          f"(cache hits would have cost ${res.cached_dollars or 0.0:.4f})"
          f"{simulated_note(res.executor)} -> {res.report}")
    return 0
