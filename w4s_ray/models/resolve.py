"""What a user names as a model -> a local Hugging Face directory. One function for every stage.

`resolve_model_path(spec)` accepts, in this order:
1. an existing directory: an HF checkpoint (config.json + weights), a peft LoRA adapter
   (adapter_config.json, returned as is), or a directory holding exactly one `.gguf` file;
2. an existing `.gguf` file: converted once into the GGUF cache (`w4s_ray.models.gguf`);
3. a preset name (`smollm2`): its checkpoint prepared by `w4s models prepare` in the models dir;
4. a hub id `org/name`: the local HF cache's snapshot if complete; otherwise downloaded only
   when the hub is allowed (HF_HUB_OFFLINE unset or 0), else one clear error.
Anything else is a `ModelSourceError` (a `W4SError`: one `w4s: error:` line) naming the input
and what is wrong. Only small files are read here, except a GGUF conversion.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from w4s_ray.errors import ConfigError

WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "model*.bin")
_HUB_FILES = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "tokenizer*"]


class ModelSourceError(ConfigError):
    """The named model is not a loadable checkpoint and cannot be made into one."""


def hub_offline() -> bool:
    return any(os.environ.get(v, "").strip().upper() in ("1", "ON", "YES", "TRUE")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def has_weights(d: Path) -> bool:
    return any(any(d.glob(p)) for p in WEIGHT_PATTERNS)


def looks_like_hub_id(spec: str) -> bool:
    return (spec.count("/") == 1 and not spec.startswith((".", "/", "~"))
            and all(part.strip() for part in spec.split("/")) and not spec.endswith(".gguf"))


def _check_hf_dir(path: Path, what: str, spec: str) -> Path:
    try:
        json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelSourceError(f"{what} '{spec}': config.json is unreadable ({exc})") from None
    if not has_weights(path):
        raise ModelSourceError(
            f"{what} '{spec}': {path} holds no model weights (*.safetensors or pytorch_model*.bin)"
        )
    return path.resolve()


def _from_hub(spec: str, what: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        snap = Path(snapshot_download(spec, allow_patterns=_HUB_FILES, local_files_only=True))
        if (snap / "config.json").is_file() and has_weights(snap):
            return snap
    except (LocalEntryNotFoundError, OSError, ValueError):
        pass
    if hub_offline():
        raise ModelSourceError(
            f"{what} '{spec}' is not a local directory, .gguf file or prepared model, and not in "
            "the local Hugging Face cache; the hub is offline (HF_HUB_OFFLINE=1), so nothing is "
            "downloaded. Give a checkpoint directory or a .gguf file, or set HF_HUB_OFFLINE=0 "
            "where the hub is reachable"
        )
    try:
        snap = Path(snapshot_download(spec, allow_patterns=_HUB_FILES))
    except Exception as exc:  # network, auth, unknown repo: all one line for the user
        raise ModelSourceError(
            f"{what} '{spec}': cannot fetch it from the Hugging Face hub "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})"
        ) from None
    if not (snap / "config.json").is_file() or not has_weights(snap):
        raise ModelSourceError(
            f"{what} '{spec}': the hub repository has no transformers checkpoint "
            "(config.json + safetensors); for a GGUF-only repository download the .gguf file "
            "and pass its path"
        )
    return snap


def resolve_model_path(
    spec: str, *, what: str = "model", models_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> str:
    """A local directory to load for `spec` (see the module docstring)."""
    from w4s_ray.models import gguf as gguf_mod
    from w4s_ray.models import presets

    if spec is None or not str(spec).strip():
        raise ModelSourceError(f"{what}: no model given")
    spec = str(spec).strip()
    path = Path(spec).expanduser()
    if path.is_dir():
        if (path / "adapter_config.json").is_file():
            return str(path.resolve())
        if (path / "config.json").is_file():
            return str(_check_hf_dir(path, what, spec))
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return str(gguf_mod.cached_gguf_checkpoint(ggufs[0], cache_dir))
        detail = (f"it holds {len(ggufs)} .gguf files; name one" if ggufs
                  else "config.json is missing")
        raise ModelSourceError(f"{what} '{spec}' is not a model directory: {detail}")
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelSourceError(
                f"{what} '{spec}' is a file but not a .gguf model; give a checkpoint directory "
                "or a .gguf file"
            )
        return str(gguf_mod.cached_gguf_checkpoint(path, cache_dir))
    if spec in presets.PRESETS:
        preset = presets.PRESETS[spec]
        out = presets.prepared_dir(preset, models_dir or "runs/models")
        if presets.is_prepared(preset, models_dir or "runs/models"):
            return str(_check_hf_dir(out, what, spec))
        raise ModelSourceError(
            f"{what} '{spec}' is not prepared yet ({out} missing): run `w4s models prepare {spec}`"
        )
    if spec.lower().endswith(".gguf"):
        raise ModelSourceError(f"{what}: GGUF file not found: {path}")
    if looks_like_hub_id(spec):
        return str(_from_hub(spec, what))
    raise ModelSourceError(f"{what} '{spec}' does not exist (no such directory or file)")


def resolve_for(models_cfg, spec: str, *, what: str = "model") -> str:
    """`resolve_model_path` with the `models:` config section's directories."""
    if models_cfg is None:
        return resolve_model_path(spec, what=what)
    return resolve_model_path(spec, what=what, models_dir=models_cfg.dir,
                              cache_dir=models_cfg.cache_dir)
