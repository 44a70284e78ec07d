"""The executor's API key: resolved from an env var or a file, never written anywhere.

`resolve_api_key(cfg, endpoint)` returns the key: `executor.api_key_file` if set, else the env
var `executor.api_key_env` names, else the provider's own variable (`ANTHROPIC_API_KEY` for
anthropic/..., see `providers.PROVIDER_KEYS`). A local api_base and self-hosted routes (vLLM,
Ollama) need none (a dummy that is never sent); Bedrock / Vertex AI use their own credential
chain (None: litellm finds it).
`redact(text, key)` removes it, and anything shaped like a provider key, from text that may
reach a log, an exception or a file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlparse

from w4s_ray.errors import ExecutorError, ExecutorFatal

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
# Self-hosted routes: a key is optional (vLLM's --api-key, a proxy's), never required.
KEY_OPTIONAL = {"hosted_vllm", "ollama", "ollama_chat"}
DUMMY_KEY = "sk-local-no-key-needed"
_KEYLIKE = re.compile(r"\b(sk|pk|rk|key)-[A-Za-z0-9_\-]{8,}")


def is_local(api_base: str | None) -> bool:
    if not api_base:
        return False
    return (urlparse(api_base).hostname or "") in LOCAL_HOSTS


def resolve_api_key(cfg, endpoint) -> str | None:
    """The key for `endpoint` (a providers.Endpoint); see the module docstring."""
    if cfg.api_key_file:
        path = Path(cfg.api_key_file).expanduser()
        try:
            key = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ExecutorError(f"executor.api_key_file {path}: cannot read ({exc.strerror})") from None
        if not key:
            raise ExecutorError(f"executor.api_key_file {path} is empty")
        return key
    var = endpoint.key_env
    key = os.environ.get(var, "").strip() if var else ""
    if key:
        return key
    if is_local(endpoint.api_base) or endpoint.provider in KEY_OPTIONAL:
        return DUMMY_KEY
    if var is None:
        return None  # the provider's own credential chain (AWS, Google ADC)
    raise ExecutorFatal(
        f"no API key for executor {endpoint.model} at {endpoint.where}: set ${var} "
        f"(or --set executor.api_key_file=PATH, or --set executor.api_key_env=VAR)")


def redact(text: str, key: str | None = None) -> str:
    if key and key != DUMMY_KEY:
        text = text.replace(key, "***")
    return _KEYLIKE.sub("***", text)
