"""`w4s serve --model` must reject what it cannot load, before any Ray starts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from w4s_ray.serve.checkpoint import CheckpointError, resolve_model


def _copy(src: Path, dst: Path, drop: tuple[str, ...] = ()) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*drop) if drop else None)
    return dst


def test_valid_model_dir(tiny_model_dir):
    r = resolve_model(str(tiny_model_dir))
    assert r.model_path == str(tiny_model_dir.resolve())
    assert r.adapter_path is None and r.tokenizer_path == r.model_path


def test_missing_dir_names_it(tmp_path):
    with pytest.raises(CheckpointError, match="nope' does not exist"):
        resolve_model(str(tmp_path / "nope"))


def test_empty_dir_has_no_config(tmp_path):
    with pytest.raises(CheckpointError, match="config.json is missing"):
        resolve_model(str(tmp_path))


def test_file_that_is_not_gguf(tmp_path):
    f = tmp_path / "model.bin"
    f.write_text("x")
    with pytest.raises(CheckpointError, match="is a file but not a .gguf model"):
        resolve_model(str(f))


def test_no_weights(tiny_model_dir, tmp_path):
    d = _copy(tiny_model_dir, tmp_path / "m", drop=("*.safetensors",))
    with pytest.raises(CheckpointError, match="no model weights"):
        resolve_model(str(d))


def test_corrupt_config(tiny_model_dir, tmp_path):
    d = _copy(tiny_model_dir, tmp_path / "m")
    (d / "config.json").write_text("{ not json")
    with pytest.raises(CheckpointError, match="config.json is unreadable"):
        resolve_model(str(d))


def test_no_tokenizer(tiny_model_dir, tmp_path):
    d = _copy(tiny_model_dir, tmp_path / "m", drop=("tokenizer*",))
    with pytest.raises(CheckpointError, match="no tokenizer"):
        resolve_model(str(d))


def test_no_chat_template(tiny_model_dir, tmp_path):
    d = _copy(tiny_model_dir, tmp_path / "m", drop=("chat_template.*",))
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="no chat template"):
        resolve_model(str(d))


def test_uncached_hub_name_is_refused_offline():
    with pytest.raises(CheckpointError, match="not in the local Hugging Face cache"):
        resolve_model("no-such-org/no-such-model-w4s")


def _adapter(tmp_path: Path, base: str | None, weights: bool = True) -> Path:
    a = tmp_path / "adapter"
    a.mkdir()
    (a / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base}))
    if weights:
        (a / "adapter_model.safetensors").write_bytes(b"\0")
    return a


def test_lora_adapter_resolves_base_from_its_config(tiny_model_dir, tmp_path):
    a = _adapter(tmp_path, str(tiny_model_dir))
    r = resolve_model(str(a))
    assert r.adapter_path == str(a.resolve())
    assert r.model_path == str(tiny_model_dir.resolve())
    assert r.tokenizer_path == r.model_path  # the adapter dir has no tokenizer of its own


def test_lora_base_flag_overrides_and_is_checked(tiny_model_dir, tmp_path):
    a = _adapter(tmp_path, "/somewhere/else")
    with pytest.raises(CheckpointError, match="LoRA base model '/somewhere/else' does not exist"):
        resolve_model(str(a))
    assert resolve_model(str(a), lora_base=str(tiny_model_dir)).model_path == str(
        tiny_model_dir.resolve()
    )


def test_lora_adapter_without_weights_or_base(tmp_path):
    with pytest.raises(CheckpointError, match="no adapter_model"):
        resolve_model(str(_adapter(tmp_path, "x", weights=False)))


def test_lora_adapter_without_any_base(tmp_path):
    with pytest.raises(CheckpointError, match="--lora-base"):
        resolve_model(str(_adapter(tmp_path, None)))


def test_lora_base_on_a_full_model_is_an_error(tiny_model_dir):
    with pytest.raises(CheckpointError, match="not a LoRA adapter"):
        resolve_model(str(tiny_model_dir), lora_base=str(tiny_model_dir))
