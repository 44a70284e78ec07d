"""Bench: memory of one RWR training step per worker, per technique, at the W4S prompt length;
and (the CLI) memory and time of a real-model-shaped meta-agent with and without gradient
checkpointing at 2k and 4k tokens.

`run()` (what `make bench` runs): the tiny model at an 8192-token context and bench_train's
W4S-shaped batch (2 turns of a ~4.7k-token gsm8k prompt and m = 5 candidates), one training
step of each `bench_train.VARIANTS` entry in its own process: the worker's peak RSS minus its
RSS once the model, the optimizer state and the batch are in place (what the step itself
needs: activations, gradients, logits), and the whole peak.

The CLI below does the SmolLM2-shaped study (too slow for `make bench` on 2 cores).

The model has SmolLM2-135M's architecture (Llama, 30 layers, hidden 576, 9 heads / 3 KV heads,
vocab 49152, tied embeddings) with random weights: nothing is downloaded, and memory and time
do not depend on the weight values. It is saved once and loaded through the trainer's own
`_load_model` (float32, checkpointing as `train.gradient_checkpointing` turns it on); the loss
is the one the trainer picks (`packed_batch_loss` without checkpointing, the block-mask
`packed_batch_loss_dense` with it). A step is one packed row (a prompt and 2 candidate actions
of 128 tokens, L tokens in all), forward + backward + AdamW, as one worker does with
`train.batch_size=1`.

Each (L, checkpointing) case runs in its own process, so its peak RSS is its own: the figure
is the worker's peak resident memory minus the memory after the model and optimizer state
are in place (activations + gradients), and the whole peak. Time per step: the mean of the
steps after a warm-up step. Cases run one after another in one invocation; ratios compare
checkpointing on to off at each length.

    python bench/bench_train_memory.py [--steps 2] [--threads 2] [--lengths 2048,4096]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# SmolLM2-135M's config.json (HuggingFaceTB/SmolLM2-135M), architecture fields only.
SMOLLM2_135M = dict(
    hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
    num_key_value_heads=3, vocab_size=49152, max_position_embeddings=8192, rope_theta=100000.0,
    rms_norm_eps=1e-5, tie_word_embeddings=True, hidden_act="silu", bos_token_id=0,
    eos_token_id=0,
)
ACTION = 128


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def build(model_dir: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**SMOLLM2_135M)).save_pretrained(model_dir)


def case(model_dir: str, length: int, checkpointing: bool, steps: int, threads: int) -> dict:
    """One (length, checkpointing) case in this process."""
    import random
    from dataclasses import asdict

    import torch

    from w4s_ray.config import TrainConfig
    from w4s_ray.train.loss import collate_packed, packed_batch_loss, packed_batch_loss_dense
    from w4s_ray.train.rwr import IGNORE_INDEX, Example, pack_examples
    from w4s_ray.train.trainer import _load_model

    torch.set_num_threads(threads)
    model = _load_model(TrainConfig(), model_dir, checkpointing).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    rng = random.Random(0)
    n_prompt = length - 2 * ACTION
    prompt = [rng.randrange(1, 49152) for _ in range(n_prompt)]
    exs = []
    for _ in range(2):
        action = [rng.randrange(1, 49152) for _ in range(ACTION)]
        exs.append(Example(prompt + action, [IGNORE_INDEX] * n_prompt + action, 1.0, 0.5,
                           meta={"prompt_key": "p"}, action_start=n_prompt))
    (row,) = pack_examples(exs, 10 * length)
    batch = collate_packed([asdict(row)], 0)
    loss_fn = packed_batch_loss_dense if checkpointing else packed_batch_loss
    # Optimizer state in place before the baseline (AdamW allocates it at its first step).
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    opt.zero_grad(set_to_none=True)
    base = _rss_mb()
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        loss, _ = loss_fn(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"length": length, "checkpointing": checkpointing, "loaded_mb": base,
            "peak_mb": peak, "step_mb": peak - base,
            "step_s": sum(times[1:]) / max(1, len(times) - 1)}


def w4s_case(name: str, context: int, candidates: int, seed: int = 0) -> dict:
    """One bench_train variant's step on the W4S-shaped batch, in this process."""
    import bench_train
    import torch

    from w4s_ray.config import TinyModelConfig
    from w4s_ray.meta_agent.tokenizer import load_tokenizer
    from w4s_ray.train.tiny import build_tiny_model

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        mdir = build_tiny_model(Path(tmp) / "m", TinyModelConfig(
            seed=seed, max_position_embeddings=context))
        tok = load_tokenizer(mdir)
        batch = sum(bench_train._turns(tok, 2, candidates, context, seed), [])
        step = bench_train.make_step(name, mdir, tok.pad_token_id, context)
        for p in step.model.parameters():  # AdamW allocates its state at its first step
            p.grad = torch.zeros_like(p)
        step.opt.step()
        step.opt.zero_grad(set_to_none=True)
        base = _rss_mb()
        t0 = time.perf_counter()
        step(batch)
        step_s = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": name, "loaded_mb": round(base, 1), "peak_mb": round(peak, 1),
            "step_mb": round(peak - base, 1), "step_s": round(step_s, 2),
            "tokens": sum(len(e.input_ids) for e in batch)}


def run(variants: str = "per_sample,padded,dense_packed,dense_packed_ckpt,batched",
        context: int = 8192, candidates: int = 5) -> list[dict]:
    """Rows for run_all: step memory and peak RSS per worker of each variant, each case in
    its own process."""
    rows = []
    for name in variants.split(","):
        out = subprocess.run(
            [sys.executable, __file__, "--w4s-case", name, "--context", str(context),
             "--candidates", str(candidates)], check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        params = {"context": context, "candidates": candidates, "turns": 2, **r}
        rows += [
            {"name": f"rwr_mem_step_mb_{name}", "value": r["step_mb"], "target": None,
             "unit": "MB, one worker's peak RSS in the step minus model + optimizer + batch",
             "limit": "activations kept for the backward, logits", "params": params},
            {"name": f"rwr_mem_peak_mb_{name}", "value": r["peak_mb"], "target": None,
             "unit": "MB, one worker's peak RSS (tiny model, 8k context)",
             "limit": "the step's activations over the loaded process", "params": params},
        ]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lengths", default="2048,4096")
    ap.add_argument("--case", nargs=2)  # internal: LENGTH CHECKPOINTING
    ap.add_argument("--model-dir")
    ap.add_argument("--w4s-case")  # internal: a bench_train variant name
    ap.add_argument("--context", type=int, default=8192)
    ap.add_argument("--candidates", type=int, default=5)
    args = ap.parse_args()
    if args.w4s_case:
        from w4s_ray.env import apply_offline_defaults

        apply_offline_defaults()
        print(json.dumps(w4s_case(args.w4s_case, args.context, args.candidates)))
        return
    if args.case:
        print(json.dumps(case(args.model_dir, int(args.case[0]), args.case[1] == "1",
                              args.steps, args.threads)))
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp))
        for length in (int(x) for x in args.lengths.split(",")):
            for ckpt in (False, True):
                out = subprocess.run(
                    [sys.executable, __file__, "--case", str(length), "1" if ckpt else "0",
                     "--model-dir", tmp, "--steps", str(args.steps),
                     "--threads", str(args.threads)],
                    check=True, capture_output=True, text=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                results.append(r)
                print(f"L={length} checkpointing={ckpt}: peak {r['peak_mb']:.0f} MB "
                      f"(+{r['step_mb']:.0f} MB over the loaded model and optimizer), "
                      f"{r['step_s']:.2f} s/step", flush=True)
    print("\n| tokens | checkpointing | step memory MB | peak RSS MB | s / step |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['length']} | {'on' if r['checkpointing'] else 'off'} | {r['step_mb']:.0f} | "
              f"{r['peak_mb']:.0f} | {r['step_s']:.2f} |")
    print("\n| tokens | step memory on/off | peak RSS on/off | time on/off |")
    print("| ---: | ---: | ---: | ---: |")
    by = {(r["length"], r["checkpointing"]): r for r in results}
    for length in sorted({r["length"] for r in results}):
        off, on = by[(length, False)], by[(length, True)]
        print(f"| {length} | {on['step_mb'] / off['step_mb']:.2f} | "
              f"{on['peak_mb'] / off['peak_mb']:.2f} | {on['step_s'] / off['step_s']:.2f} |")


if __name__ == "__main__":
    main()
