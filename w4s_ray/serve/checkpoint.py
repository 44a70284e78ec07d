"""Find and check what `w4s serve --model` points at, before any Ray is started.

The model is resolved by the one shared resolver (`w4s_ray.models.resolve`): a Hugging Face
directory, a `.gguf` file (converted once into a cached checkpoint), a prepared preset name
(`smollm2`), or a hub id (local HF cache; downloaded only when the hub is allowed). On top of
that, serving needs a tokenizer with a chat template, and a peft LoRA adapter directory
(adapter_config.json + adapter weights) is served merged into its base (`--lora-base`, else
the adapter's `base_model_name_or_path`, resolved the same way). Anything else is a
`CheckpointError` with one line naming the input and what is missing.

Apart from a GGUF conversion, only small JSON files are read here; no weights are loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from w4s_ray.errors import W4SError
from w4s_ray.models.resolve import ModelSourceError, resolve_for

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


def _has_tokenizer(d: Path) -> bool:
    return any((d / f).is_file() for f in TOKENIZER_FILES)


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


def _resolve(spec: str, what: str, models_cfg) -> Path:
    try:
        return Path(resolve_for(models_cfg, spec, what=what))
    except ModelSourceError as exc:
        raise CheckpointError(str(exc)) from None


def resolve_model(model: str, lora_base: str | None = None, models_cfg=None) -> ResolvedModel:
    """Check `model` (and `lora_base`) and say what to load; raises `CheckpointError`.
    `models_cfg`: the `models:` config section (prepared presets, GGUF cache)."""
    if not model or not str(model).strip():
        raise CheckpointError("no model given (--model DIR|FILE.gguf|NAME or serve.model)")
    path = _resolve(str(model), "model", models_cfg)
    adapter_cfg = path / "adapter_config.json"
    if adapter_cfg.is_file():
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
        base = _resolve(base_spec, "LoRA base model", models_cfg)
        if not (base / "config.json").is_file():
            raise CheckpointError(f"LoRA base model {base} is not a full model (no config.json)")
        tok_dir = path if _has_tokenizer(path) else base
        _check_tokenizer(tok_dir)
        return ResolvedModel(str(base), str(path), str(tok_dir))
    if lora_base:
        raise CheckpointError(
            f"--lora-base was given but {path} is not a LoRA adapter (no adapter_config.json)"
        )
    _check_tokenizer(path)
    return ResolvedModel(str(path), None, str(path))
