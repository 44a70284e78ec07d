"""The batched weighted loss equals the per-sample reference and respects masks and weights."""

from __future__ import annotations

import pytest
import torch

from tests.train.synth import make_rows
from w4s_ray.train.loss import batch_loss, collate, per_sample_rwr_loss, weighted_rwr_loss
from w4s_ray.train.rwr import IGNORE_INDEX, build_examples


@pytest.fixture(scope="module", params=["candidate", "all_assistant"])
def model_and_examples(tiny_model_dir, request):
    """Both losses: the candidate only, and every assistant turn of the sample (upstream)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    exs, _ = build_examples(make_rows(), tok, temperature=0.4, loss_on=request.param)
    if request.param == "all_assistant":  # the synthetic history holds assistant turns
        assert any(e.num_action_tokens > len(e.input_ids) - e.action_start for e in exs)
    return model, tok, exs


def test_batched_loss_matches_per_sample_reference(model_and_examples):
    model, tok, exs = model_and_examples
    exs = exs[:5]
    assert len({len(e.input_ids) for e in exs}) > 1  # padding is exercised
    batch = collate([e.input_ids for e in exs], [e.labels for e in exs],
                    [e.weight for e in exs], tok.pad_token_id)
    with torch.no_grad():
        batched, seq_ce = batch_loss(model, batch)
        ref = per_sample_rwr_loss(model, [e.input_ids for e in exs], [e.labels for e in exs],
                                  [e.weight for e in exs])
    assert batched.item() == pytest.approx(ref.item(), rel=1e-4)
    assert seq_ce.shape == (5,)


def test_loss_ignores_masked_positions_and_scales_with_weight():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 11)
    labels = torch.full((2, 6), IGNORE_INDEX)
    labels[0, 3:] = torch.tensor([1, 2, 3])
    labels[1, 5] = 4
    w = torch.tensor([1.0, 1.0])
    base, seq = weighted_rwr_loss(logits, labels, w)
    # changing logits at positions whose next label is masked does not change the loss
    logits2 = logits.clone()
    logits2[0, 0] += 5.0
    logits2[1, :4] -= 3.0
    assert weighted_rwr_loss(logits2, labels, w)[0].item() == pytest.approx(base.item())
    doubled, _ = weighted_rwr_loss(logits, labels, torch.tensor([2.0, 0.0]))
    assert doubled.item() == pytest.approx(seq[0].item())  # (2*ce0 + 0*ce1) / 2
    # a row without any action token contributes zero, not NaN
    labels[1] = IGNORE_INDEX
    assert torch.isfinite(weighted_rwr_loss(logits, labels, w)[0])


def test_logits_to_keep_path_equals_full_logits(model_and_examples):
    model, tok, exs = model_and_examples
    exs = exs[:4]
    b = collate([e.input_ids for e in exs], [e.labels for e in exs], [e.weight for e in exs],
                tok.pad_token_id)
    with torch.no_grad():
        fast, fast_ce = batch_loss(model, b)
        full = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        ref, ref_ce = weighted_rwr_loss(full, b["labels"], b["weights"])
    assert fast.item() == pytest.approx(ref.item(), rel=1e-5)
    assert torch.allclose(fast_ce, ref_ce, rtol=1e-5)


def test_packed_prompt_sharing_gives_the_per_sample_loss(model_and_examples):
    from dataclasses import asdict

    from w4s_ray.train.loss import collate_packed, packed_batch_loss
    from w4s_ray.train.rwr import pack_examples

    model, tok, exs = model_and_examples
    exs = exs[:7]  # 2 full turns of 3 candidates + 1: rows of different lengths -> padding
    rows = pack_examples(exs, 100_000)
    assert [len(r.weights) for r in rows] == [3, 3, 1]
    b = collate_packed([asdict(r) for r in rows], tok.pad_token_id)
    with torch.no_grad():
        packed, seq_ce = packed_batch_loss(model, b)
        ref = per_sample_rwr_loss(model, [e.input_ids for e in exs], [e.labels for e in exs],
                                  [e.weight for e in exs])
        one = [per_sample_rwr_loss(model, [e.input_ids], [e.labels], [1.0]) for e in exs]
    assert packed.item() == pytest.approx(ref.item(), rel=1e-4)
    assert seq_ce.tolist() == pytest.approx([o.item() for o in one], rel=1e-4)


def test_prefix_sharing_has_the_per_sample_gradient_and_the_dense_value(model_and_examples):
    """The cached prompt stays in the autograd graph: loss and gradients equal the per-sample
    loop's (the reference the bench's speedup is measured against)."""
    from dataclasses import asdict

    from w4s_ray.train.loss import collate_packed, packed_batch_loss, packed_batch_loss_dense
    from w4s_ray.train.rwr import pack_examples

    model, tok, exs = model_and_examples
    exs = exs[:7]
    rows = pack_examples(exs, 100_000)
    assert any(len(r.weights) > 1 for r in rows)  # some prompt is shared by several actions
    b = collate_packed([asdict(r) for r in rows], tok.pad_token_id)

    def grads(loss):
        model.zero_grad(set_to_none=True)
        loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    loss_prefix = packed_batch_loss(model, b)[0]
    loss_ref = per_sample_rwr_loss(model, [e.input_ids for e in exs], [e.labels for e in exs],
                                   [e.weight for e in exs])
    assert loss_prefix.item() == pytest.approx(loss_ref.item(), rel=1e-4)
    g_prefix, g_ref = grads(loss_prefix), grads(loss_ref)
    assert set(g_prefix) == set(g_ref)
    # Embeddings and attention projections get gradient only through the cached prompt
    # for prompt tokens: a detached cache would make these differ.
    for name, g in g_ref.items():
        assert torch.allclose(g_prefix[name], g, rtol=1e-3, atol=1e-6), name
    with torch.no_grad():
        dense = packed_batch_loss_dense(model, b)[0].item()
        prefix = packed_batch_loss(model, b)[0].item()
    assert prefix == pytest.approx(dense, rel=1e-5)


@pytest.mark.parametrize("lora", [False, True])
def test_checkpointed_model_with_the_dense_packed_loss_has_the_plain_gradient(
        model_and_examples, tiny_model_dir, lora):
    """Gradient checkpointing (as `trainer._load_model` turns it on, with and without LoRA)
    with the block-mask packed loss the trainer then uses: the same loss and gradients as the
    un-checkpointed prefix-sharing loss."""
    from dataclasses import asdict

    from w4s_ray.config import TrainConfig
    from w4s_ray.train.loss import collate_packed, packed_batch_loss, packed_batch_loss_dense
    from w4s_ray.train.rwr import pack_examples
    from w4s_ray.train.trainer import _load_model

    _, tok, exs = model_and_examples
    b = collate_packed([asdict(r) for r in pack_examples(exs[:7], 100_000)], tok.pad_token_id)
    tc = TrainConfig(lora=lora, lora_r=4)

    def run(checkpointing, loss_fn):
        torch.manual_seed(0)  # same LoRA init in both models
        model = _load_model(tc, str(tiny_model_dir), checkpointing).train()
        on = getattr(model, "is_activation_checkpointing", None)
        assert (on if on is not None else model.is_gradient_checkpointing) == checkpointing
        loss = loss_fn(model, b)[0]
        loss.backward()
        return loss.item(), {n: p.grad for n, p in model.named_parameters()
                             if p.grad is not None}

    plain_loss, plain = run(False, packed_batch_loss)
    ckpt_loss, ckpt = run(True, packed_batch_loss_dense)
    assert ckpt_loss == pytest.approx(plain_loss, rel=1e-5)
    assert set(ckpt) == set(plain) and plain
    for name, g in plain.items():
        assert torch.allclose(ckpt[name], g, rtol=1e-3, atol=1e-6), name


# ------------------------------------------------------------- train.kl_coef: KL to the base


def _packed_batch(exs, tok):
    from dataclasses import asdict

    from w4s_ray.train.loss import collate_packed
    from w4s_ray.train.rwr import pack_examples

    return collate_packed([asdict(r) for r in pack_examples(exs[:7], 100_000)],
                          tok.pad_token_id)


def _frozen(model):
    import contextlib

    return lambda: contextlib.nullcontext(model)


def test_kl_from_reference_is_the_forward_kl_per_label():
    from w4s_ray.train.loss import kl_from_reference

    torch.manual_seed(0)
    ref, pol = torch.randn(5, 13), torch.randn(5, 13)
    kl = kl_from_reference(pol, ref)
    p = torch.softmax(ref, -1)
    expect = (p * (p.log() - torch.log_softmax(pol, -1))).sum(-1)
    assert torch.allclose(kl, expect, atol=1e-6)
    assert (kl > 0).all()
    assert torch.allclose(kl_from_reference(ref, ref), torch.zeros(5), atol=1e-6)
    # Mass-covering: a policy that drops a token the reference gives 1/2 pays for it; one
    # that puts mass where the reference has little pays far less.
    base = torch.log(torch.tensor([[0.5, 0.5, 1e-3]]))
    dropped = torch.log(torch.tensor([[0.999, 1e-3, 1e-3]]))
    spread = torch.log(torch.tensor([[0.4, 0.4, 0.2]]))
    assert kl_from_reference(dropped, base) > 10 * kl_from_reference(spread, base)


def test_kl_term_is_added_with_its_coefficient_and_vanishes_against_itself(model_and_examples):
    import copy

    from w4s_ray.train.loss import (
        packed_batch_loss,
        packed_label_logits,
        packed_label_logits_dense,
        rwr_loss,
    )

    model, tok, exs = model_and_examples
    b = _packed_batch(exs, tok)
    with torch.no_grad():
        plain, plain_ce = packed_batch_loss(model, b)
        same, _, same_kl = rwr_loss(packed_label_logits, model, b, 2.0, _frozen(model))
        off, _, none = rwr_loss(packed_label_logits, model, b, 0.0, _frozen(model))
        moved = copy.deepcopy(model)
        for p in moved.parameters():
            p.add_(0.05 * torch.randn_like(p))
        loss, ce, kl = rwr_loss(packed_label_logits, moved, b, 2.0, _frozen(model))
        rwr_only = packed_batch_loss(moved, b)[0]
        _, _, kl_dense = rwr_loss(packed_label_logits_dense, moved, b, 2.0, _frozen(model))
    assert none is None and off.item() == pytest.approx(plain.item(), rel=1e-6)
    assert same.item() == pytest.approx(plain.item(), rel=1e-5)
    assert same_kl.abs().max().item() < 1e-5
    assert kl.shape == ce.shape == plain_ce.shape and (kl > 1e-4).all()
    assert loss.item() == pytest.approx(rwr_only.item() + 2.0 * kl.mean().item(), rel=1e-5)
    assert torch.allclose(kl_dense, kl, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="reference"):
        rwr_loss(packed_label_logits, model, b, 1.0, None)


def test_lora_reference_is_the_base_with_adapters_off(model_and_examples, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from w4s_ray.config import TrainConfig
    from w4s_ray.train.loss import packed_label_logits, rwr_loss
    from w4s_ray.train.trainer import _load_model, _reference

    _, tok, exs = model_and_examples
    b = _packed_batch(exs, tok)
    tc = TrainConfig(lora=True, lora_r=4, kl_coef=1.0)
    torch.manual_seed(0)
    model = _load_model(tc, str(tiny_model_dir))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:  # peft starts B at zero: give the adapters an effect
                p.normal_(0, 0.05)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        adapted = packed_label_logits(model, b)
        _, _, kl_lora = rwr_loss(packed_label_logits, model, b, 1.0,
                                 _reference(tc, str(tiny_model_dir), model, torch.device("cpu")))
        _, _, kl_copy = rwr_loss(packed_label_logits, model, b, 1.0, _frozen(base))
        after = packed_label_logits(model, b)
    assert (kl_lora > 1e-4).all()
    assert torch.allclose(kl_lora, kl_copy, rtol=1e-4, atol=1e-6)
    assert torch.equal(after, adapted)  # the adapters are on again after the reference pass
    full = _reference(TrainConfig(kl_coef=1.0), str(tiny_model_dir), model, torch.device("cpu"))
    with full() as ref:
        assert not any(p.requires_grad for p in ref.parameters())


def test_kl_term_keeps_the_trained_policy_nearer_the_base_and_more_spread(tiny_model_dir):
    """What the term is for: the same RWR steps from the same start, with and without it.
    With it the policy ends nearer the base and keeps more entropy at the trained tokens,
    while it still fits the examples better than the base did."""
    import copy

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from w4s_ray.train.loss import kl_from_reference, packed_label_logits, rwr_loss

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    exs, _ = build_examples(make_rows(), tok, temperature=0.4, loss_on="candidate")
    b = _packed_batch(exs[:4], tok)

    def entropy(logits):
        logp = torch.log_softmax(logits, -1)
        return -(logp.exp() * logp).sum(-1).mean().item()

    def train(kl_coef):
        # eval(): no dropout, so both runs take the same path but for the term
        model = copy.deepcopy(base).eval()
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        for _ in range(8):
            loss = rwr_loss(packed_label_logits, model, b, kl_coef, _frozen(base))[0]
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            return packed_label_logits(model, b)

    with torch.no_grad():
        start = packed_label_logits(base, b)
    plain, held = train(0.0), train(20.0)
    # measured: 0.23 against 0.62 (the fixture model is deterministic: seed 0, eval mode)
    assert kl_from_reference(held, start).mean() < 0.5 * kl_from_reference(plain, start).mean()
    assert entropy(held) > entropy(plain)
    ce = torch.nn.functional.cross_entropy
    assert ce(held, b["tgt_tok"]) < ce(start, b["tgt_tok"])
