"""Evaluate one workflow on a benchmark split with a given executor (no Ray).

`evaluate(request, benchmark, executor, sandbox, eval_cfg)` is an async function used
in-process (tests, `w4s eval`) and inside Ray evaluator actors alike. It loads the items in
their fixed order, runs the workflow in the `Sandbox` it is given (`w4s_ray.sandbox`; a
`SandboxConfig` builds the configured backend), serves the workflow's agent calls (executor
chats, execute_code, public tests) from this process, scores each returned answer with
`benchmark.score` under `eval.scoring` here — where the gold answers are — with a format hint
for right values the official rule rejected, and counts calls, tokens, dollars and cache hits
itself.

The two data types of the evaluation seam live here: an `EvalRequest` goes from the RLAO loop
to an evaluator, an `EvalResult` comes back (the same two types in-process, in Ray actors and
in tests). A request with `self_check=True` runs strictly on the first `eval.self_check_items`
validation item(s); its first failure (kind, traceback, failing workflow line) travels in
`EvalResult.first_failure`, from which `rlao.prompts.repair_messages` writes the repair prompt.
A validation result also carries `cases`, the question and correct answer of each item it got
wrong, so that `rlao.prompts.format_feedback` can write the W4S feedback (in the evaluator, and
again after racing merges slices) without the driver ever loading a benchmark. Test-split
results carry no cases, and formatting feedback from one raises, so test answers never reach
the meta-agent.

Defaults the evaluator applies: a validation request without item ids or a limit runs on the
first `eval.limit` items; a self-check request without a limit on `eval.self_check_items`.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from w4s_ray.config import EvalConfig, SandboxConfig
from w4s_ray.errors import BudgetExceeded, DataError, ExecutorError, ExecutorFatal
from w4s_ray.sandbox import guard
from w4s_ray.sandbox.base import Sandbox, as_sandbox, run_tests_async
from w4s_ray.sandbox.jsonreply import EXCERPT_CHARS, parse_json_reply, reply_excerpt
from w4s_ray.sandbox.process import hidden_paths
from w4s_ray.sandbox.runner import Abort, RpcFailure
from w4s_ray.utils.held import held
from w4s_ray.workflow.errors import WorkflowError
from w4s_ray.workflow.extract import check_workflow

# A seed offsets the occurrence numbers sent to the executor, so the same workflow evaluated
# with another seed draws other (cached, reproducible) samples; seed 0 is the plain numbering.
SEED_STRIDE = 1_000_003
MAX_RESPONSES = 64
MAX_PROMPT_CHARS = 2_000_000
MAX_CODE_CHARS = 200_000
# The answer `call_json_format_llm` fills in for a key the reply's JSON lacked.
_MISSING_KEY = re.compile(r"^NO \S+ IN DICTIONARY$")


class Executor(Protocol):
    """What evaluation needs from the executor (ExecutorClient, or a fake LM in tests)."""

    async def chat(self, messages: list[dict], temperature: float | None = None, n: int = 1,
                   response_format: Any = None, max_tokens: int | None = None,
                   occurrence: int = 0, tags: dict | None = None) -> Any: ...


@dataclass
class EvalRequest:
    code: str
    benchmark: str
    split: str = "valid"
    limit: int | None = None
    item_ids: list[str] | None = None
    seed: int = 0
    tag: str = ""
    # Strict run on a few validation items whose first failure feeds the repair loop.
    self_check: bool = False
    # RLAO validation noise (`eval.extra_random_items`, w4s protocol): this many items drawn,
    # seeded by the workflow, from the split's pool ("valid" -> "extra", "train" ->
    # "train_extra") and evaluated after the split's own items.
    extra_items: int = 0


@dataclass
class EvalResult:
    benchmark: str
    split: str
    accuracy: float = 0.0
    n: int = 0
    scores: list[float] = field(default_factory=list)
    answers: list[str | None] = field(default_factory=list)
    item_ids: list[str] = field(default_factory=list)
    item_errors: list[str | None] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)  # error kind -> number of items
    error: str | None = None  # workflow-level failure (did not load), else None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cached_usd: float = 0.0  # what the samples served from the cache cost when first fetched
    calls: int = 0
    capped_calls: int = 0  # calls sent with max_tokens lowered to executor.max_tokens_cap
    cache_hits: int = 0
    cache_misses: int = 0
    code_runs: int = 0
    wall_s: float = 0.0
    tag: str = ""
    scoring: str = "official"  # eval.scoring used for `scores`
    # Per item: "value right, format wrong" hint for an officially rejected answer, else None.
    format_hints: list[str | None] = field(default_factory=list)
    # The first failing item, for self-check / repair: kind, error, traceback, workflow line.
    first_failure: dict[str, Any] | None = None
    # The first item whose workflow RAISED (any failure but a malformed return value): the
    # w4s protocol's repair trigger. Same fields as `first_failure`.
    first_exception: dict[str, Any] | None = None
    stdout: str = ""
    stderr: str = ""
    # Validation (and collection split) only: {"index", "question", "answer"} (the correct
    # answer) of EVERY item, in item order: the material of the feedback's cases (w4s shows
    # correct ones too; w4s-ray only those scored below 1). An item whose JSON call got no
    # usable JSON also has "executor_reply": a clipped excerpt of that raw reply.
    cases: list[dict[str, Any]] = field(default_factory=list)
    # W4S feedback text for the meta-agent (validation results of an evaluator; else "").
    feedback: str = ""

    @property
    def accuracy_or_none(self) -> float | None:
        """The accuracy, or None when the workflow failed as a whole (`error` says why)."""
        return None if self.error else self.accuracy

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalResult:
        return cls(**d)

    def summary(self) -> dict[str, Any]:
        keys = ("benchmark", "split", "scoring", "accuracy", "n", "errors", "error", "cost_usd",
                "cached_usd", "calls", "capped_calls", "cache_hits", "prompt_tokens",
                "completion_tokens",
                "wall_s", "tag")
        return {k: getattr(self, k) for k in keys}


def with_defaults(request: EvalRequest, eval_cfg: EvalConfig) -> EvalRequest:
    """The request with the evaluator's default item count filled in (module docstring)."""
    if request.item_ids is not None or request.limit is not None:
        return request
    if request.self_check:
        return replace(request, split="valid", limit=max(1, eval_cfg.self_check_items))
    if request.split == "valid" and eval_cfg.limit is not None:
        return replace(request, limit=eval_cfg.limit)
    return request


NOISE_POOLS = {"valid": "extra", "train": "train_extra"}


def noise_items(bm: Any, request: EvalRequest) -> list[Any]:
    """`request.extra_items` items of the split's noise pool, drawn with a seed derived from the
    workflow code and request seed (the same workflow draws the same items: exact resume).
    Empty when the benchmark has no pool; fewer when the pool is smaller."""
    pool_name = NOISE_POOLS.get(request.split)
    if request.extra_items <= 0 or pool_name is None or request.item_ids is not None:
        return []
    pool = bm.load(pool_name)
    key = hashlib.blake2b(f"{request.seed}\0{request.code}".encode(), digest_size=8).digest()
    rng = random.Random(int.from_bytes(key, "big"))
    return rng.sample(pool, min(request.extra_items, len(pool)))


def select_items(bm: Any, request: EvalRequest) -> list[Any]:
    """The request's items in the split's fixed order (item_ids keep the order given), then
    its noise items."""
    items = bm.load(request.split)
    if request.item_ids is not None:
        by_id = {it.id: it for it in items}
        missing = [i for i in request.item_ids if i not in by_id]
        if missing:
            raise DataError(f"{bm.name} {request.split}: unknown item id {missing[0]!r}")
        items = [by_id[i] for i in request.item_ids]
    if request.limit is not None:
        if request.limit < 0:
            raise DataError(f"limit must be >= 0, got {request.limit}")
        items = items[: request.limit]
    return items + noise_items(bm, request)


class _Stats:
    def __init__(self) -> None:
        self.calls = self.prompt_tokens = self.completion_tokens = self.capped = 0
        self.cache_hits = self.cache_misses = self.code_runs = 0
        # Dollars per call, summed with fsum at the end: calls finish in any order, and a
        # running float sum would make identical runs differ in the last bit (a resumed run's
        # rows would then not equal the uninterrupted run's).
        self.cost_parts: list[float] = []
        self.cached_parts: list[float] = []
        # Per item: excerpt of the last JSON-mode reply without a JSON object, and of the last
        # JSON-mode reply at all (quoted when the answer says a key was missing).
        self.no_json: dict[int, str] = {}
        self.last_json: dict[int, str] = {}

    def note_json_replies(self, idx: int, texts: list[str]) -> None:
        for t in texts:
            kept = t[: 4 * EXCERPT_CHARS]  # all an excerpt can show
            self.last_json[idx] = kept
            if not isinstance(parse_json_reply(t), dict):
                self.no_json[idx] = kept

    def reply_for(self, idx: int, answer: str | None) -> str | None:
        """The raw reply the meta-agent should see for a failed item, clipped; else None."""
        raw = self.no_json.get(idx)
        if raw is None and answer is not None and _MISSING_KEY.match(answer.strip()):
            raw = self.last_json.get(idx)
        return None if raw is None else reply_excerpt(raw)


def _check_llm_params(p: dict) -> dict[str, Any]:
    msgs = p.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise RpcFailure("messages must be a non-empty list", "value")
    total = 0
    clean = []
    for m in msgs:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) \
                or not isinstance(m.get("content"), str):
            raise RpcFailure("each message needs string 'role' and 'content'", "value")
        total += len(m["content"])
        clean.append({"role": m["role"], "content": m["content"]})
    if total > MAX_PROMPT_CHARS:
        raise RpcFailure(f"prompt longer than {MAX_PROMPT_CHARS} characters", "value")
    t, n, mt, occ = p.get("temperature"), p.get("n"), p.get("max_tokens"), p.get("occurrence")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) \
            or not 0.0 <= t <= 2.0:
        raise RpcFailure("temperature must be a number in [0, 2]", "value")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_RESPONSES:
        raise RpcFailure(f"num_of_response must be an integer in [1, {MAX_RESPONSES}]", "value")
    if isinstance(mt, bool) or not isinstance(mt, int) or mt < 1:
        raise RpcFailure("max_completion_tokens must be a positive integer", "value")
    if isinstance(occ, bool) or not isinstance(occ, int) or occ < 0:
        occ = 0
    rf = p.get("response_format")
    return {"messages": clean, "temperature": float(t), "n": n, "max_tokens": mt,
            "occurrence": occ, "response_format": "json_object" if rf == "json_object" else None}


async def evaluate(
    request: EvalRequest,
    benchmark: Any,
    executor: Executor,
    sandbox: Sandbox | SandboxConfig,
    eval_cfg: EvalConfig,
    *,
    call_limiter: asyncio.Semaphore | None = None,
    strict: bool = False,
    hide: tuple[str, ...] = (),
    progress: Any = None,
) -> EvalResult:
    """Run `request.code` on the selected items; see the module docstring.

    `call_limiter` bounds executor calls in flight across evaluations sharing it (one per
    evaluator actor). `strict` stops at the first failing item (self-check). `hide` adds paths
    to cover in the child's mount namespace (the data dir and completion cache always are).
    """
    t0 = time.monotonic()
    sandbox = as_sandbox(sandbox)
    sandbox_cfg = sandbox.cfg
    request = with_defaults(request, eval_cfg)
    strict = strict or request.self_check
    # The first load of a split parses files (up to ~1 s): keep the event loop serving others.
    items = await asyncio.to_thread(select_items, benchmark, request)
    result = EvalResult(benchmark=benchmark.name, split=request.split, tag=request.tag,
                        scoring=eval_cfg.scoring)
    result.item_ids = [it.id for it in items]
    try:
        check_workflow(request.code)
    except WorkflowError as exc:
        return _finish_load_error(result, items, str(exc), None, None, request.code, t0)
    if not items:
        result.wall_s = time.monotonic() - t0
        return result

    stats = _Stats()
    code_sem = asyncio.Semaphore(max(1, sandbox_cfg.max_code_procs))
    cache_path = getattr(getattr(getattr(executor, "cfg", None), "cache", None), "path", None)
    hidden = hidden_paths([str(getattr(benchmark, "data_dir", "") or ""), *hide,
                           *([str(Path(cache_path).expanduser().parent)] if cache_path else [])])
    tags = {"benchmark": benchmark.name, "candidate": request.tag or "-"}

    async def handler(method: str, params: dict, idx: int) -> Any:
        if method == "llm":
            p = _check_llm_params(params)
            p["occurrence"] += request.seed * SEED_STRIDE
            try:
                if call_limiter is not None:
                    with held():  # the evaluator's in-flight cap: not the workflow's time
                        await call_limiter.acquire()
                    try:
                        res = await executor.chat(p.pop("messages"), tags=tags, **p)
                    finally:
                        call_limiter.release()
                else:
                    res = await executor.chat(p.pop("messages"), tags=tags, **p)
            except (BudgetExceeded, ExecutorFatal) as exc:
                # Not the workflow's fault (budget spent; bad key, unknown model, nothing
                # listening...): stop the evaluation rather than fail the candidate (an outage
                # would otherwise become penalised trajectory rows).
                raise Abort(exc) from None
            except ExecutorError as exc:
                raise RpcFailure(str(exc), "executor") from None
            stats.calls += 1
            stats.capped += int(bool(getattr(res, "capped", False)))
            stats.prompt_tokens += int(getattr(res, "prompt_tokens", 0) or 0)
            stats.completion_tokens += int(getattr(res, "completion_tokens", 0) or 0)
            stats.cost_parts.append(float(getattr(res, "cost_usd", 0.0) or 0.0))
            stats.cached_parts.append(float(getattr(res, "cached_usd", 0.0) or 0.0))
            cached = getattr(res, "cached", None) or []
            hits = sum(1 for c in cached if c) if isinstance(cached, list) else int(bool(cached))
            stats.cache_hits += hits
            stats.cache_misses += len(res.texts) - hits
            texts = [str(t) for t in res.texts]
            if p.get("response_format") == "json_object":
                stats.note_json_replies(idx, texts)
            return {"texts": texts}
        if method == "exec":
            code, timeout = params.get("code"), params.get("timeout", 5)
            if not isinstance(code, str) or isinstance(timeout, bool) \
                    or not isinstance(timeout, (int, float)):
                raise RpcFailure("execute_code needs a code string and a timeout", "value")
            refused = guard.refusal(code) if eval_cfg.execute_code_guard else None
            if refused is not None:
                return {"ok": False, "error": refused}
            async with code_sem:
                stats.code_runs += 1
                return await sandbox.execute_code(code, timeout, hidden)
        if method == "public_test":
            sol, entry = params.get("solution"), params.get("entry_point")
            if not isinstance(sol, str) or not isinstance(entry, str):
                raise RpcFailure("test_on_public_test needs solution and entry_point strings",
                                 "value")
            async with code_sem:
                stats.code_runs += 1
                return await run_public_tests(sandbox, benchmark, items[idx], sol, entry)
        raise RpcFailure(f"unknown agent method {method!r}", "value")

    child_items = [
        (k, it.question, {"entry_point": it.meta["entry_point"]}
         if isinstance(it.meta.get("entry_point"), str) else {})
        for k, it in enumerate(items)
    ]
    threads = min(eval_cfg.max_inflight_per_evaluator, len(items))
    run = await sandbox.run_workflow(request.code, child_items, threads=threads,
                                     handler=handler, hide=hidden, strict=strict,
                                     on_item=progress)
    scores = await _score_all(benchmark, items, run.outcomes, code_sem, eval_cfg.scoring)

    result.stdout, result.stderr = run.stdout[-4000:], run.stderr[-4000:]
    if run.load_error is not None:
        le = run.load_error
        out = _finish_load_error(result, items, le.error or "workflow failed to load", le.tb,
                                 le.line, request.code, t0)
        _copy_stats(out, stats)
        return out
    result.format_hints = [None] * len(items)
    for k, it in enumerate(items):
        o = run.outcomes.get(k)
        if o is None:  # strict mode stopped before this item ran
            result.answers.append(None)
            result.item_errors.append(None)
            result.scores.append(0.0)
            continue
        if o.kind is None:
            result.answers.append(o.answer)
            result.item_errors.append(None)
            result.scores.append(scores[k])
            if eval_cfg.scoring == "official" and scores[k] < 1.0 \
                    and getattr(benchmark, "kind", None) != "code":
                result.format_hints[k] = _hint(benchmark, it, o.answer)
        else:
            result.answers.append(None)
            result.item_errors.append(f"{o.kind}: {o.error}")
            result.scores.append(0.0)
            result.errors[o.kind] = result.errors.get(o.kind, 0) + 1
            if result.first_failure is None:
                result.first_failure = _failure(k, it.id, o.kind, o.error, o.tb, o.line,
                                                request.code)
            if result.first_exception is None and o.kind != "bad_return":
                result.first_exception = _failure(k, it.id, o.kind, o.error, o.tb, o.line,
                                                  request.code)
    result.n = len(items)
    result.accuracy = sum(result.scores) / result.n if result.n else 0.0
    _add_cases(result, items, stats)
    if result.errors.get("executor") == result.n:
        result.error = result.first_failure["error"] if result.first_failure else "executor error"
    _copy_stats(result, stats)
    result.wall_s = time.monotonic() - t0
    return result


async def run_public_tests(sandbox: Sandbox, bm: Any, item: Any, solution: str,
                           entry_point: str) -> dict[str, Any]:
    """`agent.test_on_public_test`: the item's PUBLIC tests only (`bm.public_tests(item)`; the
    hidden scoring tests never leave this process), judged by the sandbox.
    {"passed": bool|None, "feedback": str, "exec_error": bool}; None: no public tests."""
    tests = bm.public_tests(item)
    if not tests:
        return {"passed": None, "feedback": "no public tests for this task", "exec_error": False}
    cfg = sandbox.cfg
    res = await run_tests_async(
        sandbox, solution[:MAX_CODE_CHARS], tests, entry_point=entry_point or None,
        timeout_s=cfg.code_exec_timeout_s, memory_mb=min(cfg.memory_mb, 1024))
    if res.passed:
        return {"passed": True, "feedback": "no error", "exec_error": False}
    # "failed" covers both a failing assert and code that raised; an assertion is a test failure.
    exec_error = res.status != "failed" or not res.detail.startswith("AssertionError")
    detail = res.detail or res.status
    if not exec_error:  # a bare assert says nothing: show the public tests that failed
        detail = f"{detail}\nfailed test cases (public tests):\n{tests.strip()[:4000]}"
    return {"passed": False, "feedback": detail, "exec_error": exec_error}


async def _score_all(bm: Any, items: list, outcomes: dict, sem: asyncio.Semaphore,
                     scoring: str) -> list[float]:
    """Scores of answered items. Code benchmarks run hidden tests in processes: off the event
    loop and a few at a time, so RPCs of other evaluations in this process keep flowing."""
    scores = [0.0] * len(items)
    answered = [k for k, it in enumerate(items)
                if outcomes.get(k) is not None and outcomes[k].kind is None]
    if getattr(bm, "kind", None) != "code":
        for k in answered:
            scores[k] = bm.score(items[k], outcomes[k].answer, scoring)
        return scores

    async def one(k: int) -> None:
        async with sem:
            scores[k] = await asyncio.to_thread(bm.score, items[k], outcomes[k].answer, scoring)

    await asyncio.gather(*(one(k) for k in answered))
    return scores


def _hint(bm: Any, item: Any, answer: Any) -> str | None:
    try:
        return bm.format_hint(item, answer)
    except Exception:  # noqa: BLE001 - a hint is advice; it must never fail an evaluation
        return None


def _copy_stats(result: EvalResult, stats: _Stats) -> None:
    result.calls, result.cost_usd = stats.calls, math.fsum(stats.cost_parts)
    result.capped_calls = stats.capped
    result.cached_usd = math.fsum(stats.cached_parts)
    result.prompt_tokens, result.completion_tokens = stats.prompt_tokens, stats.completion_tokens
    result.cache_hits, result.cache_misses = stats.cache_hits, stats.cache_misses
    result.code_runs = stats.code_runs


def _failure(index: int, item_id: str | None, kind: str, error: str | None, tb: str | None,
             line: int | None, code: str) -> dict[str, Any]:
    lines = code.splitlines()
    text = lines[line - 1].strip() if line is not None and 0 < line <= len(lines) else None
    return {"index": index, "item_id": item_id, "kind": kind, "error": error or kind,
            "traceback": tb or "", "line": line if text is not None else None, "line_text": text}


def _finish_load_error(result: EvalResult, items: list, error: str, tb: str | None,
                       line: int | None, code: str, t0: float) -> EvalResult:
    result.n = len(items)
    result.scores = [0.0] * len(items)
    result.answers = [None] * len(items)
    result.item_errors = [f"load_error: {error}"] * len(items)
    result.errors = {"load_error": len(items)} if items else {}
    result.error = error
    result.first_failure = _failure(-1, None, "load_error", error, tb, line, code)
    result.first_exception = result.first_failure
    result.accuracy = 0.0
    _add_cases(result, items)
    result.wall_s = time.monotonic() - t0
    return result


def _add_cases(result: EvalResult, items: list, stats: _Stats | None = None) -> None:
    """Every item's question and correct answer (and the excerpt of a reply with no usable
    JSON), for feedback; never for the test split."""
    if result.split == "test":
        return
    result.cases = []
    for j, it in enumerate(items):
        case = {"index": j, "question": it.question, "answer": it.answer}
        reply = stats.reply_for(j, result.answers[j]) if stats is not None else None
        if reply:
            case["executor_reply"] = reply
        result.cases.append(case)


# ------------------------------------------------------------------------------ self-check


@dataclass
class SelfCheck:
    ok: bool
    kind: str | None = None  # load_error | exception | bad_return | timeout | crashed | ...
    error: str | None = None
    traceback: str = ""
    line: int | None = None  # 1-based line of the workflow code that failed
    line_text: str | None = None
    result: EvalResult | None = None


async def self_check(code: str, benchmark: Any, executor: Executor,
                     sandbox: Sandbox | SandboxConfig, eval_cfg: EvalConfig, *,
                     items: int | None = None) -> SelfCheck:
    """Run `code` strictly on the first `eval_cfg.self_check_items` validation item(s).

    ok=False carries the first failure: its kind, message, traceback from the workflow's own
    frames on, and the failing workflow line. A wrong answer is not a failure here."""
    req = EvalRequest(code=code, benchmark=benchmark.name, split="valid",
                      limit=None if items is None else max(1, items), tag="self-check",
                      self_check=True)
    res = await evaluate(req, benchmark, executor, sandbox, eval_cfg)
    f = res.first_failure
    if f is None:
        return SelfCheck(ok=True, result=res)
    return SelfCheck(ok=False, kind=f["kind"], error=f["error"], traceback=f["traceback"],
                     line=f["line"], line_text=f["line_text"], result=res)
