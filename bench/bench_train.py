"""Bench: RWR training throughput, this trainer's batched loss step vs the paper code's loop.

Both sides run on the same tiny model, the same examples and the same AdamW step, measured
side by side (alternating batch by batch) in one process. Data has the W4S shape: per turn one
gsm8k meta-agent prompt and m = 5 candidate actions sampled on it (seed-workflow answers,
random rewards, RWR weights exp(r/0.4)); a batch is 2 turns = 10 examples.

- batched (what `w4s train` runs): the candidates of a turn packed into one sequence that
  encodes the prompt once, one padded forward per batch, logits only where labels are
  (`train.loss.collate_packed` + `packed_batch_loss`);
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


def _turns(tok, n_turns: int, candidates: int, max_seq_len: int, seed: int):
    """W4S-shaped data: each turn has its own gsm8k prompt and `candidates` actions on it."""
    from w4s_ray.train.rwr import Example, tokenize_example
    from w4s_ray.train.warmstart import format_answer, meta_agent_prompt, seeds_for, variations

    rng = random.Random(seed)
    seeds, bm = seeds_for("gsm8k")
    answers = [format_answer(a, c) for name, code in seeds.items()
               for a, c in variations(name, code, rng)]
    turns = []
    for _ in range(n_turns):
        prompt = meta_agent_prompt("gsm8k", seeds, bm, rng)  # archive accuracies differ per turn
        turn = []
        key = json.dumps(prompt)
        for _ in range(candidates):
            r = rng.choice([1.0, 0.5, 0.0, -0.5])
            ids, labels, _ = tokenize_example(tok, prompt, rng.choice(answers), max_seq_len)
            turn.append(Example(ids, labels, math.exp(r / 0.4), r, meta={"prompt_key": key}))
        turns.append(turn)
    return turns


def _time_interleaved(fn_a, fn_b, batches, warmup: int = 1) -> tuple[float, float]:
    """Alternate the two step functions batch by batch, so load changes on a shared box hit
    both sides alike; returns the summed seconds of each (warm-up batches excluded)."""
    t_a = t_b = 0.0
    for i, b in enumerate(batches):
        t0 = time.perf_counter()
        fn_a(b)
        t1 = time.perf_counter()
        fn_b(b)
        t2 = time.perf_counter()
        if i >= warmup:
            t_a += t1 - t0
            t_b += t2 - t1
    return t_a, t_b


def run(steps: int = 4, turns_per_batch: int = 2, candidates: int = 5,
        max_seq_len: int | None = None, seed: int = 0) -> list[dict]:
    """max_seq_len None: `train.max_seq_len` capped at the tiny model's context, as `w4s train`."""
    import torch
    from transformers import AutoModelForCausalLM

    from w4s_ray.config import TinyModelConfig, TrainConfig
    from w4s_ray.meta_agent.tiny import build_tiny_model, load_tokenizer
    from w4s_ray.train.loss import collate_packed, packed_batch_loss, per_sample_rwr_loss
    from w4s_ray.train.rwr import pack_examples

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        mdir = build_tiny_model(Path(tmp) / "m", TinyModelConfig(seed=seed))
        tok = load_tokenizer(mdir)
        if max_seq_len is None:
            max_seq_len = min(TrainConfig().max_seq_len, TinyModelConfig().max_position_embeddings)
        turns = _turns(tok, turns_per_batch * (steps + 1), candidates, max_seq_len, seed)
        batches = [sum(turns[i * turns_per_batch:(i + 1) * turns_per_batch], [])
                   for i in range(steps + 1)]
        exs = [e for b in batches for e in b]
        action_tokens = sum(e.num_action_tokens for b in batches[1:] for e in b)

        def make():
            m = AutoModelForCausalLM.from_pretrained(mdir, dtype=torch.float32).train()
            return m, torch.optim.AdamW(m.parameters(), lr=1e-4)

        model_a, opt_a = make()
        model_b, opt_b = make()

        def batched_step(b):
            rows = [asdict(r) for r in pack_examples(b, 2 * max_seq_len)]
            loss, _ = packed_batch_loss(model_a, collate_packed(rows, tok.pad_token_id))
            opt_a.zero_grad(set_to_none=True)
            loss.backward()
            opt_a.step()

        def per_sample_step(b):
            loss = per_sample_rwr_loss(model_b, [e.input_ids for e in b], [e.labels for e in b],
                                       [e.weight for e in b])
            opt_b.zero_grad(set_to_none=True)
            loss.backward()
            opt_b.step()

        t_batched, t_loop = _time_interleaved(batched_step, per_sample_step, batches)
    params = {"steps": steps, "turns_per_batch": turns_per_batch, "candidates": candidates,
              "examples_per_batch": turns_per_batch * candidates, "max_seq_len": max_seq_len,
              "action_tokens": action_tokens,
              "mean_seq_len": round(sum(len(e.input_ids) for e in exs) / len(exs), 1),
              "torch_threads": torch.get_num_threads()}
    tps_b, tps_l = action_tokens / t_batched, action_tokens / t_loop
    return [
        {"name": "rwr_batched_tokens_per_s", "value": round(tps_b, 1), "target": None,
         "unit": "action tokens/s", "params": params},
        {"name": "rwr_per_sample_tokens_per_s", "value": round(tps_l, 1), "target": None,
         "unit": "action tokens/s", "params": params},
        {"name": "rwr_batched_speedup", "value": round(tps_b / tps_l, 2), "target": 3.0,
         "unit": "x (batched / per-sample)", "params": params},
    ]


if __name__ == "__main__":
    from w4s_ray.env import apply_offline_defaults

    apply_offline_defaults()
    results = run()
    print("| name | value | target | unit |\n| --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['name']} | {r['value']} | {r['target'] if r['target'] else '-'} | {r['unit']} |")
    print(json.dumps(results, indent=1))
