"""The executor's API key: resolved from an env var or a file, never written anywhere.

`resolve_api_key(cfg)` returns the key (or a dummy for a local api_base, which needs none);
`redact(text, key)` removes it, and anything shaped like a provider key, from text that may
reach a log, an exception or a file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlparse

from w4s_ray.errors import ExecutorError

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
DUMMY_KEY = "sk-local-no-key-needed"
_KEYLIKE = re.compile(r"\b(sk|pk|rk|key)-[A-Za-z0-9_\-]{8,}")


def is_local(api_base: str | None) -> bool:
    if not api_base:
        return False
    return (urlparse(api_base).hostname or "") in LOCAL_HOSTS


def resolve_api_key(cfg) -> str:
    """From `cfg.api_key_file` if set, else env `cfg.api_key_env`; local servers need none."""
    if cfg.api_key_file:
        path = Path(cfg.api_key_file).expanduser()
        try:
            key = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ExecutorError(f"executor.api_key_file {path}: cannot read ({exc.strerror})") from None
        if not key:
            raise ExecutorError(f"executor.api_key_file {path} is empty")
        return key
    key = os.environ.get(cfg.api_key_env, "").strip()
    if key:
        return key
    if is_local(cfg.api_base):
        return DUMMY_KEY
    raise ExecutorError(
        f"no API key for executor model {cfg.model}: set ${cfg.api_key_env} or executor.api_key_file"
    )


def redact(text: str, key: str | None = None) -> str:
    if key and key != DUMMY_KEY:
        text = text.replace(key, "***")
    return _KEYLIKE.sub("***", text)
