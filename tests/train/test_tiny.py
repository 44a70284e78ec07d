"""The tiny offline meta-agent: hub-free build, HF loading, chat template, warm start."""

from __future__ import annotations

import json

import pytest
import torch

from w4s_ray.config import TinyModelConfig, load_config
from w4s_ray.errors import ConfigError, W4SError


def test_tiny_model_loads_with_auto_classes_and_ids_match_trained_tokenizer(tiny_model_dir):
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert json.loads((tiny_model_dir / "config.json").read_text())["model_type"] == "llama"
    raw = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    text = "def solver(agent, task):\n    r = agent.call_llm(messages=[], temperature=0.5)\n"
    assert tok(text, add_special_tokens=False)["input_ids"] == raw.encode(text).ids
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    assert tok.eos_token == "<|im_end|>" and tok.pad_token_id != tok.eos_token_id
    assert model.config.vocab_size == len(tok)
    assert model.generation_config.eos_token_id == tok.eos_token_id

    msgs = [{"role": "user", "content": "hi"}]
    prompt = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]


def test_build_is_deterministic_and_validates_shape(tmp_path):
    from w4s_ray.train.tiny import build_tiny_model

    corpus = ["def solver(agent, task):\n    return {'answer': 1}\n"] * 20
    cfg = TinyModelConfig(vocab_size=300, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1)
    a = build_tiny_model(tmp_path / "a", cfg, corpus)
    b = build_tiny_model(tmp_path / "b", cfg, corpus)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
    from safetensors.torch import load_file

    sa, sb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not list(tmp_path.glob(".*tmp*"))  # no temp dirs left behind
    with pytest.raises(ConfigError, match="tiny: Value error, hidden_size 30.*divide evenly"):
        load_config(None, ["tiny.hidden_size=30"])  # a schema rule, before anything is built
    with pytest.raises(W4SError, match="corpus is empty"):
        build_tiny_model(tmp_path / "d", cfg, ["  "])


def test_warmstart_variations_are_valid_distinct_workflows():
    import random

    from w4s_ray.train.warmstart import (
        add_verification,
        format_answer,
        rename_variables,
        seeds_for,
        set_call_kwargs,
        variations,
    )
    from w4s_ray.workflow.extract import extract_workflow

    seeds, bm = seeds_for("gsm8k")
    assert seeds and bm is not None
    rng = random.Random(0)
    for name, code in seeds.items():
        outs = variations(name, code, rng)
        assert len(outs) >= 3
        codes = [c for _, c in outs]
        assert len(set(codes)) == len(codes)  # each variation really changes the code
        for analysis, c in outs:
            reply = format_answer(analysis, c)
            assert extract_workflow(reply).strip() == c.strip()
    src = "def solver(agent, task):\n    out = agent.call_llm(messages=[], temperature=0.0, num_of_response=1)\n    return {'answer': out[0]}\n"
    hot = set_call_kwargs(src, {"temperature": 0.7, "num_of_response": 5})
    assert "temperature=0.7" in hot and "num_of_response=5" in hot
    renamed = rename_variables(src, random.Random(1))
    assert "out =" not in renamed and "agent.call_llm" in renamed and "def solver(agent, task)" in renamed
    verified = add_verification(src)
    assert "careful verifier" in verified and extract_workflow(format_answer("a", verified))


@pytest.mark.parametrize("protocol", ["w4s", "w4s-ray"])
def test_warmstart_prompts_are_the_protocols_meta_agent_prompt(protocol):
    from w4s_ray.rlao import prompts, prompts_w4s
    from w4s_ray.train.warmstart import warmstart_pairs

    pairs, got = warmstart_pairs(["gsm8k", "humaneval"], seed=0, protocol=protocol)
    assert set(got) == {"gsm8k", "humaneval"}
    msgs = got["humaneval"]
    system = prompts_w4s.SYSTEM_PROMPT if protocol == "w4s" else prompts.SYSTEM_PROMPT
    assert msgs[0] == {"role": "system", "content": system}
    assert "test_on_public_test" in msgs[1]["content"]  # code benchmarks get the code API
    assert all("```python" in a for _, a in pairs)


def test_init_tiny_writes_model_report_and_parse_rate(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from w4s_ray.train.tiny import init_tiny

    cfg = TinyModelConfig(vocab_size=1024, warmstart_max_seq_len=512, warmstart_batch_size=2)
    rep = init_tiny(cfg, out_dir=tmp_path / "tiny", benchmarks=["gsm8k"], steps=3,
                    samples_per_benchmark=2, max_new_tokens=8, progress=False)
    model_dir = tmp_path / "tiny" / "model"
    assert rep["model_dir"] == str(model_dir) and rep["steps"] == 3
    AutoModelForCausalLM.from_pretrained(model_dir)
    assert AutoTokenizer.from_pretrained(model_dir).eos_token == "<|im_end|>"
    saved = json.loads((tmp_path / "tiny" / "warmstart.json").read_text())
    assert 0.0 <= saved["parse_rate"] <= 1.0 and set(saved["per_benchmark"]) == {"gsm8k"}
    assert len(saved["history"]) == 3 and saved["k"] == 2
    assert "parse rate" in (tmp_path / "tiny" / "warmstart.md").read_text()
    assert (tmp_path / "tiny" / "warmstart_loss.png").exists()
    assert not (tmp_path / "tiny" / ".build").exists()


def test_cli_init_tiny_rejects_unknown_benchmark(tmp_path, capsys):
    from w4s_ray.cli import main

    rc = main(["meta-agent", "init-tiny", "--out", str(tmp_path), "--benchmarks", "nope"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "unknown benchmark 'nope'" in err[0]


def test_qwen2_arch_keeps_trained_ids_through_load_tokenizer(tmp_path):
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    from w4s_ray.meta_agent.tokenizer import load_tokenizer
    from w4s_ray.train.tiny import build_tiny_model

    corpus = ["def solver(agent, task):\n    return {'answer': task.strip()}\n"] * 20
    cfg = TinyModelConfig(arch="qwen2", vocab_size=300, hidden_size=32, num_layers=1,
                          num_heads=2, num_kv_heads=1)
    out = build_tiny_model(tmp_path / "q", cfg, corpus)
    assert AutoModelForCausalLM.from_pretrained(out).config.model_type == "qwen2"
    tok = load_tokenizer(out)
    raw = Tokenizer.from_file(str(out / "tokenizer.json"))
    text = "def solver(agent, task):  return   {'answer': 42}"
    assert tok(text, add_special_tokens=False)["input_ids"] == raw.encode(text).ids
    assert tok.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False,
                                   add_generation_prompt=True).endswith("<|im_start|>assistant\n")


def _long_pairs():
    from w4s_ray.train.warmstart import warmstart_pairs

    return warmstart_pairs(["gsm8k"], seed=0, prompts_per_benchmark=2, protocol="w4s-ray")


def test_warm_start_trains_on_prompts_fitted_by_the_sampling_rule(tiny_model_dir, monkeypatch):
    """Every warm-start sequence is a prompt fitted by `meta_agent.context` (what the local
    backend samples from: the system prompt first, the generation prompt last, the middle cut)
    followed by the answer; the budgets vary from step to step (a fixed cut would let the
    model key on where the cut falls)."""
    from transformers import AutoModelForCausalLM

    from w4s_ray.meta_agent import context
    from w4s_ray.meta_agent.tokenizer import load_tokenizer
    from w4s_ray.train import warmstart
    from w4s_ray.train.rwr import IGNORE_INDEX

    tok = load_tokenizer(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    pairs, _ = _long_pairs()
    encode = warmstart.chat_encoder(tok)
    assert all(len(encode(m, True)) > 1200 for m, _ in pairs)  # all need fitting below
    fitted = {}  # prompt length -> the fitted prompts of every pair at that budget

    def fits(prompt):
        if len(prompt) not in fitted:
            fitted[len(prompt)] = [context.fit_chat(m, encode, len(prompt)).fitted_ids()
                                   for m, _ in pairs]
        return prompt in fitted[len(prompt)]

    seen = []

    def spy(model, batch):
        for ids, labels in zip(batch["input_ids"].tolist(), batch["labels"].tolist(),
                               strict=True):
            n_prompt = next(i for i, t in enumerate(labels) if t != IGNORE_INDEX)
            prompt = ids[:n_prompt]
            assert fits(prompt)
            assert prompt[:5] == encode(pairs[0][0][:1], False)[:5]  # the system prompt leads
            seen.append(n_prompt)
        return real(model, batch)

    real = warmstart.batch_loss
    monkeypatch.setattr(warmstart, "batch_loss", spy)
    warmstart.sft(model, tok, pairs, steps=4, lr=1e-3, batch_size=2, max_seq_len=1200,
                  progress=False)
    assert len(seen) == 8 and len(set(seen)) > 1 and max(seen) < 1200


def test_parse_rate_samples_the_prompt_the_local_backend_would_send(tiny_model_dir,
                                                                    monkeypatch):
    import torch

    from w4s_ray.meta_agent import make_meta_agent
    from w4s_ray.meta_agent.tokenizer import load_tokenizer
    from w4s_ray.train import warmstart

    cfg = load_config(None, ["meta_agent.backend=local", f"meta_agent.model={tiny_model_dir}"])
    agent = make_meta_agent(cfg)
    _, prompts = _long_pairs()
    sent = []

    class Model:
        def generate(self, input_ids, **kw):
            sent.append(input_ids[0].tolist())
            return torch.cat([input_ids, input_ids[:, -1:]], dim=1)

    ctx = agent.loaded.max_positions
    warmstart.parse_rate(Model(), load_tokenizer(tiny_model_dir), prompts, k=1,
                         max_prompt_tokens=ctx - agent.reply_room)
    assert sent == [agent.encode(prompts["gsm8k"])] and agent.truncated_prompts == 1
