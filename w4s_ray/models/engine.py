"""Continuous batching for a transformers causal LM: many requests share every forward pass.

`BatchEngine` keeps one batch of rows (a row = one sequence being generated) and one KV cache.
Each `step()`:
1. admits waiting requests while there is room (`max_rows` rows, `max_batch_tokens` padded
   cache tokens): a request's prompt is prefilled ALONE (no padding, so no fully masked
   positions), its cache is copied to its n rows (greedy requests use one row for all n
   choices), the first tokens are drawn, and the rows join the batch cache left-padded with
   zeros to a common length (an attention mask hides the padding; position ids are per row);
2. runs ONE decode forward pass for every row, draws each row's next token with its own
   settings and generator (`w4s_ray.models.logits`), updates its text, and ends rows at an end
   token, a stop string, the close of a JSON object (JSON mode), `max_tokens`, the context
   window, or cancellation;
3. drops finished rows from the cache and trims padding columns no row needs any more.

A request that arrives mid-generation therefore joins at the next step instead of waiting for
the batch to drain, and a cancelled request frees its rows at the next step. Models whose cache
is not plain per-layer key/value tensors (e.g. recurrent state) fall back to one request at a
time, still batched over its n choices.

Threading: `submit`/`cancel` may be called from any thread; `step` runs in one thread at a
time (`start()` runs the loop in a daemon thread for the server; without it, `generate` drives
the loop in the caller's thread, and concurrent callers share the batch). Events (text deltas, finishes) are delivered
through each request's `on_event` callback from the stepping thread.

Not here: paged attention, chunked prefill, prefix caching across requests, speculative
decoding. For those, serve with vLLM (`serve.backend: vllm`).
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from w4s_ray.models.kvcache import concat_rows, new_cache, plain_layers, trim_left
from w4s_ray.models.logits import RowSampling, choose_tokens, penalty_state, record_token
from w4s_ray.models.sampling import SamplingParams
from w4s_ray.models.textstate import IncrementalText, JsonObjectScan, StopScan

log = logging.getLogger(__name__)

JSON_PREFIX = "{"


class ContextLengthError(ValueError):
    """The prompt already fills the model's context window."""


class EngineClosed(RuntimeError):
    """The engine was shut down before the request finished."""


@dataclass
class ChoiceOut:
    text: str
    finish_reason: str  # "stop" | "length" | "cancelled"
    completion_tokens: int


@dataclass(eq=False)  # identity: two requests with the same prompt are different requests
class EngineRequest:
    """One request: `n` choices of one prompt. Fill the inputs; the engine fills the rest."""

    prompt_ids: list[int]
    params: SamplingParams
    json_object: bool = False  # reply starts with '{' and ends where that object closes
    on_event: Callable[[tuple], None] | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # filled by the engine
    choices: list[ChoiceOut | None] = field(default_factory=list)
    seed: int = 0
    error: BaseException | None = None
    submitted_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    done: threading.Event = field(default_factory=threading.Event)
    cancelled: bool = False

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.choices if c is not None)

    def emit(self, event: tuple) -> None:
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # a broken listener must not stop the batch
                log.exception("request %s: event listener failed", self.id)


class _Row:
    __slots__ = ("req", "indices", "sampling", "text", "stop", "json", "generated", "max_new",
                 "last", "pos", "emitted", "finished", "prefix")

    def __init__(self, req: EngineRequest, indices: list[int], sampling: RowSampling,
                 tokenizer: Any, max_new: int, pos: int, prefix: str) -> None:
        self.req = req
        self.indices = indices
        self.sampling = sampling
        self.text = IncrementalText(tokenizer)
        self.stop = StopScan(req.params.stop)
        self.json = JsonObjectScan() if req.json_object else None
        self.prefix = prefix
        if self.json is not None:
            self.json.feed(prefix)
        self.generated = 0
        self.max_new = max_new
        self.last = -1
        self.pos = pos
        self.emitted = 0
        self.finished: str | None = None

    @property
    def full_text(self) -> str:
        return self.prefix + self.text.text


class BatchEngine:
    def __init__(
        self, model: Any, tokenizer: Any, eos_ids: Sequence[int], *, max_rows: int = 16,
        max_batch_tokens: int | None = None, max_positions: int | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.eos_ids = {int(e) for e in eos_ids}
        if not self.eos_ids:
            raise ValueError("no end-of-sequence token id")
        self.max_rows = max(1, int(max_rows))
        self.max_batch_tokens = max_batch_tokens
        self.max_positions = max_positions
        out_emb = model.get_output_embeddings()
        self.vocab = int(out_emb.weight.shape[0]) if out_emb is not None else len(tokenizer)
        self.device = next(model.parameters()).device
        self.json_prefix_ids = list(tokenizer(JSON_PREFIX, add_special_tokens=False)["input_ids"])
        self.can_merge = True
        self._waiting: deque[EngineRequest] = deque()
        self._rows: list[_Row] = []
        self._cache: Any = None
        self._mask: torch.Tensor | None = None
        self._cv = threading.Condition()
        self._step_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._logits_to_keep = True
        # For Retry-After: seconds a request spends being generated (EMA).
        self.avg_request_s = 1.0
        self.steps = 0
        self.peak_rows = 0
        self.completed = 0
        self.cancelled = 0

    # -- public, any thread -----------------------------------------------------------------

    def submit(self, req: EngineRequest) -> EngineRequest:
        if self._closed:
            raise EngineClosed("the generation engine is shut down")
        need = len(req.prompt_ids) + (len(self.json_prefix_ids) if req.json_object else 0)
        if self.max_positions and need >= self.max_positions:
            raise ContextLengthError(
                f"the prompt is {len(req.prompt_ids)} tokens; this model's context window is "
                f"{self.max_positions} tokens"
            )
        req.choices = [None] * req.params.n
        req.seed = req.params.seed if req.params.seed is not None else secrets.randbits(63)
        req.submitted_at = time.monotonic()
        with self._cv:
            self._waiting.append(req)
            self._cv.notify_all()
        return req

    def cancel(self, req: EngineRequest) -> None:
        """Stop generating for `req`: dropped from the queue now, or its rows leave the batch
        at the next step."""
        with self._cv:
            req.cancelled = True
            queued = req in self._waiting
            if queued:
                self._waiting.remove(req)
            self._cv.notify_all()
        if queued:
            self._finish_cancelled(req)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def backlog(self) -> int:
        """Waiting requests that would NOT fit into the batch's free rows right now: the queue
        a new request would join (requests that only wait for the next step do not count)."""
        free = self.max_rows - len(self._rows)
        behind = 0
        with self._cv:
            for req in self._waiting:
                need = 1 if req.params.greedy else req.params.n
                if behind == 0 and (need <= free or free == self.max_rows):
                    free -= need
                else:
                    behind += 1
        return behind

    @property
    def active_rows(self) -> int:
        return len(self._rows)

    def retry_after_s(self) -> int:
        """A guess of when a queued request would start: queue length x request time / rows."""
        per_slot = self.avg_request_s / max(1, self.max_rows)
        return int(min(60, max(1, math.ceil((self.backlog() + 1) * per_slot))))

    def generate(self, req: EngineRequest, timeout_s: float | None = None) -> EngineRequest:
        """Submit and wait; drives the loop itself when no background loop runs."""
        self.submit(req)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not req.done.is_set():
            if deadline is not None and time.monotonic() > deadline:
                self.cancel(req)
                raise TimeoutError(f"no reply within {timeout_s:.0f} s")
            if self._thread is not None:
                req.done.wait(0.1)
                continue
            with self._step_lock:
                if not req.done.is_set():
                    self.step()
        if req.error is not None:
            raise req.error
        return req

    def start(self) -> None:
        """Run the batching loop in a daemon thread (the server's mode)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="w4s-batch-engine",
                                            daemon=True)
            self._thread.start()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for req in list(self._waiting) + [r.req for r in self._rows]:
            self._fail(req, EngineClosed("the generation engine is shut down"))
        self._waiting.clear()
        self._reset_batch()

    # -- the loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._closed:
            with self._cv:
                while not self._closed and not self._waiting and not self._rows:
                    self._cv.wait(1.0)
            if self._closed:
                return
            with self._step_lock:
                self.step()

    def step(self) -> None:
        """Admit what fits, then one decode pass for every row (caller holds `_step_lock`)."""
        try:
            with torch.inference_mode():
                self._drop_cancelled()
                self._admit()
                if self._rows:
                    self._decode()
        except Exception as exc:  # a broken forward pass fails the requests in it, not the loop
            log.exception("generation step failed")
            for req in {id(r.req): r.req for r in self._rows}.values():
                self._fail(req, exc)
            self._reset_batch()
        self.steps += 1

    # -- admission --------------------------------------------------------------------------

    def _pop_admittable(self) -> EngineRequest | None:
        with self._cv:
            while self._waiting and self._waiting[0].cancelled:
                self._finish_cancelled(self._waiting.popleft())
            if not self._waiting:
                return None
            req = self._waiting[0]
            need = 1 if req.params.greedy else req.params.n
            if self._rows:
                if not self.can_merge or len(self._rows) + need > self.max_rows:
                    return None
                if self.max_batch_tokens:
                    length = max(self._mask.shape[1], len(req.prompt_ids) + 1)
                    if (len(self._rows) + need) * length > self.max_batch_tokens:
                        return None
            return self._waiting.popleft()

    def _admit(self) -> None:
        while (req := self._pop_admittable()) is not None:
            try:
                self._prefill(req)
            except Exception as exc:
                log.exception("prefill failed")
                self._fail(req, exc)

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache: Any):
        kwargs = dict(input_ids=ids, attention_mask=mask, position_ids=pos,
                      past_key_values=cache, use_cache=True)
        if self._logits_to_keep:
            try:
                return self.model(**kwargs, logits_to_keep=1).logits[:, -1, :]
            except TypeError:  # a model class without logits_to_keep
                self._logits_to_keep = False
        return self.model(**kwargs).logits[:, -1, :]

    def _prefill(self, req: EngineRequest) -> None:
        req.started_at = time.monotonic()
        prefix_ids = self.json_prefix_ids if req.json_object else []
        ids = list(req.prompt_ids) + prefix_ids
        n_rows = 1 if req.params.greedy else req.params.n
        cache = new_cache()
        x = torch.tensor([ids], dtype=torch.long, device=self.device)
        logits = self._forward(x, torch.ones_like(x), torch.arange(len(ids), device=self.device)
                               .unsqueeze(0), cache)
        if not plain_layers(cache):
            if self.can_merge:
                log.warning("model cache is not plain key/value tensors: one request at a time")
            self.can_merge = False
        if n_rows > 1:
            cache.batch_repeat_interleave(n_rows)
        room = (self.max_positions - len(ids)) if self.max_positions else req.params.max_tokens
        max_new = max(1, min(req.params.max_tokens, room))
        prefix_text = JSON_PREFIX if req.json_object else ""
        rows = []
        for i in range(n_rows):
            indices = list(range(req.params.n)) if req.params.greedy else [i]
            rows.append(_Row(req, indices, self._row_sampling(req, i), self.tokenizer,
                             max_new, len(ids), prefix_text))
        tokens = choose_tokens(logits.expand(n_rows, -1).clone(), [r.sampling for r in rows])
        for row, tok in zip(rows, tokens, strict=True):
            self._stream(row, len(prefix_text))
            self._advance(row, tok)
        live = [i for i, r in enumerate(rows) if r.finished is None]
        if live:
            if len(live) < n_rows:
                cache.batch_select_indices(torch.tensor(live, device=self.device))
            self._merge(cache, [rows[i] for i in live], len(ids))
        self.peak_rows = max(self.peak_rows, len(self._rows))

    def _row_sampling(self, req: EngineRequest, index: int) -> RowSampling:
        p = req.params
        gen = None
        if not p.greedy:
            gen = torch.Generator().manual_seed((req.seed + index) % (2**64))
        row = RowSampling(
            temperature=p.temperature, top_k=p.top_k, top_p=p.top_p, generator=gen,
            repetition_penalty=p.repetition_penalty, frequency_penalty=p.frequency_penalty,
            presence_penalty=p.presence_penalty,
        )
        if p.penalised:
            row.counts, row.seen = penalty_state(req.prompt_ids, self.vocab)
        return row

    def _merge(self, cache: Any, rows: list[_Row], length: int) -> None:
        new_mask = torch.ones(len(rows), length, dtype=torch.long, device=self.device)
        if self._cache is None:
            self._cache, self._mask, self._rows = cache, new_mask, rows
            return
        total = max(self._mask.shape[1], length)
        concat_rows(self._cache, cache, total)
        self._mask = torch.cat([_pad_left_2d(self._mask, total), _pad_left_2d(new_mask, total)])
        self._rows = self._rows + rows

    # -- decoding ---------------------------------------------------------------------------

    def _decode(self) -> None:
        rows = self._rows
        ids = torch.tensor([[r.last] for r in rows], dtype=torch.long, device=self.device)
        pos = torch.tensor([[r.pos] for r in rows], dtype=torch.long, device=self.device)
        self._mask = torch.cat([self._mask, torch.ones(len(rows), 1, dtype=self._mask.dtype,
                                                       device=self.device)], dim=1)
        logits = self._forward(ids, self._mask, pos, self._cache)
        tokens = choose_tokens(logits, [r.sampling for r in rows])
        for row, tok in zip(rows, tokens, strict=True):
            row.pos += 1
            if row.req.cancelled:
                row.finished = "cancelled"
                continue
            self._advance(row, tok)
        self._prune()

    def _advance(self, row: _Row, tok: int) -> None:
        """Account one new token of `row`; may finish the row (and its request)."""
        row.generated += 1
        row.last = tok
        if tok in self.eos_ids:
            self._emit_text(row, row.text.flush())
            if not row.finished:
                self._end(row, "stop")
            return
        record_token(row.sampling, tok)
        self._emit_text(row, row.text.push(tok))
        if row.finished:
            return
        if row.generated >= row.max_new:
            self._emit_text(row, row.text.flush())
            if not row.finished:
                self._end(row, "length")

    def _emit_text(self, row: _Row, delta: str) -> None:
        """New reply text of `row`: end it at a stop string or the JSON object's close, and
        stream what can no longer turn into a stop string."""
        if not delta or row.finished:
            return
        body = row.text.text  # the reply without the forced prefix
        cut = row.stop.find(body, len(body) - len(delta))
        if row.json is not None:
            end = row.json.feed(delta)
            if end is not None:
                end -= len(row.prefix)
                cut = end if cut is None else min(cut, end)
        if cut is not None:
            row.text.text = body[:cut]
            self._end(row, "stop")
            return
        self._stream(row, len(row.prefix) + row.stop.safe_len(body))

    def _stream(self, row: _Row, upto: int) -> None:
        if upto > row.emitted and row.req.on_event is not None:
            piece = row.full_text[row.emitted:upto]
            for idx in row.indices:
                row.req.emit(("delta", idx, piece))
        row.emitted = max(row.emitted, upto)

    def _end(self, row: _Row, reason: str) -> None:
        row.finished = reason
        text = row.full_text
        self._stream(row, len(text))
        tokens = row.generated + (len(self.json_prefix_ids) if row.req.json_object else 0)
        req = row.req
        for idx in row.indices:
            req.choices[idx] = ChoiceOut(text, reason, tokens)
            req.emit(("finish", idx, reason, tokens))
        if all(c is not None for c in req.choices):
            self._complete(req)

    def _prune(self) -> None:
        keep = [i for i, r in enumerate(self._rows) if r.finished is None]
        for r in self._rows:
            if r.finished == "cancelled" and not r.req.done.is_set():
                self._finish_cancelled(r.req)
        if len(keep) == len(self._rows):
            return
        if not keep:
            self._reset_batch()
            return
        index = torch.tensor(keep, device=self.device)
        self._cache.batch_select_indices(index)
        self._mask = self._mask[index]
        self._rows = [self._rows[i] for i in keep]
        used = (self._mask.sum(dim=0) > 0).nonzero()
        start = int(used[0]) if len(used) else 0
        if start > 0 and self.can_merge:
            trim_left(self._cache, start)
            self._mask = self._mask[:, start:]

    def _drop_cancelled(self) -> None:
        if any(r.req.cancelled for r in self._rows):
            for r in self._rows:
                if r.req.cancelled:
                    r.finished = "cancelled"
            self._prune()

    def _reset_batch(self) -> None:
        self._rows, self._cache, self._mask = [], None, None

    # -- request completion -----------------------------------------------------------------

    def _complete(self, req: EngineRequest) -> None:
        req.finished_at = time.monotonic()
        took = req.finished_at - (req.started_at or req.submitted_at)
        self.avg_request_s = 0.8 * self.avg_request_s + 0.2 * took
        self.completed += 1
        req.done.set()
        req.emit(("done",))

    def _finish_cancelled(self, req: EngineRequest) -> None:
        req.finished_at = time.monotonic()
        req.error = req.error or _Cancelled("request cancelled")
        self.cancelled += 1
        req.done.set()
        req.emit(("done",))

    def _fail(self, req: EngineRequest, exc: BaseException) -> None:
        if req.done.is_set():
            return
        req.error = exc
        req.finished_at = time.monotonic()
        req.done.set()
        req.emit(("error", exc))


class _Cancelled(RuntimeError):
    """The request was cancelled before it finished."""


RequestCancelled = _Cancelled


def _pad_left_2d(m: torch.Tensor, total: int) -> torch.Tensor:
    missing = total - m.shape[1]
    if missing <= 0:
        return m
    return torch.cat([m.new_zeros(m.shape[0], missing), m], dim=1)
