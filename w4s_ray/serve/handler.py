"""What the server does with one chat-completions request (asyncio, no Ray, no FastAPI).

`ChatHandler.chat(body)` validates the request (`protocol`), encodes the prompt, applies the
queue bound, runs generation on the replica's engine (`generation.ChatGenerator` or
`vllm_engine.VLLMGenerator`, both batching every admitted request together) and returns a
`Reply`: a JSON body with its status and headers, or a stream of server-sent events.

- Bounded queue: when `max_queue` requests already wait for a full batch to make room, the
  reply is 429 `rate_limit_exceeded` with `Retry-After` (seconds, from recent request times).
- Cancellation: if the awaiting task is cancelled (Serve cancels it when the HTTP client
  disconnects or times out) or a stream is closed early, the engine request is cancelled and
  its rows leave the batch at the next decode step.
- JSON mode (`response_format` json_object / json_schema): the engine starts the reply with
  '{' and ends it where that object closes; each choice is then validated (json.loads, and the
  schema with jsonschema). Invalid choices are sampled again with new seeds, up to
  `json_attempts` in all (greedy requests are not retried: they would repeat themselves);
  still invalid is a 422 `json_validation_failed`, never a non-JSON 200.
- Streaming: `chat.completion.chunk` events, the role first, text deltas (text that could
  still become a stop string is held back), a finish chunk per choice, the usage chunk with
  `stream_options.include_usage`, then `data: [DONE]`. JSON-mode replies stream after
  validation. An error after the stream started is sent in-band as `data: {"error": ...}`.
- `usage`: prompt tokens once, completion tokens of the returned choices (retries excluded).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from w4s_ray.models import sampling as defaults
from w4s_ray.models.chat import PromptFormatError
from w4s_ray.models.engine import ContextLengthError, RequestCancelled
from w4s_ray.models.sampling import SamplingParams
from w4s_ray.serve.protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    Choice,
    ProtocolError,
    ResponseMessage,
    Usage,
    error_body,
    json_reply_error,
    parse_chat_request,
)

log = logging.getLogger("ray.serve")


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    stream: AsyncIterator[str] | None = None


def sampling_from_request(req: ChatCompletionRequest, default_max_tokens: int) -> SamplingParams:
    """Request fields -> engine settings; omitted fields take the shared defaults."""

    def pick(value, default):
        return default if value is None else value

    top_k = pick(req.top_k, defaults.DEFAULT_TOP_K)
    return SamplingParams(
        n=req.n,
        temperature=float(pick(req.temperature, defaults.DEFAULT_TEMPERATURE)),
        top_p=float(pick(req.top_p, defaults.DEFAULT_TOP_P)),
        top_k=0 if top_k < 0 else int(top_k),  # vLLM spells "off" as -1
        max_tokens=req.token_limit() or default_max_tokens,
        seed=req.seed,
        stop=tuple(req.stop or ()),
        repetition_penalty=float(pick(req.repetition_penalty,
                                      defaults.DEFAULT_REPETITION_PENALTY)),
        frequency_penalty=float(pick(req.frequency_penalty, defaults.DEFAULT_FREQUENCY_PENALTY)),
        presence_penalty=float(pick(req.presence_penalty, defaults.DEFAULT_PRESENCE_PENALTY)),
    )


def _sse(payload: dict) -> str:
    return f"data: {json.dumps(payload)}\n\n"


def _finish(reason: str) -> str:
    return "length" if reason == "length" else "stop"


class ChatHandler:
    def __init__(self, gen: Any, model_name: str, *, max_n: int = 16,
                 default_max_tokens: int = 512, max_queue: int = 32, json_attempts: int = 3,
                 fingerprint: str | None = None) -> None:
        self.gen = gen
        self.model_name = model_name
        self.max_n = max_n
        self.default_max_tokens = default_max_tokens
        self.max_queue = max_queue
        self.json_attempts = max(1, json_attempts)
        self.fingerprint = fingerprint

    def health(self) -> dict[str, Any]:
        stats = self.gen.stats() if hasattr(self.gen, "stats") else {}
        return {"status": "ok", "model": self.model_name, "pid": os.getpid(), **stats}

    async def chat(self, body: bytes) -> Reply:
        try:
            req = parse_chat_request(body, max_n=self.max_n)
            if req.model is not None and req.model != self.model_name:
                raise ProtocolError(
                    f"model '{req.model}' does not exist; this server serves "
                    f"'{self.model_name}'",
                    status=404, type="not_found_error", param="model", code="model_not_found",
                )
            params = sampling_from_request(req, self.default_max_tokens)
            ids = self.gen.prepare(req.plain_messages(), params)
            if self.gen.queued >= self.max_queue:
                wait = self.gen.retry_after_s()
                raise ProtocolError(
                    f"the server's queue is full ({self.max_queue} requests waiting); retry "
                    f"after {wait} s", status=429, type="rate_limit_error",
                    code="rate_limit_exceeded", headers={"Retry-After": str(wait)},
                )
            if req.stream:
                return Reply(stream=self._stream(req, ids, params),
                             headers={"Cache-Control": "no-cache"})
            choices, done = await self._complete(req, ids, params)
        except ProtocolError as exc:
            return Reply(exc.status, exc.body(), exc.headers)
        except ContextLengthError as exc:
            return Reply(400, error_body(str(exc), param="messages",
                                         code="context_length_exceeded"))
        except PromptFormatError as exc:
            return Reply(400, error_body(str(exc), param="messages", code="invalid_value"))
        except RequestCancelled:
            return Reply(499, error_body("request cancelled", type="server_error",
                                         code="cancelled"))
        except Exception as exc:  # a bug or a broken model: the client still gets JSON
            log.exception("chat completion failed")
            return Reply(500, error_body(f"generation failed: {type(exc).__name__}: {exc}",
                                         type="server_error"))
        return Reply(200, self._response(choices, done).model_dump())

    # -- generation -------------------------------------------------------------------------

    async def _run(self, ids: list[int], params: SamplingParams, json_mode: str | None,
                   schema: dict | None):
        """All of one engine request; returns its final ("done") object."""
        async for event in self.gen.stream(ids, params, json_object=json_mode is not None,
                                           schema=schema):
            if event[0] == "done":
                return event[1]
        raise RuntimeError("the engine ended a request without a result")

    async def _complete(self, req: ChatCompletionRequest, ids: list[int],
                        params: SamplingParams):
        json_mode = req.json_mode()
        schema = req.response_format.schema_dict() if json_mode else None
        done = await self._run(ids, params, json_mode, schema)
        choices = list(done.choices)
        if json_mode is None:
            return choices, done
        attempts = 1
        while attempts < self.json_attempts and not params.greedy:
            bad = [i for i, c in enumerate(choices) if json_reply_error(c.text, schema)]
            if not bad:
                break
            retry = dataclasses.replace(
                params, n=len(bad), seed=(done.seed + 1_000_003 * attempts) % (2**63))
            again = await self._run(ids, retry, json_mode, schema)
            for i, c in zip(bad, again.choices, strict=True):
                choices[i] = c
            attempts += 1
        problems = {i: json_reply_error(c.text, schema) for i, c in enumerate(choices)}
        problems = {i: p for i, p in problems.items() if p}
        if problems:
            i, why = next(iter(problems.items()))
            cut = " (cut at max_tokens)" if choices[i].finish_reason == "length" else ""
            raise ProtocolError(
                f"response_format {json_mode}: the model's reply for {len(problems)} of "
                f"{len(choices)} choice(s) is {why}{cut} after {attempts} attempt(s)",
                status=422, type="server_error", param="response_format",
                code="json_validation_failed",
            )
        return choices, done

    def _response(self, choices, done) -> ChatCompletionResponse:
        completion = sum(c.completion_tokens for c in choices)
        return ChatCompletionResponse(
            model=self.model_name,
            choices=[Choice(index=i, message=ResponseMessage(content=c.text),
                            finish_reason=_finish(c.finish_reason))
                     for i, c in enumerate(choices)],
            usage=Usage(prompt_tokens=done.prompt_tokens, completion_tokens=completion,
                        total_tokens=done.prompt_tokens + completion),
            system_fingerprint=self.fingerprint,
        )

    async def _stream(self, req: ChatCompletionRequest, ids: list[int],
                      params: SamplingParams) -> AsyncIterator[str]:
        """Server-sent events; closing this iterator early cancels the engine request."""
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": self.model_name,
                "system_fingerprint": self.fingerprint}

        def chunk(index: int, delta: dict, finish: str | None = None) -> str:
            return _sse({**head, "choices": [{"index": index, "delta": delta, "logprobs": None,
                                              "finish_reason": finish}]})

        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        done, choices = None, []
        try:
            for i in range(req.n):
                yield chunk(i, {"role": "assistant", "content": ""})
            if req.json_mode():
                choices, done = await self._complete(req, ids, params)
                for i, c in enumerate(choices):
                    yield chunk(i, {"content": c.text})
                    yield chunk(i, {}, _finish(c.finish_reason))
            else:
                async for event in self.gen.stream(ids, params):
                    if event[0] == "delta":
                        yield chunk(event[1], {"content": event[2]})
                    elif event[0] == "finish":
                        yield chunk(event[1], {}, _finish(event[2]))
                    elif event[0] == "done":
                        done = event[1]
                        choices = list(done.choices)
            if include_usage and done is not None:
                completion = sum(c.completion_tokens for c in choices)
                yield _sse({**head, "choices": [], "usage": {
                    "prompt_tokens": done.prompt_tokens, "completion_tokens": completion,
                    "total_tokens": done.prompt_tokens + completion}})
        except ProtocolError as exc:
            yield _sse(exc.body())
        except RequestCancelled:
            return
        except Exception as exc:  # the stream has started: report in-band, then end it
            log.exception("streamed completion failed")
            yield _sse(error_body(f"generation failed: {type(exc).__name__}: {exc}",
                                  type="server_error"))
        yield "data: [DONE]\n\n"
