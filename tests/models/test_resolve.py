"""The one model resolver: directories, GGUF files, presets, hub ids (offline and online)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from w4s_ray.errors import ConfigError
from w4s_ray.models import gguf, presets
from w4s_ray.models.resolve import ModelSourceError, resolve_model_path


def test_hf_directory_resolves_to_itself(tiny_model_dir):
    assert resolve_model_path(str(tiny_model_dir)) == str(tiny_model_dir.resolve())


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: d / "nope", "does not exist"),
    (lambda d: d, "config.json is missing"),
    (lambda d: (d / "w.bin").write_text("x") and d / "w.bin", "not a .gguf model"),
    (lambda d: d / "missing.gguf", "GGUF file not found"),
])
def test_bad_inputs_are_one_clear_config_error(tmp_path, make, message):
    with pytest.raises(ConfigError, match=message):
        resolve_model_path(str(make(tmp_path)), what="serve.model")


def test_a_directory_with_two_gguf_files_asks_which(tmp_path):
    (tmp_path / "a.gguf").write_bytes(b"GGUF")
    (tmp_path / "b.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelSourceError, match="2 .gguf files; name one"):
        resolve_model_path(str(tmp_path))


def test_gguf_files_go_through_the_conversion_cache(tmp_path, tiny_model_dir, monkeypatch):
    calls = []

    def fake_cached(path, cache_dir=None):
        calls.append((Path(path).name, cache_dir))
        return tiny_model_dir

    monkeypatch.setattr(gguf, "cached_gguf_checkpoint", fake_cached)
    f = tmp_path / "m.Q4.gguf"
    f.write_bytes(b"GGUF")
    assert resolve_model_path(str(f), cache_dir="/c") == str(tiny_model_dir)
    assert resolve_model_path(str(tmp_path), cache_dir="/c") == str(tiny_model_dir)  # dir of one
    assert calls == [("m.Q4.gguf", "/c"), ("m.Q4.gguf", "/c")]


def test_gguf_cache_reuses_a_conversion_of_the_same_content(tmp_path, monkeypatch):
    converted = []

    def fake_convert(src, out, extra=None):
        converted.append(src)
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        (out / gguf.RECORD).write_text(json.dumps({"key": gguf.gguf_key(src)}))
        return {}

    monkeypatch.setattr(gguf, "convert_gguf", fake_convert)
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF" + b"\0" * 100)
    first = gguf.cached_gguf_checkpoint(f, tmp_path / "cache")
    assert gguf.cached_gguf_checkpoint(f, tmp_path / "cache") == first
    assert len(converted) == 1
    f.write_bytes(b"GGUF" + b"\1" * 100)  # new content: a new conversion, elsewhere
    assert gguf.cached_gguf_checkpoint(f, tmp_path / "cache") != first
    assert len(converted) == 2


def test_reading_gguf_without_the_gguf_package_says_how_to_get_it(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gguf" else real(name, *a))
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    with pytest.raises(gguf.GGUFError, match=r"w4s-ray\[models\]"):
        gguf.convert_gguf(f, tmp_path / "out")


def test_preset_names_resolve_once_prepared(tmp_path, tiny_model_dir):
    with pytest.raises(ModelSourceError, match="run `w4s models prepare smollm2`"):
        resolve_model_path("smollm2", models_dir=tmp_path)
    out = presets.prepared_dir(presets.PRESETS["smollm2"], tmp_path)
    shutil.copytree(tiny_model_dir, out)
    (out / gguf.RECORD).write_text(json.dumps({"preset": "smollm2"}))
    assert resolve_model_path("smollm2", models_dir=tmp_path) == str(out.resolve())


def test_hub_id_offline_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelSourceError, match=r"hub is offline \(HF_HUB_OFFLINE=1\)"):
        resolve_model_path("no-such-org/no-such-model-w4s")


def test_hub_id_online_downloads_once_into_the_hf_cache(monkeypatch, tiny_model_dir, tmp_path):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    asked = []

    def fake_download(repo_id, allow_patterns=None, local_files_only=False):
        asked.append((repo_id, local_files_only))
        if local_files_only:
            raise LocalEntryNotFoundError("not cached")
        assert "*.safetensors" in allow_patterns  # weights + tokenizer, not every file
        return str(tiny_model_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    assert resolve_model_path("org/model") == str(tiny_model_dir)
    assert asked == [("org/model", True), ("org/model", False)]

    def failing(repo_id, allow_patterns=None, local_files_only=False):
        if local_files_only:
            raise LocalEntryNotFoundError("not cached")
        raise OSError("Name or service not known")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", failing)
    with pytest.raises(ModelSourceError, match="cannot fetch it from the Hugging Face hub"):
        resolve_model_path("org/model")
