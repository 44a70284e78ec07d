"""Bench: RWR training throughput, this trainer's batched loss step vs the paper code's loop.

Both sides run on the same tiny model, the same examples and the same AdamW step, measured
side by side (alternating batch by batch) in one process. Data has the W4S shape: per turn one
gsm8k meta-agent prompt and m = 5 candidate actions sampled on it (seed-workflow answers,
random rewards, RWR weights exp(r/0.4)); a batch is 2 turns = 10 examples.

The prompts are the real W4S first-turn prompts (~4.7k tokens with the tiny tokenizer; later
turns carry history and are longer), so the target row uses a tiny model of the same
architecture with an 8192-token context; a second row repeats the measurement at the demo's
tiny meta-agent context (1536), where prompts are cut to ~1k tokens and actions dominate.

- batched (what `w4s train` runs): the candidates of a turn packed into one row whose prompt
  goes through the model once (KV cache kept in the autograd graph), then the m actions as one
  batch on that cache; logits only where labels are (`train.loss.collate_packed` +
  `packed_batch_loss`);
- per-sample: one forward per example with `labels=` (HF loss), weighted and averaged, as the
  paper code's HF Trainer subclass does.

Reports action tokens per second of each and their ratio (target >= 3). CPU, no Ray: this
measures the loss step, not the Ray Train plumbing.

    python bench/bench_train.py
"""

from __future__ import annotations

import json
import math
import random
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


# Length of each failure case's reply in the feedback: calibrated so prompts match those of a
# real `w4s collect` on the simulator (4.6k-5.1k tokens with the tiny tokenizer, turns 0-2).
REPLY_CHARS = 550


def _feedback(bm, rng: random.Random) -> str:
    """Validation feedback shaped like `rlao.prompts.format_feedback` in a real run: 2
    failure cases whose "workflow's answer" is a step-by-step reply (format_feedback keeps up
    to 2,000 characters of it; REPLY_CHARS here)."""
    items = bm.load("valid")
    acc = rng.uniform(0.2, 0.95)
    lines = [f"Accuracy on the validation set: {acc * 100:.1f}% "
             f"({round(acc * len(items))}/{len(items)} fully correct)."]
    picked = rng.sample(items, 2)
    lines.append(f"\nHere are {len(picked)} cases where the workflow was wrong:")
    for num, it in enumerate(picked, 1):
        steps = " ".join(f"Step {k}: from the question, {rng.randint(2, 99)} x "
                         f"{rng.randint(2, 99)} gives {rng.randint(100, 9999)}." for k in range(1, 30))
        lines.append(f"\n### Case {num}\n#### Question\n{it.question}\n"
                     f"#### Workflow's answer\n{steps[:REPLY_CHARS]}\n#### Correct answer\n{it.answer}")
    return "\n".join(lines)


def _turns(tok, n_turns: int, candidates: int, max_seq_len: int, seed: int):
    """W4S-shaped data: each turn has its own gsm8k meta-agent prompt (the real prompt builder,
    the benchmark's seed workflows as the archive, feedback as in a real run) and `candidates`
    actions on it (seed-workflow variations)."""
    from w4s_ray.rlao.mdp import ArchiveEntry, initial_state
    from w4s_ray.rlao.prompts import PromptSpec, build_messages
    from w4s_ray.train.rwr import Example, tokenize_example
    from w4s_ray.train.warmstart import format_answer, seeds_for, variations

    rng = random.Random(seed)
    seeds, bm = seeds_for("gsm8k")
    answers = [format_answer(a, c) for name, code in seeds.items()
               for a, c in variations(name, code, rng)]
    turns = []
    for _ in range(n_turns):
        entries = [ArchiveEntry(name=k, code=v, val_accuracy=round(rng.uniform(0.2, 0.9), 2),
                                feedback=_feedback(bm, rng)) for k, v in seeds.items()]
        state = initial_state("gsm8k", bm.task_description, entries)
        prompt = build_messages(state, PromptSpec(kind=bm.kind, answer_format=bm.answer_format))
        turn = []
        key = json.dumps(prompt)
        for _ in range(candidates):
            r = rng.choice([1.0, 0.5, 0.0, -0.5])
            ids, labels, _ = tokenize_example(tok, prompt, rng.choice(answers), max_seq_len)
            turn.append(Example(ids, labels, math.exp(r / 0.4), r, meta={"prompt_key": key}))
        turns.append(turn)
    return turns


def _time_interleaved(fns: dict, batches, warmup: int = 1) -> dict[str, float]:
    """Run every step function on each batch in turn, batch by batch, so load changes on a
    shared box hit all sides alike; returns the summed seconds of each (warm-up excluded)."""
    total = dict.fromkeys(fns, 0.0)
    for i, b in enumerate(batches):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn(b)
            if i >= warmup:
                total[name] += time.perf_counter() - t0
    return total


# The ablation: each variant is the default step with one technique taken away (or, for
# checkpointing, added), on its own copy of the same model and optimizer.
VARIANTS = {
    "batched": "default: candidates of a turn packed on one prompt encoding, the actions run "
               "on its KV cache (prefix sharing), logits only where labels are",
    "full_logits": "the default, but the LM head on every position (no logits_to_keep)",
    "dense_packed": "packing without the KV-cache split: one forward over prompt + m actions "
                    "with a block attention mask (prompt once, dense (P+mA)^2 attention)",
    "dense_packed_ckpt": "dense_packed with gradient checkpointing (the trainer's path when "
                         "train.gradient_checkpointing is on)",
    "padded": "no packing: the examples as one right-padded batch (prompt m times), logits "
              "only where labels are",
    "per_sample": "the paper code's loop: one forward per example with HF labels= (reference)",
}


class _FullLogits:
    """A model wrapper that computes logits at every position, then keeps the ones asked for:
    the default path minus `logits_to_keep`."""

    def __init__(self, model):
        self.model = model

    def __call__(self, **kw):
        import torch

        keep = kw.pop("logits_to_keep", None)
        out = self.model(**kw)
        if isinstance(keep, torch.Tensor):
            out.logits = out.logits[:, keep]
        return out


def make_step(name: str, model_dir, pad_id: int, max_seq_len: int):
    """A fresh model and AdamW for variant `name`, and its training step on a batch of
    `rwr.Example`s (forward, backward, optimizer step)."""
    import torch
    from transformers import AutoModelForCausalLM

    from w4s_ray.config import TrainConfig
    from w4s_ray.train.loss import (
        batch_loss,
        collate,
        collate_packed,
        packed_batch_loss,
        packed_batch_loss_dense,
        per_sample_rwr_loss,
    )
    from w4s_ray.train.rwr import pack_examples
    from w4s_ray.train.trainer import _load_model

    def packed(b):
        return collate_packed([asdict(r) for r in pack_examples(b, 2 * max_seq_len)], pad_id)

    def padded(b):
        return collate([e.input_ids for e in b], [e.labels for e in b], [e.weight for e in b],
                       pad_id)

    def per_sample(m, b):
        return per_sample_rwr_loss(m, [e.input_ids for e in b], [e.labels for e in b],
                                   [e.weight for e in b])

    # name -> (the loss of a batch given the model, gradient checkpointing)
    losses = {
        "batched": (lambda m, b: packed_batch_loss(m, packed(b))[0], False),
        "full_logits": (lambda m, b: packed_batch_loss(_FullLogits(m), packed(b))[0], False),
        "dense_packed": (lambda m, b: packed_batch_loss_dense(m, packed(b))[0], False),
        "dense_packed_ckpt": (lambda m, b: packed_batch_loss_dense(m, packed(b))[0], True),
        "padded": (lambda m, b: batch_loss(m, padded(b))[0], False),
        "per_sample": (per_sample, False),
    }
    loss_fn, ckpt = losses[name]
    model = (_load_model(TrainConfig(), str(model_dir), True) if ckpt else
             AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(b):
        loss = loss_fn(model, b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    step.model, step.opt = model, opt  # bench_train_memory sets up the optimizer state
    return step


def run(steps: int = 2, turns_per_batch: int = 2, candidates: int = 5,
        context: int = 8192, capped_context: int | None = 1536, seed: int = 0,
        ablation: bool = True) -> list[dict]:
    """The target row and (with `ablation`) every variant at `context` (W4S prompts
    untruncated, ~4.7k tokens with the tiny tokenizer, as a model with a real context sees
    them); an informational default-vs-loop row at the tiny meta-agent's own 1536-token
    context, where prompts are cut to ~1k tokens."""
    names = list(VARIANTS) if ablation else ["batched", "per_sample"]
    rows = _run_at(steps, turns_per_batch, candidates, context, seed, names)
    if capped_context:
        for r in _run_at(steps, turns_per_batch, candidates, capped_context, seed,
                         ["batched", "per_sample"]):
            rows.append({**r, "name": f"{r['name']}_ctx{capped_context}", "target": None})
    return rows


def _run_at(steps: int, turns_per_batch: int, candidates: int, context: int,
            seed: int, names: list[str]) -> list[dict]:
    import torch

    from w4s_ray.config import TinyModelConfig
    from w4s_ray.meta_agent.tokenizer import load_tokenizer
    from w4s_ray.train.tiny import build_tiny_model

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        mdir = build_tiny_model(Path(tmp) / "m", TinyModelConfig(
            seed=seed, max_position_embeddings=context))
        tok = load_tokenizer(mdir)
        max_seq_len = context
        turns = _turns(tok, turns_per_batch * (steps + 1), candidates, max_seq_len, seed)
        batches = [sum(turns[i * turns_per_batch:(i + 1) * turns_per_batch], [])
                   for i in range(steps + 1)]
        exs = [e for b in batches for e in b]
        action_tokens = sum(e.num_action_tokens for b in batches[1:] for e in b)

        seconds = _time_interleaved(
            {n: make_step(n, mdir, tok.pad_token_id, max_seq_len) for n in names}, batches)
    params = {"context": context, "steps": steps, "turns_per_batch": turns_per_batch, "candidates": candidates,
              "examples_per_batch": turns_per_batch * candidates, "max_seq_len": max_seq_len,
              "action_tokens": action_tokens,
              "mean_seq_len": round(sum(len(e.input_ids) for e in exs) / len(exs), 1),
              "torch_threads": torch.get_num_threads()}
    tps = {n: action_tokens / s for n, s in seconds.items()}
    rows = [
        {"name": "rwr_batched_tokens_per_s", "value": round(tps["batched"], 1), "target": None,
         "unit": "action tokens/s", "params": params},
        {"name": "rwr_per_sample_tokens_per_s", "value": round(tps["per_sample"], 1),
         "target": None, "unit": "action tokens/s", "params": params},
        {"name": "rwr_batched_speedup", "value": round(tps["batched"] / tps["per_sample"], 2),
         "target": 3.0, "unit": "x (batched / per-sample)", "params": params},
    ]
    for n in names:
        if n in ("batched", "per_sample"):
            continue
        rows.append({"name": f"rwr_ablation_{n}_speedup",
                     "value": round(tps[n] / tps["per_sample"], 2), "target": None,
                     "unit": "x (variant / per-sample), measured in the same loop",
                     "params": {**params, "variant": VARIANTS[n],
                                "tokens_per_s": round(tps[n], 1)}})
    return rows


if __name__ == "__main__":
    from w4s_ray.env import apply_offline_defaults

    apply_offline_defaults()
    results = run()
    print("| name | value | target | unit |\n| --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['name']} | {r['value']} | {r['target'] if r['target'] else '-'} | {r['unit']} |")
    print(json.dumps(results, indent=1))
