"""Process environment defaults that keep every stage offline and quiet.

Measured on this platform (see docs/PLATFORM.md): without these, litellm looks up its price map
on the network at import, tiktoken fetches encodings, Ray writes an auth token and phones home,
and tokenizers warns on fork. Users can still override any of them in their own environment.
"""

from __future__ import annotations

import os
from pathlib import Path


def _litellm_tokenizer_dir() -> str | None:
    import importlib.util

    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
    return str(path) if path.is_dir() else None


def apply_offline_defaults() -> None:
    """Set (without overriding) the environment variables every w4s process wants."""
    defaults = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "disabled",
        "RAY_DEDUP_LOGS": "1",
        "PYTHONWARNINGS": os.environ.get("PYTHONWARNINGS", "ignore::DeprecationWarning"),
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    if "TIKTOKEN_CACHE_DIR" not in os.environ:
        tok_dir = _litellm_tokenizer_dir()
        if tok_dir:
            os.environ["TIKTOKEN_CACHE_DIR"] = tok_dir
    if "TORCH_EXTENSIONS_DIR" not in os.environ:
        os.environ["TORCH_EXTENSIONS_DIR"] = str(Path.home() / ".cache" / "w4s" / "torch_extensions")
