"""The serving side of generation: chat messages in, batched completions out (no Ray in here).

`ChatGenerator` wraps one loaded model and its `BatchEngine` (`w4s_ray.models.engine`, the
continuous-batching loop shared with the local meta-agent backend):
- `prepare(messages, params)`: prompt ids from the model's chat template (special-token text in
  messages stays text), the context-window check (`ContextLengthError`) or, with
  `truncate_prompt`, the prompt fitted with room for `max_tokens` by the meta-agent's rule
  (`meta_agent.context`: system prompt and task kept, oldest history dropped first);
- `stream(ids, params, json_object)`: an async iterator of engine events for one request, for
  an asyncio server: the engine runs in its own thread (`start()`), events cross over with
  `call_soon_threadsafe`; leaving the iterator early (client gone, task cancelled) cancels the
  request, so its rows leave the batch at the next step;
- `generate(messages, params)`: the same, blocking (tests, scripts).

Sampling semantics (`w4s_ray.models.sampling`): temperature 0 is greedy (all n choices then
identical); choice i of a seeded request uses seed + i; `stop` cuts the text before the first
stop string (`finish_reason` "stop"); "length" when `max_tokens` or the context ran out;
`usage.completion_tokens` sums the tokens each choice generated (its end token included).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from w4s_ray.meta_agent.context import fit_chat
from w4s_ray.models.chat import PromptFormatError, encode_chat
from w4s_ray.models.engine import (
    BatchEngine,
    ChoiceOut,
    ContextLengthError,
    EngineRequest,
    RequestCancelled,
)
from w4s_ray.models.sampling import SamplingParams
from w4s_ray.serve.checkpoint import ResolvedModel

__all__ = ["ChatGenerator", "ContextLengthError", "PromptFormatError", "SamplingParams",
           "GenerationOutput", "Completion", "RequestCancelled"]

log = logging.getLogger(__name__)

Completion = ChoiceOut


@dataclass
class GenerationOutput:
    completions: list[ChoiceOut]
    prompt_tokens: int
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.completions)


class ChatGenerator:
    """One loaded model + tokenizer + batching engine."""

    def __init__(self, model: Any, tokenizer: Any, *, name: str = "model",
                 eos_ids: list[int] | None = None, max_rows: int = 16,
                 max_batch_tokens: int | None = None) -> None:
        from w4s_ray.models.loading import end_token_ids

        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.truncate_prompt = False
        self.truncated_prompts = 0
        eos = eos_ids or end_token_ids(model, tokenizer)
        if not eos:
            raise ValueError(f"{name}: neither the model nor the tokenizer defines an eos token")
        self.engine = BatchEngine(
            model, tokenizer, eos, max_rows=max_rows, max_batch_tokens=max_batch_tokens,
            max_positions=getattr(model.config, "max_position_embeddings", None),
        )

    @property
    def max_positions(self) -> int | None:
        return self.engine.max_positions

    @max_positions.setter
    def max_positions(self, value: int | None) -> None:
        self.engine.max_positions = value

    @classmethod
    def load(
        cls, resolved: ResolvedModel, *, dtype: str = "auto", device: str | None = None,
        name: str | None = None, threads: int | None = None, max_rows: int = 16,
        max_batch_tokens: int | None = None,
    ) -> ChatGenerator:
        """Load weights (+ merged LoRA) and tokenizer."""
        from w4s_ray.models.loading import load_model

        lm = load_model(resolved.model_path, adapter_path=resolved.adapter_path,
                        tokenizer_path=resolved.tokenizer_path, dtype=dtype, device=device,
                        threads=threads, name=name)
        return cls(lm.model, lm.tokenizer, name=lm.name, eos_ids=lm.eos_ids,
                   max_rows=max_rows, max_batch_tokens=max_batch_tokens)

    def start(self) -> None:
        self.engine.start()

    def close(self) -> None:
        self.engine.close()

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        return encode_chat(self.tokenizer, messages)

    def _encode(self, messages: list[dict[str, str]], generation_prompt: bool) -> list[int]:
        return encode_chat(self.tokenizer, messages, add_generation_prompt=generation_prompt)

    def prepare(self, messages: list[dict[str, str]], params: SamplingParams) -> list[int]:
        ctx, max_new = self.max_positions, params.max_tokens
        if ctx and self.truncate_prompt:
            # Room for the reply: max_tokens, at most a third of the context (as the local
            # backend), so a 4096-token request to a 1536-token model keeps a usable prompt;
            # the prompt is fitted by the local backend's and RWR's rule (meta_agent.context).
            budget = max(16, self.max_positions - min(max_new, self.max_positions // 3))
            fit = fit_chat(messages, self._encode, budget)
            self.truncated_prompts += int(fit.truncated)
            ids = fit.fitted_ids()
        else:
            ids = self.prompt_ids(messages)
        if ctx and len(ids) >= ctx:
            raise ContextLengthError(
                f"the prompt is {len(ids)} tokens; this model's context window is {ctx} tokens"
            )
        return ids

    def generate(self, messages: list[dict[str, str]], params: SamplingParams, *,
                 json_object: bool = False) -> GenerationOutput:
        ids = self.prepare(messages, params)
        req = self.engine.generate(EngineRequest(ids, params, json_object=json_object))
        return GenerationOutput(list(req.choices), len(ids), req.seed)

    async def stream(self, ids: list[int], params: SamplingParams, *,
                     json_object: bool = False, schema: dict | None = None
                     ) -> AsyncIterator[tuple]:
        """Events of one request: ("delta", i, text), ("finish", i, reason, tokens), then
        ("done", EngineRequest). Raises the engine's error, if any. JSON mode here shapes the
        reply (starts it with '{', ends it where that object closes); `schema` is checked by
        the caller afterwards (this engine does no grammar-constrained decoding)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        def deliver(event: tuple) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, event)
            except RuntimeError:  # the event loop is gone (server shutting down)
                pass

        req = self.engine.submit(EngineRequest(ids, params, json_object=json_object,
                                               on_event=deliver))
        try:
            while True:
                event = await queue.get()
                if event[0] == "done":
                    if req.error is not None:
                        raise req.error
                    yield ("done", req)
                    return
                if event[0] == "error":
                    raise event[1]
                yield event
        finally:
            if not req.done.is_set():
                self.engine.cancel(req)

    @property
    def queued(self) -> int:
        """Requests waiting for a full batch to make room (the bounded queue)."""
        return self.engine.backlog()

    def stats(self) -> dict[str, int]:
        e = self.engine
        return {"active_rows": e.active_rows, "waiting": e.waiting, "queued": self.queued,
                "max_batch_size": e.max_rows, "completed": e.completed, "cancelled": e.cancelled,
                "peak_rows": e.peak_rows}

    def retry_after_s(self) -> int:
        return self.engine.retry_after_s()
