"""Find and check what `w4s serve --model` points at, before any Ray or torch is started.

A model is either a Hugging Face directory (config.json + weights + tokenizer with a chat
template), a LoRA adapter directory (adapter_config.json + adapter weights) on a base model, or
a hub name that is already in the local HF cache (this box is offline; nothing is downloaded).
Anything else is a `CheckpointError` with one line naming the directory and what is missing.

This module only reads small JSON files; it does not load weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from w4s_ray.errors import W4SError

WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "model*.bin")
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


class CheckpointError(W4SError):
    """The model to serve does not exist or is not a loadable checkpoint."""


@dataclass(frozen=True)
class ResolvedModel:
    """What the server loads: `model_path` (full model or LoRA base) and an optional adapter."""

    model_path: str
    adapter_path: str | None = None
    tokenizer_path: str | None = None

    @property
    def description(self) -> str:
        if self.adapter_path:
            return f"{self.model_path} + LoRA {self.adapter_path}"
        return self.model_path


def _has_weights(d: Path) -> bool:
    return any(any(d.glob(p)) for p in WEIGHT_PATTERNS)


def _has_tokenizer(d: Path) -> bool:
    return any((d / f).is_file() for f in TOKENIZER_FILES)


def _looks_like_hub_name(name: str) -> bool:
    return (
        name.count("/") == 1
        and not name.startswith((".", "/", "~"))
        and all(part.strip() for part in name.split("/"))
    )


def _cached_hub_snapshot(name: str) -> Path | None:
    """The local snapshot dir of a hub model if its config.json is in the HF cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        return None
    hit = try_to_load_from_cache(name, "config.json")
    return Path(hit).parent if isinstance(hit, str) else None


def _full_model_dir(spec: str, what: str) -> Path:
    path = Path(spec).expanduser()
    if not path.exists():
        if _looks_like_hub_name(spec):
            snap = _cached_hub_snapshot(spec)
            if snap is not None:
                return snap
            raise CheckpointError(
                f"{what} '{spec}' is not a directory and not in the local Hugging Face cache "
                "(offline: nothing is downloaded)"
            )
        raise CheckpointError(f"{what} directory does not exist: {path}")
    if not path.is_dir():
        raise CheckpointError(f"{what} is not a directory: {path}")
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{what} {path} holds no model: config.json is missing")
    try:
        json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{what} {path}: config.json is unreadable ({exc})") from None
    if not _has_weights(path):
        raise CheckpointError(
            f"{what} {path} holds no model weights (*.safetensors or pytorch_model*.bin)"
        )
    return path.resolve()


def _check_tokenizer(d: Path) -> None:
    if not _has_tokenizer(d):
        raise CheckpointError(f"{d} has no tokenizer (tokenizer.json / tokenizer_config.json)")
    has_template = (d / "chat_template.jinja").is_file() or (d / "chat_template.json").is_file()
    if not has_template and (d / "tokenizer_config.json").is_file():
        try:
            tok_cfg = json.loads((d / "tokenizer_config.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{d}: tokenizer_config.json is unreadable ({exc})") from None
        has_template = bool(tok_cfg.get("chat_template"))
    if not has_template:
        raise CheckpointError(
            f"{d}: the tokenizer has no chat template (chat_template.jinja or "
            "tokenizer_config.json:chat_template); the server needs one to format messages"
        )


def resolve_model(model: str, lora_base: str | None = None) -> ResolvedModel:
    """Check `model` (and `lora_base`) and say what to load; raises `CheckpointError`."""
    if not model or not str(model).strip():
        raise CheckpointError("no model given (--model DIR|NAME or serve.model)")
    path = Path(model).expanduser()
    adapter_cfg = path / "adapter_config.json"
    if path.is_dir() and adapter_cfg.is_file():
        if not any((path / w).is_file() for w in ADAPTER_WEIGHTS):
            raise CheckpointError(f"LoRA adapter {path} has no adapter_model.safetensors")
        try:
            base_hint = json.loads(adapter_cfg.read_text(encoding="utf-8")).get(
                "base_model_name_or_path"
            )
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{adapter_cfg} is unreadable ({exc})") from None
        base_spec = lora_base or base_hint
        if not base_spec:
            raise CheckpointError(
                f"LoRA adapter {path} names no base model; pass --lora-base DIR"
            )
        base = _full_model_dir(base_spec, "LoRA base model")
        tok_dir = path if _has_tokenizer(path) else base
        _check_tokenizer(tok_dir)
        return ResolvedModel(str(base), str(path.resolve()), str(tok_dir))
    if lora_base:
        raise CheckpointError(
            f"--lora-base was given but {path} is not a LoRA adapter (no adapter_config.json)"
        )
    full = _full_model_dir(model, "model")
    _check_tokenizer(full)
    return ResolvedModel(str(full), None, str(full))
