"""The Ray Serve application: a FastAPI ingress deployment speaking the OpenAI chat API.

One replica holds one model and one batching engine (`generation.ChatGenerator`, or
`vllm_engine.VLLMGenerator` with `serve.backend: vllm`). Requests are validated
(`protocol.parse_chat_request`), encoded, and handed to the engine, which decodes every
admitted request together, step by step (continuous batching, `w4s_ray.models.engine`):

- a bounded queue: when `serve.max_queue` requests already wait for a full batch to make room,
  a request gets 429 `rate_limit_exceeded` with a `Retry-After` header (seconds, estimated from
  recent request times) instead of waiting without bound;
- cancellation: when the client disconnects or times out, Serve cancels the handler; leaving
  the engine's event stream cancels the request and its rows leave the batch at the next step,
  so the replica's next request is served at once;
- JSON mode (`response_format` json_object / json_schema): the reply is started with '{' and
  ended where that object closes, then validated (json.loads, the schema with jsonschema);
  invalid choices are sampled again (new seeds) up to `serve.json_max_attempts` times, after
  which the request fails with 422 `json_validation_failed` rather than return non-JSON;
- streaming (`stream: true`): server-sent events of `chat.completion.chunk` objects ending with
  `data: [DONE]`; text that could still become a stop string is held back; JSON-mode streams
  are sent after validation; `stream_options.include_usage` adds the usage chunk.

Routes: `POST /v1/chat/completions`, `GET /v1/models`, `GET /v1/models/{id}`, `GET /health`
(with batch/queue counts). Every error is an OpenAI-style body `{"error": {...}}`.
No authentication: bind to 127.0.0.1 (the default) or put an authenticating proxy in front.
"""

# No `from __future__ import annotations` here: FastAPI must see the real `Request` class on
# the ingress methods, or it treats `request` as a required query parameter.

import dataclasses
import hashlib
import json
import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from ray import serve
from starlette.exceptions import HTTPException as StarletteHTTPException

from w4s_ray.config import ServeConfig
from w4s_ray.models import sampling as defaults
from w4s_ray.serve.checkpoint import ResolvedModel
from w4s_ray.serve.generation import (
    ContextLengthError,
    PromptFormatError,
    RequestCancelled,
    SamplingParams,
)
from w4s_ray.serve.protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    Choice,
    ModelCard,
    ModelList,
    ProtocolError,
    ResponseMessage,
    Usage,
    error_body,
    json_reply_error,
    parse_chat_request,
)
from w4s_ray.serve.settings import deployment_options, select_backend

log = logging.getLogger("ray.serve")

DEPLOYMENT_NAME = "MetaAgent"

api = FastAPI(title="w4s meta-agent", docs_url=None, redoc_url=None, openapi_url=None)


def _error(status: int, message: str, headers: dict | None = None, **kw: Any) -> JSONResponse:
    return JSONResponse(error_body(message, **kw), status_code=status, headers=headers)


@api.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
    message = (
        f"no route {request.method} {request.url.path}" if exc.status_code in (404, 405)
        else str(exc.detail)
    )
    return _error(exc.status_code, message, type=kind)


@api.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return _error(400, f"invalid request: {exc.errors()[0].get('msg', 'bad input')}")


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


@serve.deployment(name=DEPLOYMENT_NAME)
@serve.ingress(api)
class MetaAgentServer:
    """One replica: one loaded model, one batching engine, HTTP handled concurrently."""

    def __init__(self, resolved: dict, model_name: str, settings: dict) -> None:
        self.model_name = model_name
        self.max_n = int(settings["max_n"])
        self.default_max_tokens = int(settings["default_max_tokens"])
        self.max_queue = int(settings.get("max_queue", 32))
        self.json_attempts = max(1, int(settings.get("json_max_attempts", 3)))
        rm = ResolvedModel(**resolved)
        if settings.get("backend") == "vllm":
            from w4s_ray.serve.vllm_engine import VLLMGenerator

            self.gen = VLLMGenerator(rm.model_path, rm.tokenizer_path,
                                     dtype=settings.get("dtype", "auto"),
                                     max_rows=int(settings.get("max_batch_size", 16)),
                                     max_queue=self.max_queue)
        else:
            from w4s_ray.serve.generation import ChatGenerator

            self.gen = ChatGenerator.load(
                rm, dtype=settings.get("dtype", "auto"), name=model_name,
                threads=settings.get("threads"),
                max_rows=int(settings.get("max_batch_size", 16)),
                max_batch_tokens=settings.get("max_batch_tokens"),
            )
        self.gen.truncate_prompt = bool(settings.get("truncate_prompt", False))
        self.gen.start()
        digest = hashlib.sha256(repr(sorted(resolved.items())).encode()).hexdigest()
        self.fingerprint = f"w4s-{digest[:12]}"

    def __del__(self) -> None:
        gen = getattr(self, "gen", None)
        if gen is not None:
            gen.close()

    @api.get("/health")
    async def health(self) -> dict:
        stats = self.gen.stats() if hasattr(self.gen, "stats") else {}
        return {"status": "ok", "model": self.model_name, **stats}

    @api.get("/v1/models")
    async def models(self) -> dict:
        return ModelList(data=[ModelCard(id=self.model_name)]).model_dump()

    @api.get("/v1/models/{model_id:path}")
    async def model(self, model_id: str) -> Any:
        if model_id != self.model_name:
            return _error(404, f"model '{model_id}' does not exist", type="not_found_error",
                          param="model", code="model_not_found")
        return ModelCard(id=self.model_name).model_dump()

    @api.post("/v1/chat/completions")
    async def chat_completions(self, request: Request) -> Any:
        try:
            req = parse_chat_request(await request.body(), max_n=self.max_n)
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
                return StreamingResponse(self._stream(req, ids, params),
                                         media_type="text/event-stream",
                                         headers={"Cache-Control": "no-cache"})
            choices, done = await self._complete(req, ids, params)
        except ProtocolError as exc:
            return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers or None)
        except ContextLengthError as exc:
            return _error(400, str(exc), param="messages", code="context_length_exceeded")
        except PromptFormatError as exc:
            return _error(400, str(exc), param="messages", code="invalid_value")
        except RequestCancelled:
            return _error(499, "request cancelled", type="server_error", code="cancelled")
        except Exception as exc:  # a bug or a broken model: the client still gets JSON
            log.exception("chat completion failed")
            return _error(500, f"generation failed: {type(exc).__name__}: {exc}",
                          type="server_error")
        return JSONResponse(self._response(choices, done).model_dump())

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
            choices=[
                Choice(index=i, message=ResponseMessage(content=c.text),
                       finish_reason="length" if c.finish_reason == "length" else "stop")
                for i, c in enumerate(choices)
            ],
            usage=Usage(prompt_tokens=done.prompt_tokens, completion_tokens=completion,
                        total_tokens=done.prompt_tokens + completion),
            system_fingerprint=self.fingerprint,
        )

    async def _stream(self, req: ChatCompletionRequest, ids: list[int], params: SamplingParams):
        """Server-sent events; leaving early (client gone) cancels the engine request."""
        head = {"id": ChatCompletionResponse(model="", choices=[], usage=Usage(
            prompt_tokens=0, completion_tokens=0, total_tokens=0)).id,
            "object": "chat.completion.chunk", "created": int(time.time()),
            "model": self.model_name, "system_fingerprint": self.fingerprint}

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
                    yield chunk(i, {}, "length" if c.finish_reason == "length" else "stop")
            else:
                async for event in self.gen.stream(ids, params):
                    if event[0] == "delta":
                        yield chunk(event[1], {"content": event[2]})
                    elif event[0] == "finish":
                        yield chunk(event[1], {}, "length" if event[2] == "length" else "stop")
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


def _settings(cfg: ServeConfig) -> dict[str, Any]:
    return {
        "backend": cfg.backend,
        "max_n": cfg.max_n,
        "default_max_tokens": cfg.default_max_tokens,
        "dtype": cfg.dtype,
        "truncate_prompt": cfg.truncate_prompt,
        "max_batch_size": cfg.max_batch_size,
        "max_batch_tokens": cfg.max_batch_tokens,
        "max_queue": cfg.max_queue,
        "json_max_attempts": cfg.json_max_attempts,
        # Intra-op threads per replica: what the replica reserved, at least one.
        "threads": cfg.torch_threads or max(1, int(cfg.num_cpus)),
    }


def build_app(cfg: ServeConfig, resolved: ResolvedModel) -> serve.Application:
    """The deployment bound with replica/autoscaling/CPU/GPU options from `serve.*`."""
    select_backend(cfg, resolved)
    resolved_dict = {
        "model_path": resolved.model_path,
        "adapter_path": resolved.adapter_path,
        "tokenizer_path": resolved.tokenizer_path,
    }
    return MetaAgentServer.options(**deployment_options(cfg)).bind(
        resolved_dict, cfg.model_name, _settings(cfg)
    )


def app_builder(args: dict[str, Any]) -> serve.Application:
    """Entry point for Ray's own CLI: `serve run w4s_ray.serve.app:app_builder model=DIR ...`
    or `import_path: w4s_ray.serve.app:app_builder` in a `serve deploy` config. `args` are
    `serve.*` config keys; the checkpoint is checked here, as `w4s serve` does."""
    from w4s_ray.errors import ConfigError
    from w4s_ray.serve.checkpoint import resolve_model

    try:
        cfg = ServeConfig.model_validate(dict(args))
    except Exception as exc:  # pydantic ValidationError -> one line naming the key
        first = exc.errors()[0] if hasattr(exc, "errors") else {}
        key = ".".join(str(p) for p in first.get("loc", ())) or "serve"
        raise ConfigError(f"serve.{key}: {first.get('msg', exc)}") from None
    return build_app(cfg, resolve_model(cfg.model, cfg.lora_base))
