"""The tiny offline meta-agent: a local BPE tokenizer, a small Llama model, and its warm start
(`w4s meta-agent init-tiny`; it lives next to `warmstart.py`, which trains it).

`build_tiny_model` trains a byte-level BPE tokenizer on local text only (by default the repo's
own Python files and the seed workflows; `init_tiny` passes the warm-start prompts, answers and
seed workflows instead, so the model does not change with unrelated code edits), attaches a ChatML chat
template whose assistant turn is wrapped in `{% generation %}` (so the assistant span can be
masked), builds a randomly initialised `LlamaForCausalLM` and saves both in Hugging Face format.
Nothing touches the hub. `AutoTokenizer.from_pretrained(dir)` and
`AutoModelForCausalLM.from_pretrained(dir)` load the result.

`warm_start` is supervised training on (W4S meta-agent prompt, seed workflow or a programmatic
variation of it) pairs so the untrained model learns to emit parseable ``solver`` code;
`parse_rate` samples from the model and reports how often a `solver` can be extracted.

This is a toy model for offline runs and tests; it does not learn to reason. On a cluster the
config names a real model (the paper: Qwen2.5-Coder-7B-Instruct) instead.

Why Llama and not Qwen2: with `model_type=qwen2`, transformers 5's AutoTokenizer swaps in
Qwen2's own pre-tokenizer regex, so ids differ from the trained `tokenizer.json`. `arch="qwen2"`
is still offered; load its tokenizer with `PreTrainedTokenizerFast.from_pretrained`.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    GenerationConfig,
    LlamaConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

from w4s_ray.benchmarks import get_benchmark, list_benchmarks
from w4s_ray.config import REPO_ROOT, TinyModelConfig
from w4s_ray.errors import W4SError
from w4s_ray.meta_agent.tokenizer import MARKER_FILE, load_tokenizer
from w4s_ray.train import warmstart
from w4s_ray.train.plots import plot_loss
from w4s_ray.utils.io import atomic_write_text

log = logging.getLogger(__name__)

BOS = "<|begin_of_text|>"
EOS = "<|end_of_text|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"  # end of every turn; the generation stop token
PAD = "<|pad|>"
SPECIAL_TOKENS = [PAD, BOS, EOS, IM_START, IM_END]

# ChatML. The assistant content and its end-of-turn token sit inside {% generation %} so
# `apply_chat_template(..., return_assistant_tokens_mask=True)` marks exactly the trained span.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}{{- '\\n' }}"
    "{%- else %}"
    "{{- message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def default_corpus(max_files: int = 400) -> list[str]:
    """Local text for the tokenizer: the repo's Python sources and docs, and seed workflows."""
    texts: list[str] = []
    files = sorted((REPO_ROOT / "w4s_ray").rglob("*.py"))[:max_files]
    files += sorted((REPO_ROOT / "docs").glob("*.md"))
    for path in files:
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
    texts.extend(_seed_workflow_texts())
    return texts


def _seed_workflow_texts() -> list[str]:
    texts: list[str] = []
    for name in list_benchmarks():
        try:
            bm = get_benchmark(name)
            texts.extend(bm.seed_workflows().values())
            texts.append(f"{bm.task_description}\n{bm.answer_format}")
        except Exception as exc:  # a half-finished benchmark must not break the tokenizer build
            log.debug("seed workflows of %s unavailable: %s", name, exc)
    return texts


def train_tokenizer(corpus: Iterable[str], vocab_size: int):
    """A byte-level BPE (GPT-2 style pre-tokenizer) with the chat special tokens first."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer=trainer)
    return tok


def _wrap_tokenizer(tok):
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=IM_END,
        pad_token=PAD,
        unk_token=None,
        model_max_length=1 << 30,
        padding_side="left",  # generation pads on the left; training code pads itself
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    return hf_tok


def _model_config(cfg: TinyModelConfig, tokenizer):
    ids = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.convert_tokens_to_ids(BOS),
        "eos_token_id": tokenizer.convert_tokens_to_ids(IM_END),
        "pad_token_id": tokenizer.convert_tokens_to_ids(PAD),
    }
    common = dict(
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.hidden_size * 4,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True,
        **ids,
    )
    if cfg.arch == "qwen2":
        return Qwen2Config(**common)
    return LlamaConfig(**common)


def build_tiny_model(
    out_dir: str | Path, cfg: TinyModelConfig | None = None, corpus: list[str] | None = None
) -> Path:
    """Train a tokenizer, build an untrained model, save both to `out_dir`; returns `out_dir`."""
    cfg = cfg or TinyModelConfig()  # the schema guarantees the heads divide evenly
    texts = corpus if corpus is not None else default_corpus()
    if not any(t.strip() for t in texts):
        raise W4SError("tiny: the tokenizer corpus is empty")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = _wrap_tokenizer(train_tokenizer(texts, cfg.vocab_size))
    model_cfg = _model_config(cfg, tokenizer)
    torch.manual_seed(cfg.seed)
    model = AutoModelForCausalLM.from_config(model_cfg)
    model.generation_config = GenerationConfig(
        bos_token_id=model_cfg.bos_token_id,
        eos_token_id=model_cfg.eos_token_id,
        pad_token_id=model_cfg.pad_token_id,
        do_sample=True,
        temperature=0.5,
    )
    info = {"arch": cfg.arch, "vocab_size": len(tokenizer), "corpus_texts": len(texts),
            "corpus_chars": sum(len(t) for t in texts), "seed": cfg.seed}
    save_model_dir(model, tokenizer, out, extra={MARKER_FILE: json.dumps(info, indent=1)})
    log.info(
        "tiny model: %s params, vocab %d -> %s",
        f"{sum(p.numel() for p in model.parameters()):,}", len(tokenizer), out,
    )
    return out


def save_model_dir(model, tokenizer, out: Path, extra: dict[str, str] | None = None) -> None:
    """Save to a sibling temp dir, then move files in with config.json last.

    A reader that waits for config.json never sees a half-written model.
    """
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for name, text in (extra or {}).items():
            (tmp / name).write_text(text)
        names = sorted(p.name for p in tmp.iterdir())
        names.sort(key=lambda n: n == "config.json")
        for name in names:
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def init_tiny(
    cfg: TinyModelConfig,
    *,
    out_dir: str | Path | None = None,
    benchmarks: list[str] | None = None,
    steps: int | None = None,
    samples_per_benchmark: int | None = None,
    max_new_tokens: int = 768,
    progress: bool = True,
    protocol: str = "w4s",
) -> dict:
    """`w4s meta-agent init-tiny`: build, warm-start, measure the parse rate, save.

    The warm-start prompts are `protocol`'s first-turn prompts (the run's `rlao.protocol`). The
    parse rate samples as the local backend would: replies of up to `max_new_tokens`, at most a
    third of the context, and prompts fitted into the rest by `meta_agent.context`.
    Writes `<out>/model` (HF dir), `<out>/warmstart.json` (loss per step, parse rate per
    benchmark, one sample each) and `<out>/warmstart.md` + `<out>/warmstart_loss.png`.
    """
    out = Path(out_dir or cfg.out_dir).expanduser().resolve()
    if benchmarks is None:
        benchmarks = list_benchmarks()
    t0 = time.perf_counter()
    set_seed(cfg.seed)
    pairs, prompts = warmstart.warmstart_pairs(benchmarks, seed=cfg.seed, protocol=protocol)
    # The tokenizer learns from what the model will read and write (warm-start prompts and
    # answers, every benchmark's seeds), not from the repo's sources: a code edit elsewhere must
    # not change the tiny model (it did: same config, parse rate 0.92 one day, 0.58 the next).
    corpus = _seed_workflow_texts() + [a for _, a in pairs]
    corpus += sorted({m["content"] for msgs, _ in pairs for m in msgs})
    corpus += sorted({m["content"] for msgs in prompts.values() for m in msgs})
    build_dir = out / ".build"
    build_tiny_model(build_dir, cfg, corpus)
    tok = load_tokenizer(build_dir)
    model = AutoModelForCausalLM.from_pretrained(build_dir, dtype=torch.float32)
    history = warmstart.sft(
        model, tok, pairs, steps=steps if steps is not None else cfg.warmstart_steps,
        lr=cfg.warmstart_lr, batch_size=cfg.warmstart_batch_size,
        max_seq_len=cfg.warmstart_max_seq_len or cfg.max_position_embeddings, seed=cfg.seed,
        progress=progress,
    )
    # The local backend's budget: the reply gets at most a third of the context.
    reply = max(1, min(max_new_tokens, cfg.max_position_embeddings // 3))
    rate = warmstart.parse_rate(
        model, tok, prompts, k=samples_per_benchmark or cfg.parse_samples, temperature=0.5,
        max_new_tokens=reply, max_prompt_tokens=max(16, cfg.max_position_embeddings - reply),
        seed=cfg.seed,
    )
    model_dir = out / "model"
    info = json.loads((build_dir / MARKER_FILE).read_text())
    info.update(warmstart_steps=len(history), parse_rate=rate["parse_rate"])
    save_model_dir(model, tok, model_dir, extra={MARKER_FILE: json.dumps(info, indent=1)})
    shutil.rmtree(build_dir, ignore_errors=True)
    report = {
        "model_dir": str(model_dir), "benchmarks": benchmarks, "pairs": len(pairs),
        "steps": len(history), "loss_first": history[0]["loss"] if history else None,
        "loss_last": history[-1]["loss"] if history else None, "history": history,
        "wall_s": time.perf_counter() - t0, **rate,
    }
    atomic_write_text(out / "warmstart.json", json.dumps(report, indent=1) + "\n")
    if history:
        plot_loss(history, out / "warmstart_loss.png", title="tiny meta-agent warm start",
                  loss_label="supervised loss (cross-entropy)")
    rows = "\n".join(f"| {b} | {r:.2f} |" for b, r in rate["per_benchmark"].items())
    atomic_write_text(out / "warmstart.md", (
        "# Tiny meta-agent warm start\n\n"
        f"{len(pairs)} (prompt, workflow) pairs from {len(benchmarks)} benchmarks' seeds and "
        f"their variations; {len(history)} SFT steps"
        + (f", loss {history[0]['loss']:.3f} -> {history[-1]['loss']:.3f}" if history else "")
        + ".\n\n"
        f"Parseable `solver` rate, {rate['k']} samples per benchmark at T={rate['temperature']}: "
        f"**{rate['parse_rate']:.2f}**\n\n| benchmark | parse rate |\n| --- | --- |\n{rows}\n\n"
        "![loss](warmstart_loss.png)\n"
    ))
    return report
