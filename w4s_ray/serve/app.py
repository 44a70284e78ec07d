"""The Ray Serve application: a FastAPI ingress deployment speaking the OpenAI chat API.

One replica holds one model and one batching engine: `generation.ChatGenerator` (the built-in
continuous-batching engine, `w4s_ray.models.engine`) or, with `serve.backend: vllm`,
`vllm_engine.VLLMGenerator` (vLLM's AsyncLLMEngine in the replica). What a request means —
validation, the bounded queue (429 + Retry-After), cancellation on disconnect, JSON mode,
streaming — is `handler.ChatHandler`, the same for both engines; this module only binds it to
HTTP routes and to Serve's deployment options.

Routes: `POST /v1/chat/completions`, `GET /v1/models`, `GET /v1/models/{id}`, `GET /health`
(with batch/queue counts). Every error is an OpenAI-style body `{"error": {...}}`, unknown
routes and wrong methods included. No authentication: bind to 127.0.0.1 (the default) or put
an authenticating proxy in front.
"""

# No `from __future__ import annotations` here: FastAPI must see the real `Request` class on
# the ingress methods, or it treats `request` as a required query parameter.

import hashlib
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from ray import serve
from starlette.exceptions import HTTPException as StarletteHTTPException

from w4s_ray.config import ServeConfig
from w4s_ray.serve.checkpoint import ResolvedModel
from w4s_ray.serve.handler import ChatHandler
from w4s_ray.serve.protocol import ModelCard, ModelList, error_body
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


@serve.deployment(name=DEPLOYMENT_NAME)
@serve.ingress(api)
class MetaAgentServer:
    """One replica: one loaded model, one batching engine, HTTP handled concurrently."""

    def __init__(self, resolved: dict, model_name: str, settings: dict) -> None:
        self.model_name = model_name
        rm = ResolvedModel(**resolved)
        if settings.get("backend") == "vllm":
            from w4s_ray.serve.vllm_engine import VLLMGenerator

            self.gen = VLLMGenerator(rm.model_path, rm.tokenizer_path,
                                     dtype=settings.get("dtype", "auto"),
                                     max_rows=int(settings.get("max_batch_size", 16)))
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
        self.handler = ChatHandler(
            self.gen, model_name, max_n=int(settings["max_n"]),
            default_max_tokens=int(settings["default_max_tokens"]),
            max_queue=int(settings.get("max_queue", 32)),
            json_attempts=int(settings.get("json_max_attempts", 3)),
            fingerprint=f"w4s-{digest[:12]}",
        )

    def __del__(self) -> None:
        gen = getattr(self, "gen", None)
        if gen is not None:
            gen.close()

    @api.get("/health")
    async def health(self) -> dict:
        return self.handler.health()

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
        reply = await self.handler.chat(await request.body())
        if reply.stream is not None:
            return StreamingResponse(reply.stream, media_type="text/event-stream",
                                     headers=reply.headers or None)
        return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers or None)


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


def build_app(cfg: ServeConfig, resolved: ResolvedModel,
              resources: dict[str, float] | None = None) -> serve.Application:
    """The deployment bound with replica/autoscaling/CPU/GPU options from `serve.*`;
    `resources`: the replicas' role resources (runtime.placement)."""
    select_backend(cfg, resolved)
    resolved_dict = {
        "model_path": resolved.model_path,
        "adapter_path": resolved.adapter_path,
        "tokenizer_path": resolved.tokenizer_path,
    }
    return MetaAgentServer.options(**deployment_options(cfg, resources)).bind(
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
