"""`w4s eval`: evaluate one workflow file on a benchmark split with the configured executor.

    w4s eval --workflow wf.py --benchmark gsm8k --split valid [--limit N] [--json] [--ray]

The file may hold plain Python defining `solver(agent, task)` or a meta-agent reply with the
workflow in a fenced block. Without `--ray` the evaluation runs in this process (the workflow
still runs in its sandbox child); `--ray` uses an `EvaluatorPool`. Before evaluating, the
executor gets one cheap preflight call (`executor.preflight`), so a stopped simulator, a bad
key, an unknown model or provider is one clear error line instead of every item scoring 0; an
endpoint that starts failing that way mid-run stops the evaluation the same way. A simulated
executor is named as such in the summary. The evaluation itself is `w4s_ray.api.evaluate`.
"""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    from w4s_ray.cli import add_benchmarks_arg, add_config_args

    p = subparsers.add_parser(
        "eval", help="evaluate a workflow file on a benchmark split",
        description="Run a workflow (solver(agent, task)) on a benchmark split with the "
                    "configured executor and report accuracy, errors, calls and cost.")
    p.add_argument("--workflow", "-w", required=True, metavar="FILE",
                   help="Python file defining solver(agent, task), or a reply with a code block")
    add_benchmarks_arg(p, "the benchmark (default: config `benchmark`)")
    p.add_argument("--split", choices=["valid", "test"], default="valid")
    p.add_argument("--limit", type=int, default=None, help="first N items only")
    p.add_argument("--seed", type=int, default=0, help="sample seed (0: the plain numbering)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--ray", action="store_true", help="evaluate on an EvaluatorPool")
    add_config_args(p)
    p.set_defaults(func=_eval)


def read_workflow(path: str) -> str:
    """The workflow code in FILE (plain Python, or the last fenced block defining solver)."""
    from w4s_ray.api import read_workflow as read

    return read(path)


def _eval(args: argparse.Namespace) -> int:
    from w4s_ray import api
    from w4s_ray.benchmarks import get_benchmark
    from w4s_ray.cli import one_benchmark
    from w4s_ray.errors import DataError
    from w4s_ray.executor.preflight import check_executor

    cfg = args.cfg
    code = read_workflow(args.workflow)
    bm = get_benchmark(one_benchmark(args, "eval") or cfg.benchmark, cfg.data_dir())
    if args.limit is not None and args.limit < 1:
        raise DataError(f"--limit must be >= 1, got {args.limit}")
    bm.load(args.split)  # a missing/corrupt data file is reported before anything starts
    info = check_executor(cfg.executor)  # one cheap call: a fatal endpoint stops us here
    result = api.evaluate(code, cfg, benchmark=bm.name, split=args.split, limit=args.limit,
                          seed=args.seed, ray=args.ray, executor_info=info,
                          progress=False if args.json else None)
    if args.json:
        out = result.summary()
        out.update(item_ids=result.item_ids, scores=result.scores,
                   item_errors=result.item_errors, executor=info,
                   simulated=bool(info["simulated"]))
        print(json.dumps(out))
    else:
        print(_summary_text(result, info))
    return 0


def _summary_text(r, info: dict | None = None) -> str:
    from w4s_ray.executor.preflight import simulated_note

    executor = ""
    if info:
        kind = "simulated: the w4s simulator, not an LLM" if info["simulated"] else \
            info["provider"]
        executor = f"{info['model']} at {info['endpoint']} ({kind})"
    rows = [
        ("executor", executor or "n/a"),
        ("benchmark", f"{r.benchmark} ({r.split})"),
        ("scoring", r.scoring),
        ("accuracy", f"{r.accuracy * 100:.2f}% of {r.n} items"),
        ("errors", ", ".join(f"{k}: {v}" for k, v in sorted(r.errors.items())) or "none"),
        ("executor calls", f"{r.calls} ({r.cache_hits} cached samples)"
                           + (f"; {r.capped_calls} asked for more than executor.max_tokens_cap "
                              f"and were sent the cap" if r.capped_calls else "")),
        ("tokens", f"{r.prompt_tokens} prompt + {r.completion_tokens} completion"),
        ("cost", f"${r.cost_usd:.4f} spent; cache hits would have cost ${r.cached_usd:.4f}"
                 + (f" ({info['price_model']} prices)" if info else "")),
        ("wall time", f"{r.wall_s:.1f} s"),
    ]
    title = f"w4s eval{simulated_note(info)}"
    lines = [title, "", "| metric | value |", "| --- | --- |"] + \
        [f"| {k} | {v} |" for k, v in rows]
    if r.error:
        lines.append(f"\nworkflow error: {r.error}")
    elif r.first_failure:
        f = r.first_failure
        where = f" (line {f['line']}: {f['line_text']})" if f.get("line") else ""
        lines.append(f"\nfirst failing item {f['item_id']}: {f['kind']}: {f['error']}{where}")
    return "\n".join(lines)
