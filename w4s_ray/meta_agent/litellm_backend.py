"""Meta-agent through litellm: any chat model litellm knows, or an OpenAI-compatible endpoint.

`meta_agent.model` is a litellm model name; `openai/<name>` with `meta_agent.api_base` talks to
any OpenAI-compatible server (our `w4s serve` app, vLLM, ...). Sampling settings come from
`cfg.meta_agent` (temperature, top_p, max_tokens); the seed is sent as a hint (servers that
honour it are reproducible, others are not). A model missing from litellm's price map is
registered at zero cost so dollar accounting does not crash on self-hosted models. When a
server returns fewer than n choices (some ignore `n`), the rest are requested one call at a
time. The API key is read from the env var named by `meta_agent.api_key_env`, else the
provider's own (`ANTHROPIC_API_KEY` for anthropic/..., as for the executor), and never logged;
a missing key is one error line at construction, before any work.
"""

from __future__ import annotations

import os

from w4s_ray.config import MetaAgentConfig
from w4s_ray.errors import ConfigError, ExecutorError
from w4s_ray.executor.providers import OPENAI_ROUTES, PROVIDER_KEYS, import_litellm, key_env_for
from w4s_ray.meta_agent.base import MetaAgent, check_messages


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
        register_zero_cost(cfg.model)

    def _api_key(self) -> str | None:
        return self._key

    def _call(self, messages, n: int, seed: int | None):
        litellm = import_litellm()

        kwargs = dict(
            model=self.cfg.model, messages=messages, n=n,
            temperature=self.cfg.temperature, top_p=self.cfg.top_p,
            max_tokens=self.cfg.max_tokens, num_retries=self.cfg.max_retries,
            timeout=self.cfg.timeout_s, drop_params=True,
        )
        if seed is not None:
            kwargs["seed"] = int(seed) % (2**31)
        if self.cfg.api_base:
            kwargs["api_base"] = self.cfg.api_base
        key = self._api_key()
        if key:
            kwargs["api_key"] = key
        try:
            resp = litellm.completion(**kwargs)
        except Exception as exc:  # litellm raises many provider-specific types
            raise ExecutorError(
                f"meta-agent {self.cfg.model}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            ) from None
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


def meta_agent_key(cfg: MetaAgentConfig) -> str | None:
    """The key for the meta-agent's model (module docstring); ConfigError when one is needed
    and missing. None: the provider's own credential chain."""
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
    var = key_env_for(provider, cfg.api_key_env)
    key = os.environ.get(var, "").strip() if var else ""
    if key:
        return key
    if cfg.api_base:
        return "EMPTY"  # self-hosted OpenAI-compatible servers take any key; litellm wants one
    if var is None or (provider in PROVIDER_KEYS and PROVIDER_KEYS[provider] is None):
        return None
    raise ConfigError(f"no API key for meta-agent {model}: set ${var} "
                      f"(or --set meta_agent.api_key_env=VAR)")
