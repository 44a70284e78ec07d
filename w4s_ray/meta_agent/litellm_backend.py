"""Meta-agent through litellm: any chat model litellm knows, or an OpenAI-compatible endpoint.

`meta_agent.model` is a litellm model name; `openai/<name>` with `meta_agent.api_base` talks to
any OpenAI-compatible server (our `w4s serve` app, vLLM, ...). Sampling settings come from
`cfg.meta_agent` (temperature, top_p, max_tokens); the seed is sent as a hint (servers that
honour it are reproducible, others are not). A model missing from litellm's price map is
registered at zero cost so dollar accounting does not crash on self-hosted models.
`meta_agent.top_k` / `repetition_penalty`, when set away from their shared defaults
(`w4s_ray.models.sampling`), are sent as extra body fields, which `w4s serve` and vLLM honour
(and a provider that does not know them refuses), so a served model samples as the local
backend does. When a
server returns fewer than n choices (some ignore `n`), the rest are requested one call at a
time. The API key is read from the env var named by `meta_agent.api_key_env`, else the
provider's own (`ANTHROPIC_API_KEY` for anthropic/..., as for the executor), and never logged;
a missing key is one error line at construction, before any work.

Failures are classified as the executor's are (`executor.transport.classify`, after litellm's
own `max_retries`): one the endpoint will repeat for every call (401, 403, 404, exhausted
quota, unknown provider, rejected parameter, nothing listening) raises `MetaAgentFatal` with
what to change (`--set meta_agent.*`); anything else `ExecutorError`. `preflight()` makes one
cheap call (a few tokens) before a run spends anything, and any failure of it is fatal.
"""

from __future__ import annotations

import os

from w4s_ray.config import MetaAgentConfig
from w4s_ray.errors import ConfigError, ExecutorError, MetaAgentFatal
from w4s_ray.executor.keys import is_local, redact
from w4s_ray.executor.providers import OPENAI_ROUTES, PROVIDER_KEYS, import_litellm, key_env_for
from w4s_ray.executor.transport import FATAL, Failure, classify
from w4s_ray.meta_agent.base import MetaAgent, check_messages
from w4s_ray.models.sampling import DEFAULT_REPETITION_PENALTY, DEFAULT_TOP_K


def register_zero_cost(model: str) -> bool:
    """Add `model` (and its bare name) to litellm's price map at $0 if it is unknown."""
    litellm = import_litellm()

    if model in litellm.model_cost:
        return False
    provider, _, bare = model.partition("/")
    entry = {
        "input_cost_per_token": 0.0,
        "output_cost_per_token": 0.0,
        "litellm_provider": provider if bare else "openai",
        "mode": "chat",
    }
    names = {model: entry}
    if bare:
        names[bare] = entry
    litellm.register_model(names)
    return True


class LiteLLMMetaAgent(MetaAgent):
    def __init__(self, cfg: MetaAgentConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.name = cfg.model
        self._key = meta_agent_key(cfg)
        self._provider, self._key_env = _provider_and_var(cfg)
        register_zero_cost(cfg.model)

    def _api_key(self) -> str | None:
        return self._key

    @property
    def where(self) -> str:
        """The endpoint as an error line names it."""
        return self.cfg.api_base or f"{self._provider}'s default endpoint"

    def _error(self, exc: Exception, *, preflight: bool = False) -> ExecutorError:
        """The one-line error a failed call becomes (module docstring)."""
        f = classify(exc)
        cause = redact(f.cause, self._key)
        if f.kind == FATAL or f.reason == "connection" or preflight:
            what = "" if f.kind == FATAL or f.reason == "connection" else \
                "the preflight call failed: "
            return MetaAgentFatal(f"meta-agent {self.cfg.model} at {self.where}: {what}{cause}; "
                                  f"{self._hint(f)}")
        return ExecutorError(f"meta-agent {self.cfg.model}: {cause}")

    def _hint(self, f: Failure) -> str:
        key = f"${self._key_env}" if self._key_env else f"the {self._provider} credentials"
        if f.reason in ("auth", "permission", "payment", "quota"):
            return (f"check {key} (another variable: --set meta_agent.api_key_env=VAR), its "
                    f"access and credit")
        if f.reason == "not_found":
            return ("check the model name (--set meta_agent.model=...) and the URL "
                    "(--set meta_agent.api_base=...)")
        if f.reason == "provider":
            return (f"prefix the provider (e.g. openai/{self.cfg.model}) or set "
                    f"--set meta_agent.api_base=URL")
        if f.reason == "connection":
            where = "is the server running? " if is_local(self.cfg.api_base) else ""
            return f"{where}check --set meta_agent.api_base=... and the network"
        if f.reason == "param":
            return ("the provider rejects a parameter litellm sends (temperature, top_p, n, "
                    "seed, max_tokens): change the meta_agent.* setting it names")
        return "check the endpoint by hand (--set meta_agent.model=..., meta_agent.api_base=...)"

    def preflight(self) -> None:
        """One cheap uncached call; raises `MetaAgentFatal` if the endpoint cannot answer it.
        Not counted in `usage` (the run's meta-agent dollars)."""
        kwargs = self._kwargs([{"role": "user", "content": "Reply with the single word OK."}],
                              1, self.cfg.seed)
        kwargs["max_tokens"] = min(16, self.cfg.max_tokens)
        try:
            import_litellm().completion(**kwargs)
        except Exception as exc:  # noqa: BLE001 - classified into one line
            raise self._error(exc, preflight=True) from None

    def _kwargs(self, messages, n: int, seed: int | None) -> dict:
        kwargs = dict(
            model=self.cfg.model, messages=messages, n=n,
            temperature=self.cfg.temperature, top_p=self.cfg.top_p,
            max_tokens=self.cfg.max_tokens, num_retries=self.cfg.max_retries,
            timeout=self.cfg.timeout_s, drop_params=True,
        )
        if seed is not None:
            kwargs["seed"] = int(seed) % (2**31)
        extra = {}
        if self.cfg.top_k != DEFAULT_TOP_K:
            extra["top_k"] = self.cfg.top_k
        if self.cfg.repetition_penalty != DEFAULT_REPETITION_PENALTY:
            extra["repetition_penalty"] = self.cfg.repetition_penalty
        if extra:
            kwargs["extra_body"] = extra
        if self.cfg.api_base:
            kwargs["api_base"] = self.cfg.api_base
        key = self._api_key()
        if key:
            kwargs["api_key"] = key
        return kwargs

    def _call(self, messages, n: int, seed: int | None):
        litellm = import_litellm()
        try:
            resp = litellm.completion(**self._kwargs(messages, n, seed))
        except Exception as exc:  # noqa: BLE001 - litellm raises many provider-specific types
            raise self._error(exc) from None
        usage = getattr(resp, "usage", None)
        self.usage.calls += 1
        if usage is not None:
            self.usage.prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
            self.usage.completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)
        try:
            self.usage.cost_usd += float(litellm.completion_cost(completion_response=resp) or 0.0)
        except Exception:  # price lookups are best-effort for self-hosted names
            pass
        return [(c.message.content or "") for c in resp.choices]

    def generate(self, messages, n, *, seed=None):
        check_messages(messages)
        texts = self._call(messages, n, seed)[:n]
        while len(texts) < n:
            extra_seed = None if seed is None else seed + len(texts)
            texts += self._call(messages, 1, extra_seed)[:1]
        return texts


def _provider_and_var(cfg: MetaAgentConfig) -> tuple[str, str | None]:
    """The litellm provider serving `cfg.model` and the env var holding its key."""
    model = cfg.model.strip()
    if model.startswith(tuple(p + "/" for p in OPENAI_ROUTES)):
        provider = model.split("/", 1)[0]
    else:
        try:
            provider = import_litellm().get_llm_provider(model, api_base=cfg.api_base)[1]
        except Exception:  # noqa: BLE001 - litellm's "LLM Provider NOT provided"
            if not cfg.api_base:
                raise ConfigError(
                    f"meta_agent.model {model}: litellm cannot tell which provider serves it; "
                    f"prefix it (e.g. openai/{model}) or set meta_agent.api_base") from None
            provider = "openai"
    return provider, key_env_for(provider, cfg.api_key_env)


def meta_agent_key(cfg: MetaAgentConfig) -> str | None:
    """The key for the meta-agent's model (module docstring); ConfigError when one is needed
    and missing. None: the provider's own credential chain."""
    model = cfg.model.strip()
    provider, var = _provider_and_var(cfg)
    key = os.environ.get(var, "").strip() if var else ""
    if key:
        return key
    if cfg.api_base:
        return "EMPTY"  # self-hosted OpenAI-compatible servers take any key; litellm wants one
    if var is None or (provider in PROVIDER_KEYS and PROVIDER_KEYS[provider] is None):
        return None
    raise ConfigError(f"no API key for meta-agent {model}: set ${var} "
                      f"(or --set meta_agent.api_key_env=VAR)")
