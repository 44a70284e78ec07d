"""Token counts for the simulator's `usage`: tiktoken cl100k_base, else about len/4.

cl100k_base is read from litellm's bundled tokenizer files (TIKTOKEN_CACHE_DIR, set by
`w4s_ray.env`), so nothing is downloaded; if that fails the server falls back to
ceil(len(text)/4) and says so in /health. The encoding loads in the background at start-up,
so the server listens before it is ready.
"""

from __future__ import annotations

import math
import threading

_enc = None
_lock = threading.Lock()
method = "approx-len/4"


def load() -> str:
    """Load cl100k_base once; returns the counting method in use."""
    global _enc, method
    with _lock:
        if _enc is None:
            try:
                import tiktoken

                _enc = tiktoken.get_encoding("cl100k_base")
                method = "tiktoken-cl100k_base"
            except Exception:  # noqa: BLE001 - offline or missing files: fall back, reported
                _enc = False
    return method


def count(text: str) -> int:
    if _enc:
        return len(_enc.encode(text, disallowed_special=()))
    return math.ceil(len(text) / 4)


def truncate(text: str, max_tokens: int) -> str:
    if _enc:
        ids = _enc.encode(text, disallowed_special=())
        return _enc.decode(ids[:max_tokens])
    return text[: max_tokens * 4]


def count_messages(messages: list[dict]) -> int:
    """OpenAI's chat accounting: ~3 tokens per message of framing plus 3 for the reply."""
    total = 3
    for m in messages:
        c = m.get("content")
        if isinstance(c, list):
            c = " ".join(p.get("text", "") for p in c if isinstance(p, dict))
        total += 3 + count(str(c or "")) + count(str(m.get("role", "")))
    return total
