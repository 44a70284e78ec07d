"""Sampling semantics of the served model: n, seeds, temperature, stop, usage, LoRA."""

from __future__ import annotations

import pytest
import torch

from w4s_ray.serve.checkpoint import resolve_model
from w4s_ray.serve.generation import (
    ChatGenerator,
    ContextLengthError,
    PromptFormatError,
    SamplingParams,
)

MSGS = [{"role": "system", "content": "You write Python workflows."},
        {"role": "user", "content": "Write solver(agent, task) for a math benchmark."}]


@pytest.fixture(scope="module")
def gen(tiny_model_dir):
    threads = torch.get_num_threads()
    yield ChatGenerator.load(resolve_model(str(tiny_model_dir)), name="tiny", threads=1)
    torch.set_num_threads(threads)


def _texts(out):
    return [c.text for c in out.completions]


def test_same_seed_same_samples_and_n_distinct(gen):
    p = SamplingParams(n=4, temperature=1.0, max_tokens=24, seed=123)
    a, b = gen.generate(MSGS, p), gen.generate(MSGS, p)
    assert len(a.completions) == 4
    assert _texts(a) == _texts(b)
    assert len(set(_texts(a))) > 1, "n samples at T>0 must not all be identical"


def test_different_seeds_differ(gen):
    a = gen.generate(MSGS, SamplingParams(n=2, temperature=1.0, max_tokens=24, seed=1))
    b = gen.generate(MSGS, SamplingParams(n=2, temperature=1.0, max_tokens=24, seed=2))
    assert _texts(a) != _texts(b)


def test_seeding_does_not_disturb_the_global_rng(gen):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    gen.generate(MSGS, SamplingParams(n=2, temperature=1.0, max_tokens=4, seed=99))
    assert torch.equal(torch.rand(3), expected)


def test_greedy_n_choices_are_identical_and_reproducible(gen):
    out = gen.generate(MSGS, SamplingParams(n=3, temperature=0.0, max_tokens=12))
    assert len(out.completions) == 3 and len(set(_texts(out))) == 1
    again = gen.generate(MSGS, SamplingParams(n=1, temperature=0.0, max_tokens=12, seed=7))
    assert _texts(again)[0] == _texts(out)[0]


def test_usage_counts_real_tokens(gen):
    out = gen.generate(MSGS, SamplingParams(n=3, temperature=1.0, max_tokens=10, seed=4))
    assert out.prompt_tokens == len(gen.prompt_ids(MSGS))
    text = gen.tokenizer.apply_chat_template(MSGS, tokenize=False, add_generation_prompt=True)
    assert out.prompt_tokens == len(gen.tokenizer(text, add_special_tokens=False)["input_ids"])
    for c in out.completions:
        assert 1 <= c.completion_tokens <= 10
        if c.finish_reason == "length":
            assert c.completion_tokens == 10
    assert out.completion_tokens == sum(c.completion_tokens for c in out.completions)


def test_max_tokens_gives_length_finish(gen):
    out = gen.generate(MSGS, SamplingParams(n=2, temperature=1.0, max_tokens=5, seed=11))
    lengths = [c for c in out.completions if c.finish_reason == "length"]
    assert lengths, "an untrained model should not end every sample within 5 tokens"
    assert all(c.completion_tokens == 5 for c in lengths)
    assert all(c.finish_reason in ("stop", "length") for c in out.completions)


def test_stop_sequences_cut_text_and_stop_generation(gen):
    free = gen.generate(MSGS, SamplingParams(n=6, temperature=1.0, max_tokens=60, seed=5))
    # Pick a stop string that occurs in one free-running sample, away from its start.
    sample = next(c.text for c in free.completions if len(c.text) > 12)
    stop = sample[6:8]
    out = gen.generate(MSGS, SamplingParams(n=6, temperature=1.0, max_tokens=60, seed=5,
                                            stop=(stop,)))
    for free_c, c in zip(free.completions, out.completions, strict=True):
        assert stop not in c.text
        if stop in free_c.text:
            # Same seed: identical up to the stop string, then cut before it.
            assert c.finish_reason == "stop"
            assert c.text == free_c.text[: free_c.text.index(stop)]
            assert c.completion_tokens <= free_c.completion_tokens
    assert any(c.finish_reason == "stop" for c in out.completions)


def test_context_window_is_enforced(gen, monkeypatch):
    n_prompt = len(gen.prompt_ids(MSGS))
    monkeypatch.setattr(gen, "max_positions", n_prompt)
    with pytest.raises(ContextLengthError, match="context window"):
        gen.generate(MSGS, SamplingParams(max_tokens=4))
    monkeypatch.setattr(gen, "max_positions", n_prompt + 3)
    out = gen.generate(MSGS, SamplingParams(n=1, temperature=1.0, max_tokens=50, seed=3))
    assert out.completions[0].completion_tokens <= 3


def test_template_refusal_is_a_prompt_error(gen, monkeypatch):
    monkeypatch.setattr(gen.tokenizer, "chat_template",
                        "{{ raise_exception('roles must alternate') }}")
    with pytest.raises(PromptFormatError, match="roles must alternate"):
        gen.generate(MSGS, SamplingParams(max_tokens=2))


def test_bad_sampling_params_are_rejected():
    for bad in (dict(n=0), dict(max_tokens=0), dict(temperature=-1), dict(top_p=0),
                dict(stop=("",))):
        with pytest.raises(ValueError):
            SamplingParams(**bad)


def test_lora_adapter_is_merged_into_its_base(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    # Random (not zero) B matrices, so the adapter really changes the outputs.
    peft_model = get_peft_model(
        base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    adapter_dir = tmp_path / "adapter"
    peft_model.save_pretrained(adapter_dir)

    resolved = resolve_model(str(adapter_dir), lora_base=str(tiny_model_dir))
    threads = torch.get_num_threads()
    served = ChatGenerator.load(resolved, name="lora", threads=1)
    plain = ChatGenerator.load(resolve_model(str(tiny_model_dir)), name="base")
    torch.set_num_threads(threads)
    expected = ChatGenerator(peft_model.merge_and_unload().eval(), plain.tokenizer)
    p = SamplingParams(n=2, temperature=1.0, max_tokens=16, seed=8)
    assert _texts(served.generate(MSGS, p)) == _texts(expected.generate(MSGS, p))
    assert _texts(served.generate(MSGS, p)) != _texts(plain.generate(MSGS, p))


def test_truncate_prompt_fits_like_the_local_backend_and_leaves_room_to_answer(gen, monkeypatch):
    n_prompt = len(gen.prompt_ids(MSGS))
    monkeypatch.setattr(gen, "max_positions", n_prompt)
    monkeypatch.setattr(gen, "truncate_prompt", True)
    before = gen.truncated_prompts
    out = gen.generate(MSGS, SamplingParams(n=1, temperature=1.0, max_tokens=20, seed=3))
    assert gen.truncated_prompts == before + 1
    # The prompt was cut to leave max_tokens of room (at most a third of the context), so the
    # answer was not starved.
    budget = max(16, n_prompt - min(20, n_prompt // 3))
    assert out.prompt_tokens == budget
    # The same rule as the local meta-agent backend and RWR training (meta_agent.context).
    from w4s_ray.meta_agent.context import fit_chat

    assert gen.prepare(MSGS, SamplingParams(max_tokens=20)) == fit_chat(
        MSGS, gen._encode, budget).fitted_ids()
