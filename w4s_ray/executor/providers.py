"""Which provider serves `executor.model`, where calls go, which key and which parameters.

`resolve_endpoint(cfg)` turns an `ExecutorConfig` into an `Endpoint` once, at client
construction, so everything downstream (transport, key, cache identity, error hints) agrees:

- provider: litellm's (`get_llm_provider`); `openai/...` and `hosted_vllm/...` are OpenAI
  routes. A name litellm cannot place is sent as is to an OpenAI-compatible server when an
  api_base is set (vLLM and Ollama serve names like `Qwen2.5-7B-Instruct` or `llama3`), and
  refused with a one-line hint when not (`ExecutorFatal`, before any call);
- api_base: the config's, else the provider's own environment variable, the same ones litellm
  reads (`OPENAI_BASE_URL`, `AZURE_API_BASE`, `ANTHROPIC_API_BASE`, ...), else litellm's
  default for the provider; resolved here so the URL we key the cache on is the URL we call;
- key variable: `executor.api_key_env` when set, else the provider's (`PROVIDER_KEYS`);
  providers that authenticate with their own credential chain (Bedrock, Vertex AI) get none;
- accepted parameters: which of the sampling parameters the client sends (`SENT_PARAMS`)
  the provider takes, from litellm's `get_supported_openai_params`. The litellm transport
  sends only those; an unsupported `n` is served as n single requests, an unsupported `seed`
  or json `response_format` is not sent (docs/EXECUTOR.md "Providers" has the table).

Nothing here makes a network call.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

from w4s_ray.env import apply_offline_defaults
from w4s_ray.errors import ConfigError, ExecutorFatal

OPENAI_ROUTES = ("openai", "hosted_vllm")
# What ExecutorClient may send besides model and messages.
SENT_PARAMS = ("n", "temperature", "max_tokens", "seed", "response_format")

# The environment variable holding each provider's key, as litellm reads it. None: the
# provider uses its own credential chain (AWS, Google ADC) or needs no key.
PROVIDER_KEYS: dict[str, str | None] = {
    "openai": "OPENAI_API_KEY",
    "azure": "AZURE_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "groq": "GROQ_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "together_ai": "TOGETHERAI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "fireworks_ai": "FIREWORKS_AI_API_KEY",
    "xai": "XAI_API_KEY",
    "cohere_chat": "COHERE_API_KEY",
    "hosted_vllm": "HOSTED_VLLM_API_KEY",
    "ollama": None,
    "ollama_chat": None,
    "bedrock": None,
    "vertex_ai": None,
}

# Where a provider's URL comes from when executor.api_base is null (litellm reads the same).
PROVIDER_BASE_ENV: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_BASE_URL", "OPENAI_API_BASE"),
    "azure": ("AZURE_API_BASE",),
    "anthropic": ("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"),
    "gemini": ("GEMINI_API_BASE",),
    "hosted_vllm": ("HOSTED_VLLM_API_BASE",),
    "ollama": ("OLLAMA_API_BASE",),
    "ollama_chat": ("OLLAMA_API_BASE",),
}

# One model per provider for the documentation table (litellm answers per model for some).
EXAMPLE_MODELS: dict[str, str] = {
    "openai": "gpt-4o-mini",
    "azure": "azure/my-gpt-4o-mini-deployment",
    "anthropic": "anthropic/claude-haiku-4-5",
    "gemini": "gemini/gemini-2.0-flash",
    "mistral": "mistral/mistral-small-latest",
    "groq": "groq/llama-3.1-8b-instant",
    "deepseek": "deepseek/deepseek-chat",
    "together_ai": "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo",
    "openrouter": "openrouter/openai/gpt-4o-mini",
    "xai": "xai/grok-2-latest",
    "bedrock": "bedrock/anthropic.claude-3-haiku-20240307-v1:0",
    "vertex_ai": "vertex_ai/gemini-2.0-flash",
    "hosted_vllm": "hosted_vllm/Qwen2.5-7B-Instruct",
    "ollama_chat": "ollama_chat/llama3.1",
}


_LITELLM: Any = None


@dataclass(frozen=True)
class Endpoint:
    provider: str            # litellm provider name ("openai", "anthropic", "azure", ...)
    model: str               # the name litellm is given (provider prefix included)
    wire_model: str          # the name an OpenAI-compatible server receives
    api_base: str | None     # where calls go; None: the provider's built-in default URL
    openai_compatible: bool  # speaks OpenAI chat completions at api_base
    key_env: str | None      # the env var holding the key (None: none / own credential chain)
    accepted: frozenset[str]  # which of SENT_PARAMS the provider takes

    @property
    def where(self) -> str:
        """The endpoint as an error line names it."""
        return self.api_base or f"{self.provider}'s default endpoint"

    @property
    def dropped(self) -> list[str]:
        return [p for p in SENT_PARAMS if p not in self.accepted]


def import_litellm() -> Any:
    """litellm, imported offline and quiet: no price-map download, no 'Provider List' or
    'Give Feedback' banners on errors, its loggers at ERROR (w4s_ray.console raises them
    under --verbose)."""
    global _LITELLM
    if _LITELLM is not None:
        return _LITELLM
    apply_offline_defaults()
    # pydantic warns about litellm's own TypedDicts as provider modules load: noise for users.
    warnings.filterwarnings("ignore", message=r".*ReadOnly. qualifier", category=UserWarning)
    import litellm

    litellm.suppress_debug_info = True
    litellm.set_verbose = False
    _LITELLM = litellm
    return litellm


def _strip_route(model: str) -> str:
    for prefix in OPENAI_ROUTES:
        if model.startswith(prefix + "/"):
            return model[len(prefix) + 1:]
    return model


def _litellm_provider(model: str, api_base: str | None) -> tuple[str, str | None] | None:
    """(provider, litellm's default api_base) or None when litellm cannot place the name."""
    if model.startswith(tuple(p + "/" for p in OPENAI_ROUTES)):
        return model.split("/", 1)[0], None
    litellm = import_litellm()
    try:
        _, provider, _, default_base = litellm.get_llm_provider(model, api_base=api_base)
    except Exception:  # noqa: BLE001 - litellm's "LLM Provider NOT provided" and kin
        return None
    return provider, default_base


def base_env_vars(provider: str) -> tuple[str, ...]:
    return PROVIDER_BASE_ENV.get(provider, (f"{provider.upper()}_API_BASE",))


def base_from_env(provider: str) -> str | None:
    for var in base_env_vars(provider):
        value = os.environ.get(var, "").strip()
        if value:
            return value
    return None


def accepted_params(model: str, provider: str) -> frozenset[str]:
    """Which of SENT_PARAMS litellm will pass to this provider for this model."""
    litellm = import_litellm()
    try:
        supported = litellm.get_supported_openai_params(
            model=model.split("/", 1)[1] if model.startswith(provider + "/") else model,
            custom_llm_provider=provider) or []
    except Exception:  # noqa: BLE001 - a provider litellm has no mapping for: send the basics
        supported = ["temperature", "max_tokens"]
    return frozenset(p for p in SENT_PARAMS if p in supported)


def key_env_for(provider: str, configured: str | None) -> str | None:
    if configured:
        return configured
    if provider in PROVIDER_KEYS:
        return PROVIDER_KEYS[provider]
    return f"{provider.upper()}_API_KEY"


def resolve_endpoint(cfg: Any) -> Endpoint:
    """The Endpoint of an ExecutorConfig (see the module docstring); no network."""
    model = (cfg.model or "").strip()
    if not model:
        raise ConfigError("executor.model is empty")
    api_base = cfg.api_base.strip().rstrip("/") if cfg.api_base else None
    if cfg.transport == "http":
        # A gateway that routes by name: the wire format is OpenAI's whatever the name says.
        if not api_base:
            raise ConfigError("executor.transport=http needs executor.api_base (the "
                              "OpenAI-compatible server's URL, e.g. http://127.0.0.1:8765/v1)")
        return Endpoint("openai", model, _strip_route(model), api_base, True,
                        key_env_for("openai", cfg.api_key_env), frozenset(SENT_PARAMS))
    placed = _litellm_provider(model, api_base)
    if placed is None:
        if not api_base:
            raise ExecutorFatal(
                f"executor {model}: litellm cannot tell which provider serves this model "
                f"name; prefix it (e.g. anthropic/{model}, gemini/{model}, azure/<deployment>) "
                f"or, for an OpenAI-compatible server (vLLM, Ollama), --set "
                f"executor.api_base=URL to send it there as is")
        # An OpenAI-compatible server (vLLM, Ollama's /v1, a gateway) serving its own names.
        placed = ("openai", None)
        model = f"openai/{model}"
    provider, default_base = placed
    if not api_base:
        api_base = base_from_env(provider) or default_base
        api_base = api_base.rstrip("/") if api_base else None
    compatible = provider in OPENAI_ROUTES
    accepted = frozenset(SENT_PARAMS) if compatible else accepted_params(model, provider)
    return Endpoint(provider, model, _strip_route(model), api_base, compatible,
                    key_env_for(provider, cfg.api_key_env), accepted)


def provider_table() -> list[dict[str, str]]:
    """One row per provider in EXAMPLE_MODELS: key variable, URL variable, dropped params.

    docs/EXECUTOR.md carries this table; a test checks the two agree."""
    rows = []
    for provider, model in EXAMPLE_MODELS.items():
        accepted = frozenset(SENT_PARAMS) if provider in OPENAI_ROUTES \
            else accepted_params(model, provider)
        dropped = [p for p in SENT_PARAMS if p not in accepted]
        rows.append({
            "provider": provider, "example": model,
            "key": PROVIDER_KEYS.get(provider) or "-",
            "base": " / ".join(base_env_vars(provider)),
            "dropped": ", ".join(dropped) or "none",
        })
    return rows
