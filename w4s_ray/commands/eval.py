"""`w4s eval`: evaluate one workflow file on a benchmark split with the configured executor.

    w4s eval --workflow wf.py --benchmark gsm8k --split valid [--limit N] [--json] [--ray]

The file may hold plain Python defining `solver(agent, task)` or a meta-agent reply with the
workflow in a fenced block. Without `--ray` the evaluation runs in this process (the workflow
still runs in its sandbox child); `--ray` uses an `EvaluatorPool`. Before evaluating, the
executor gets one cheap preflight call (`executor.preflight`), so a stopped simulator, a bad
key, an unknown model or provider is one clear error line instead of every item scoring 0; an
endpoint that starts failing that way mid-run stops the evaluation the same way. A simulated
executor is named as such in the summary.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    from w4s_ray.cli import add_config_args

    p = subparsers.add_parser(
        "eval", help="evaluate a workflow file on a benchmark split",
        description="Run a workflow (solver(agent, task)) on a benchmark split with the "
                    "configured executor and report accuracy, errors, calls and cost.")
    p.add_argument("--workflow", "-w", required=True, metavar="FILE",
                   help="Python file defining solver(agent, task), or a reply with a code block")
    p.add_argument("--benchmark", "-b", default=None, help="benchmark name (default: config)")
    p.add_argument("--split", choices=["valid", "test"], default="valid")
    p.add_argument("--limit", type=int, default=None, help="first N items only")
    p.add_argument("--seed", type=int, default=0, help="sample seed (0: the plain numbering)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--ray", action="store_true", help="evaluate on an EvaluatorPool")
    add_config_args(p)
    p.set_defaults(func=_eval)


def read_workflow(path: str) -> str:
    """The workflow code in FILE (plain Python, or the last fenced block defining solver)."""
    from pathlib import Path

    from w4s_ray.workflow.errors import WorkflowError
    from w4s_ray.workflow.extract import check_workflow, extract_workflow

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkflowError(f"workflow file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkflowError(f"cannot read workflow file {path}: {exc}") from None
    try:
        return extract_workflow(text) if "```" in text else check_workflow(text)
    except WorkflowError as exc:
        raise WorkflowError(f"{path}: {exc}") from None


def _eval(args: argparse.Namespace) -> int:
    import asyncio

    from w4s_ray import console
    from w4s_ray.benchmarks import get_benchmark
    from w4s_ray.errors import DataError
    from w4s_ray.executor.preflight import check_executor
    from w4s_ray.workflow.evaluate import EvalRequest

    cfg = args.cfg
    code = read_workflow(args.workflow)
    name = args.benchmark or cfg.benchmark
    bm = get_benchmark(name, cfg.data_dir())
    if args.limit is not None and args.limit < 1:
        raise DataError(f"--limit must be >= 1, got {args.limit}")
    limit = args.limit if args.limit is not None else cfg.eval.limit
    bm.load(args.split)  # a missing/corrupt data file is reported before anything starts
    info = check_executor(cfg.executor)  # one cheap call: a fatal endpoint stops us here
    req = EvalRequest(code=code, benchmark=bm.name, split=args.split, limit=limit,
                      seed=args.seed, tag="cli")
    if args.ray:
        from w4s_ray.runtime.evaluators import EvaluatorPool

        pool = EvaluatorPool(cfg, num_evaluators=1)
        try:  # a user error in the actor (e.g. ExecutorFatal) comes back as the plain error
            result = pool.evaluate([req])[0]
        finally:
            pool.shutdown()
    else:
        quiet = args.json or not console.progress_enabled()
        result = asyncio.run(_evaluate_here(req, bm, cfg, quiet=quiet, info=info))
    if args.json:
        out = result.summary()
        out.update(item_ids=result.item_ids, scores=result.scores,
                   item_errors=result.item_errors, executor=info,
                   simulated=bool(info["simulated"]))
        print(json.dumps(out))
    else:
        print(_summary_text(result, info))
    return 0


async def _evaluate_here(req, bm, cfg, *, quiet: bool, info: dict | None = None):
    from tqdm import tqdm

    from w4s_ray.executor.client import ExecutorClient
    from w4s_ray.executor.preflight import simulated_note
    from w4s_ray.workflow.evaluate import evaluate, select_items

    total = len(select_items(bm, req))
    with ExecutorClient(cfg.executor) as client, tqdm(
        total=total, desc=f"{bm.name}/{req.split}{simulated_note(info)}",
        unit="item", disable=quiet or None, file=sys.stderr,
    ) as bar:
        return await evaluate(req, bm, client, cfg.sandbox, cfg.eval, progress=bar.update)


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
        ("executor calls", f"{r.calls} ({r.cache_hits} cached samples)"),
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
