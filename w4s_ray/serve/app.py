"""The Ray Serve application: a FastAPI ingress deployment speaking the OpenAI chat API.

Routes (all JSON):
- `POST /v1/chat/completions`: validated by `protocol.parse_chat_request`; `n` samples come
  from ONE batched `generate` call run in a worker thread (`asyncio.to_thread`), so the
  replica's event loop keeps answering `/health` and queued requests while a long generation
  runs. Replies carry real token `usage`.
- `GET /v1/models`, `GET /v1/models/{id}`, `GET /health`.
- Every error, including unknown routes and wrong methods, is an OpenAI-style body
  `{"error": {"message", "type", "param", "code"}}` with a 4xx (client) or 500 (server) status.

`build_app(cfg, resolved)` binds the deployment with replica/autoscaling/CPU/GPU options from
`serve.*` config. With `serve.backend=vllm` it builds Ray Serve LLM's OpenAI app instead
(`ray.serve.llm`, imported only on that path, since it cannot even be imported without vLLM).
The app has no authentication: bind it to 127.0.0.1 (the default) or put it behind one.
"""

# No `from __future__ import annotations` here: FastAPI must see the real `Request` class on
# the ingress methods, or it treats `request` as a required query parameter.

import asyncio
import hashlib
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray import serve
from starlette.exceptions import HTTPException as StarletteHTTPException

from w4s_ray.config import ServeConfig
from w4s_ray.serve.checkpoint import ResolvedModel
from w4s_ray.serve.generation import ContextLengthError, PromptFormatError, SamplingParams
from w4s_ray.serve.protocol import (
    ChatCompletionResponse,
    Choice,
    ModelCard,
    ModelList,
    ProtocolError,
    ResponseMessage,
    Usage,
    error_body,
    parse_chat_request,
)
from w4s_ray.serve.settings import deployment_options, select_backend

log = logging.getLogger("ray.serve")

DEPLOYMENT_NAME = "MetaAgent"

api = FastAPI(title="w4s meta-agent", docs_url=None, redoc_url=None, openapi_url=None)


def _error(status: int, message: str, **kw: Any) -> JSONResponse:
    return JSONResponse(error_body(message, **kw), status_code=status)


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


@serve.deployment(name=DEPLOYMENT_NAME)
@serve.ingress(api)
class MetaAgentServer:
    """One replica: one loaded model, generations serialised, HTTP handled concurrently."""

    def __init__(self, resolved: dict, model_name: str, settings: dict) -> None:
        from w4s_ray.serve.generation import ChatGenerator

        self.model_name = model_name
        self.max_n = int(settings["max_n"])
        self.default_max_tokens = int(settings["default_max_tokens"])
        self.generator = ChatGenerator.load(
            ResolvedModel(**resolved), dtype=settings.get("dtype", "auto"), name=model_name,
            threads=settings.get("threads"),
        )
        self.generator.truncate_prompt = bool(settings.get("truncate_prompt", False))
        digest = hashlib.sha256(repr(sorted(resolved.items())).encode()).hexdigest()
        self.fingerprint = f"w4s-{digest[:12]}"

    @api.get("/health")
    async def health(self) -> dict:
        return {"status": "ok", "model": self.model_name}

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
    async def chat_completions(self, request: Request) -> JSONResponse:
        try:
            req = parse_chat_request(await request.body(), max_n=self.max_n)
            if req.model is not None and req.model != self.model_name:
                raise ProtocolError(
                    f"model '{req.model}' does not exist; this server serves "
                    f"'{self.model_name}'",
                    status=404, type="not_found_error", param="model", code="model_not_found",
                )
            params = SamplingParams(
                n=req.n,
                temperature=1.0 if req.temperature is None else float(req.temperature),
                top_p=1.0 if req.top_p is None else float(req.top_p),
                max_tokens=req.token_limit() or self.default_max_tokens,
                seed=req.seed,
                stop=tuple(req.stop or ()),
            )
            out = await asyncio.to_thread(
                self.generator.generate, req.plain_messages(), params
            )
        except ProtocolError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        except ContextLengthError as exc:
            return _error(400, str(exc), param="messages", code="context_length_exceeded")
        except PromptFormatError as exc:
            return _error(400, str(exc), param="messages", code="invalid_value")
        except Exception as exc:  # a bug or a broken model: the client still gets JSON
            log.exception("chat completion failed")
            return _error(500, f"generation failed: {type(exc).__name__}: {exc}",
                          type="server_error")
        response = ChatCompletionResponse(
            model=self.model_name,
            choices=[
                Choice(index=i, message=ResponseMessage(content=c.text),
                       finish_reason=c.finish_reason)
                for i, c in enumerate(out.completions)
            ],
            usage=Usage(
                prompt_tokens=out.prompt_tokens,
                completion_tokens=out.completion_tokens,
                total_tokens=out.prompt_tokens + out.completion_tokens,
            ),
            system_fingerprint=self.fingerprint,
        )
        return JSONResponse(response.model_dump())


def build_transformers_app(cfg: ServeConfig, resolved: ResolvedModel,
                           resources: dict[str, float] | None = None) -> serve.Application:
    settings = {
        "max_n": cfg.max_n,
        "default_max_tokens": cfg.default_max_tokens,
        "dtype": cfg.dtype,
        "truncate_prompt": cfg.truncate_prompt,
        # Intra-op threads per replica: what the replica reserved, at least one.
        "threads": cfg.torch_threads or max(1, int(cfg.num_cpus)),
    }
    resolved_dict = {
        "model_path": resolved.model_path,
        "adapter_path": resolved.adapter_path,
        "tokenizer_path": resolved.tokenizer_path,
    }
    return MetaAgentServer.options(**deployment_options(cfg, resources)).bind(
        resolved_dict, cfg.model_name, settings
    )


def build_vllm_app(cfg: ServeConfig, resolved: ResolvedModel) -> serve.Application:
    """Ray Serve LLM (vLLM engine) behind the same OpenAI routes; GPU clusters only."""
    from ray.serve.llm import LLMConfig, build_openai_app

    from w4s_ray.serve.settings import scaling_options

    llm_config = LLMConfig(
        model_loading_config={"model_id": cfg.model_name, "model_source": resolved.model_path},
        deployment_config={
            **scaling_options(cfg),
            "max_ongoing_requests": cfg.max_ongoing_requests,
        },
        engine_kwargs={"dtype": cfg.dtype},
    )
    return build_openai_app({"llm_configs": [llm_config]})


def build_app(cfg: ServeConfig, resolved: ResolvedModel,
              resources: dict[str, float] | None = None) -> serve.Application:
    """`resources`: the replicas' role resources (runtime.placement; transformers backend)."""
    if select_backend(cfg, resolved) == "vllm":
        return build_vllm_app(cfg, resolved)
    return build_transformers_app(cfg, resolved, resources)


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
