"""`serve.backend: vllm`: vLLM's AsyncLLMEngine inside the same replica and API (GPU nodes).

`VLLMGenerator` has the interface of `generation.ChatGenerator` that the app uses (`prepare`,
`stream`, `queued`, `retry_after_s`, `start`, `close`), so the routes, validation, 429s,
JSON mode and streaming are the same code for both backends. Prompts are encoded by the same
chat encoder (special-token text stays text) and passed as token ids. Sampling settings map
one to one onto `vllm.SamplingParams` (vLLM's top_k -1 = off, our 0 = off); JSON mode asks
vLLM for structured output (guided/structured decoding, whichever this vLLM version offers)
and the app still validates and retries as for the transformers backend. Disconnects abort
the vLLM request. vLLM batches continuously on its own (`serve.max_batch_size` becomes
`max_num_seqs`).

vLLM is imported only here and only when this backend is chosen; it cannot be installed on the
CPU box this project is developed on, so this path is exercised by a test that runs only where
vLLM and a GPU are present (tests/serve/test_vllm_backend.py).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from w4s_ray.meta_agent.context import fit_chat
from w4s_ray.models.chat import encode_chat
from w4s_ray.models.engine import ChoiceOut, ContextLengthError
from w4s_ray.models.sampling import SamplingParams


@dataclass
class _Done:
    """What `stream` ends with, shaped like an `EngineRequest` for the app."""

    choices: list[ChoiceOut]
    prompt_ids: list[int]
    seed: int

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.choices)


def vllm_sampling(params: SamplingParams, *, json_object: bool, schema: dict | None):
    import vllm

    kwargs: dict[str, Any] = dict(
        n=params.n, temperature=params.temperature, top_p=params.top_p,
        top_k=params.top_k if params.top_k > 0 else -1, max_tokens=params.max_tokens,
        seed=params.seed, stop=list(params.stop) or None,
        frequency_penalty=params.frequency_penalty, presence_penalty=params.presence_penalty,
        repetition_penalty=params.repetition_penalty,
    )
    if json_object or schema is not None:
        kwargs.update(_structured(schema))
    return vllm.SamplingParams(**kwargs)


def _structured(schema: dict | None) -> dict[str, Any]:
    """vLLM >= 0.11: `structured_outputs`; older: `guided_decoding`. Neither: validation only."""
    spec = {"json": schema} if schema is not None else {"json_object": True}
    try:
        from vllm.sampling_params import StructuredOutputsParams

        return {"structured_outputs": StructuredOutputsParams(**spec)}
    except ImportError:
        pass
    try:
        from vllm.sampling_params import GuidedDecodingParams

        return {"guided_decoding": GuidedDecodingParams(**spec)}
    except ImportError:
        return {}


class VLLMGenerator:
    def __init__(self, model_path: str, tokenizer_path: str | None, *, dtype: str,
                 max_rows: int, seed: int = 0) -> None:
        from vllm import AsyncEngineArgs, AsyncLLMEngine

        from w4s_ray.models.loading import load_tokenizer

        self.tokenizer = load_tokenizer(tokenizer_path or model_path)
        args = AsyncEngineArgs(model=model_path, tokenizer=tokenizer_path or model_path,
                               dtype=dtype, max_num_seqs=max_rows, seed=seed)
        self.engine = AsyncLLMEngine.from_engine_args(args)
        self.max_positions: int | None = None
        for owner in (self.engine, getattr(self.engine, "engine", None)):  # v1 / v0 layouts
            model_config = getattr(owner, "model_config", None)
            if model_config is not None:
                self.max_positions = int(model_config.max_model_len)
                break
        self.max_rows = max_rows
        self.truncate_prompt = False
        self.truncated_prompts = 0
        self.in_flight = 0
        self.avg_request_s = 1.0
        self.schema: dict | None = None

    def start(self) -> None:  # the engine runs its own loop
        return None

    def close(self) -> None:
        shutdown = getattr(self.engine, "shutdown", None)
        if callable(shutdown):
            shutdown()

    @property
    def queued(self) -> int:
        """Requests beyond what vLLM decodes at once (its own queue)."""
        return max(0, self.in_flight - self.max_rows)

    def stats(self) -> dict[str, int]:
        return {"in_flight": self.in_flight, "queued": self.queued,
                "max_batch_size": self.max_rows}

    def retry_after_s(self) -> int:
        per_slot = self.avg_request_s / max(1, self.max_rows)
        return int(min(60, max(1, math.ceil((self.queued + 1) * per_slot))))

    def prepare(self, messages: list[dict[str, str]], params: SamplingParams) -> list[int]:
        ctx = self.max_positions
        if ctx and self.truncate_prompt:  # the meta-agent's fitting rule (meta_agent.context)
            fit = fit_chat(messages, lambda m, g: encode_chat(
                self.tokenizer, m, add_generation_prompt=g), max(16, ctx - params.max_tokens))
            self.truncated_prompts += int(fit.truncated)
            ids = fit.fitted_ids()
        else:
            ids = encode_chat(self.tokenizer, messages)
        if ctx and len(ids) >= ctx:
            raise ContextLengthError(
                f"the prompt is {len(ids)} tokens; this model's context window is {ctx} tokens"
            )
        return ids

    async def stream(self, ids: list[int], params: SamplingParams, *,
                     json_object: bool = False, schema: dict | None = None
                     ) -> AsyncIterator[tuple]:
        sp = vllm_sampling(params, json_object=json_object, schema=schema)
        rid = uuid.uuid4().hex
        sent = [""] * params.n
        done: list[ChoiceOut | None] = [None] * params.n
        started = time.monotonic()
        self.in_flight += 1
        finished = False
        try:
            async for out in self.engine.generate({"prompt_token_ids": ids}, sp, rid):
                for c in out.outputs:
                    if done[c.index] is not None:
                        continue
                    if len(c.text) > len(sent[c.index]):
                        yield ("delta", c.index, c.text[len(sent[c.index]):])
                        sent[c.index] = c.text
                    if c.finish_reason is not None:
                        reason = "length" if c.finish_reason == "length" else "stop"
                        done[c.index] = ChoiceOut(c.text, reason, len(c.token_ids))
                        yield ("finish", c.index, reason, len(c.token_ids))
            finished = True
            self.avg_request_s = 0.8 * self.avg_request_s + 0.2 * (time.monotonic() - started)
            yield ("done", _Done([c or ChoiceOut("", "stop", 0) for c in done], ids,
                                 params.seed or 0))
        finally:
            self.in_flight -= 1
            if not finished:
                await self.engine.abort(rid)
