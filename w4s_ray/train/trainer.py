"""RWR training of the meta-agent as plain torch: the per-worker step loop, its configuration
and the driver-side preparation and reports (no Ray here; the Ray Train job that runs the loop
on workers is `w4s_ray.runtime.train_job`).

- Driver side: `prepare_examples` reads the trajectory Parquet, builds weighted masked examples
  (`train.rwr`), packs the candidates of one prompt into one sequence that encodes the prompt
  once (`train.pack_prompts`) and writes them as tokenised Parquet under the run dir;
  `write_reports` writes `train_log.jsonl`, `loss.png` and `train_summary.md`.
- Worker side: `train_steps(config, ctx)` runs the batched weighted loss (`train.loss`) under
  DeepSpeed ZeRO (stage 1/2/3, optional CPU optimizer offload; on CPU a client torch AdamW and
  no shm-op JIT build) or plain DDP, optionally on LoRA adapters (peft), with an LR schedule
  (constant / linear / cosine after `warmup_steps`, via transformers) and gradient accumulation
  (`grad_accum_steps` micro-batches per optimizer step). Everything it needs from the
  distributed runtime (rank, its data shard, the checkpoint to restore, where to report) comes
  through a `StepContext`, so the loop is the same code under Ray Train or any other launcher.

Checkpoints (every `checkpoint_every` steps and at the end) hold the step count, the loss
history and the full optimizer and scheduler state (DeepSpeed's sharded checkpoint, or
model+optimizer+scheduler state dicts for DDP); the last one also holds the model in HF format.

Not done here: evaluation during training, mixed precision on CPU.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.distributed as dist
from transformers import AutoConfig, AutoModelForCausalLM, get_scheduler

from w4s_ray.config import ExperimentConfig, TrainConfig
from w4s_ray.errors import ConfigError, DataError, W4SError
from w4s_ray.meta_agent.tokenizer import load_tokenizer
from w4s_ray.models.resolve import resolve_for
from w4s_ray.train import rwr
from w4s_ray.train.loss import (
    collate_packed,
    packed_label_logits,
    packed_label_logits_dense,
    rwr_loss,
)
from w4s_ray.train.plots import plot_loss
from w4s_ray.utils.io import atomic_write_text

log = logging.getLogger(__name__)

RUN_NAME = "rwr"
STATE_FILE = "train_state.json"
HF_DIR = "hf_model"


# ----------------------------------------------------------------------------- pure config logic


def resolve_dtype(cfg: TrainConfig, gpu_bf16: bool = True) -> str:
    """`train.dtype` (or the older `train.bf16`) -> "float32" | "bfloat16". `gpu_bf16`: the
    workers' GPUs support bf16 (the driver may not see them; Ampere and later do)."""
    dtype = cfg.dtype
    if cfg.bf16 is not None:
        legacy = "bfloat16" if cfg.bf16 else "float32"
        if dtype not in ("auto", legacy):
            raise ConfigError(f"train.bf16={str(cfg.bf16).lower()} contradicts "
                              f"train.dtype={dtype}; set only train.dtype")
        dtype = legacy
    if dtype == "auto":
        return "bfloat16" if cfg.use_gpu and gpu_bf16 else "float32"
    if dtype == "bfloat16" and not cfg.use_gpu:
        raise ConfigError("train.dtype=bfloat16 (train.bf16=true) needs a GPU "
                          "(set train.use_gpu=true)")
    if dtype == "bfloat16" and not gpu_bf16:
        raise ConfigError("train.dtype=bfloat16: the GPU does not support bf16")
    return dtype


def resolve_bf16(cfg: TrainConfig) -> bool:
    """bf16 mixed precision for this run (`resolve_dtype`)."""
    return resolve_dtype(cfg) == "bfloat16"


def resolve_gradient_checkpointing(cfg: TrainConfig, base_model: str, supported: bool) -> bool:
    """`train.gradient_checkpointing`: auto = on unless the base model is our tiny test build
    (`w4s_tiny.json` next to it) or its class cannot checkpoint; true on such a class refused."""
    from w4s_ray.meta_agent.tokenizer import MARKER_FILE

    if cfg.gradient_checkpointing == "auto":
        return supported and not (Path(base_model).expanduser() / MARKER_FILE).exists()
    if cfg.gradient_checkpointing and not supported:
        raise ConfigError(f"train.gradient_checkpointing=true: {base_model} does not support "
                          "gradient checkpointing")
    return bool(cfg.gradient_checkpointing)


def deepspeed_config(cfg: TrainConfig, *, bf16: bool) -> dict[str, Any]:
    """The DeepSpeed config for a run. The optimizer is passed as a client torch optimizer:
    a DS-config optimizer JIT-compiles FusedAdam/CPUAdam (80-90 s on CPU)."""
    zero: dict[str, Any] = {"stage": cfg.zero_stage}
    if cfg.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": cfg.use_gpu}
    if cfg.zero_stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {
        "train_micro_batch_size_per_gpu": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum_steps,
        "gradient_clipping": cfg.grad_clip,
        "zero_optimization": zero,
        "bf16": {"enabled": bf16},
        "fp16": {"enabled": False},
        # A client optimizer with offload is allowed (DS otherwise insists on its CPUAdam).
        "zero_force_ds_cpu_optimizer": False,
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 1 << 30,
        "wall_clock_breakdown": False,
    }


def steps_per_epoch(num_examples: int, num_workers: int, batch_size: int,
                    grad_accum_steps: int = 1) -> int:
    """Optimizer steps per epoch: each worker's micro-batches (Ray splits rows equally, so
    every rank agrees) in whole groups of `grad_accum_steps`."""
    per_worker = num_examples // num_workers
    micro = math.ceil(per_worker / batch_size) if per_worker else 0
    return micro // grad_accum_steps


def make_lr_scheduler(optimizer, tc: TrainConfig, total_steps: int):
    """transformers' scheduler for `train.lr_scheduler` over the run's optimizer steps."""
    name = "constant_with_warmup" if tc.lr_scheduler == "constant" else tc.lr_scheduler
    return get_scheduler(name, optimizer, num_warmup_steps=min(tc.warmup_steps, total_steps),
                         num_training_steps=total_steps)


# model_max_length / max_position_embeddings above this are "no limit" sentinels (1e30).
_ABSURD_CONTEXT = 10_000_000


def model_context(base_model: str) -> int | None:
    """The base model's context length: config.max_position_embeddings, else the tokenizer's
    model_max_length; None when neither gives a sane value."""
    ctx = None
    try:
        ctx = getattr(AutoConfig.from_pretrained(base_model), "max_position_embeddings", None)
    except Exception:  # no readable config: the tokenizer load right after reports it
        pass
    if not isinstance(ctx, int) or not 0 < ctx < _ABSURD_CONTEXT:
        try:
            ctx = getattr(load_tokenizer(base_model), "model_max_length", None)
        except Exception:
            ctx = None
    return ctx if isinstance(ctx, int) and 0 < ctx < _ABSURD_CONTEXT else None


def effective_max_seq_len(tc: TrainConfig, ctx: int | None = None) -> int:
    """`train.max_seq_len` if set, else the model's context (`model_context`) capped at
    `max_seq_len_cap`; either way never above the context (positions past it are untrained)."""
    if ctx is None:
        ctx = model_context(tc.base_model)
    if tc.max_seq_len is not None:
        return min(tc.max_seq_len, ctx) if ctx else tc.max_seq_len
    return min(ctx, tc.max_seq_len_cap) if ctx else tc.max_seq_len_cap


def check_base_model(path: str, models_cfg=None) -> str:
    """The local checkpoint directory for `train.base_model`: an HF directory, a .gguf file
    (converted once, cached), a prepared preset or a hub id (w4s_ray.models.resolve)."""
    return resolve_for(models_cfg, path, what="train.base_model")


# ----------------------------------------------------------------------------- worker side


def _skip_deepspeed_shm_build() -> None:
    # init_distributed JIT-builds a shared-memory op (+50 s, 1.6 GB) that gloo on CPU never
    # uses. importlib, not `import deepspeed.comm.torch as x`: that name resolves to torch.
    importlib.import_module("deepspeed.comm.torch").build_shm_op = lambda: None


def _all_mean(values: list[float]) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
        t /= dist.get_world_size()
    return t.tolist()


def _load_model(tc: TrainConfig, base_model: str, checkpointing: bool = False):
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
    if checkpointing:
        # Non-reentrant: works with frozen inputs and with LoRA; the cache is off under it.
        kw = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kw)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)
        model.config.use_cache = False
    if tc.lora:
        from peft import LoraConfig, get_peft_model

        if checkpointing:  # frozen embeddings: the checkpointed blocks still need input grads
            model.enable_input_require_grads()
        model = get_peft_model(model, LoraConfig(
            r=tc.lora_r, lora_alpha=tc.lora_alpha, lora_dropout=0.0,
            target_modules=list(tc.lora_target_modules), task_type="CAUSAL_LM",
        ))
    return model


def _reference(tc: TrainConfig, base_model: str, module, device) -> Callable:
    """`train.kl_coef`'s reference: a context-manager factory yielding the frozen base model.
    With LoRA that is the trained module itself with its adapters switched off (no second
    copy of the weights); otherwise a second, frozen copy of the base on this worker."""
    if tc.lora:
        @contextlib.contextmanager
        def adapters_off():
            with module.disable_adapter():
                yield module
        return adapters_off
    ref = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32).to(device)
    ref.eval().requires_grad_(False)
    return lambda: contextlib.nullcontext(ref)


def checkpointing_for(tc: TrainConfig, base_model: str) -> bool:
    """`resolve_gradient_checkpointing` for `base_model` (reads its config, not its weights)."""
    try:
        cfg = AutoConfig.from_pretrained(base_model)
        cls = AutoModelForCausalLM._model_mapping[type(cfg)]
        supported = bool(getattr(cls, "supports_gradient_checkpointing", False))
    except Exception:
        supported = False
    return resolve_gradient_checkpointing(tc, base_model, supported)


def _save_hf(module, tc: TrainConfig, base_model: str, out: Path, state_dict=None) -> None:
    """Rank 0: the final model in HF format (+ tokenizer); LoRA merged when asked."""
    if state_dict is not None:  # ZeRO-3: weights were gathered into a full state dict
        module = _load_model(tc, base_model)
        module.load_state_dict(state_dict, strict=False)
    if tc.lora and tc.merge_lora:
        module = module.merge_and_unload()
    module.save_pretrained(out, safe_serialization=True)
    load_tokenizer(base_model).save_pretrained(out)
    if tc.lora and not tc.merge_lora:
        (out / "base").write_text(str(base_model) + "\n")


class StepContext(Protocol):
    """What the step loop needs from the distributed runtime that runs it."""

    rank: int
    world: int

    def device(self, use_gpu: bool) -> Any:
        """The torch device of this worker."""

    def prepare_model(self, model: Any) -> Any:
        """The model wrapped for data-parallel training (DDP)."""

    def restored(self) -> contextlib.AbstractContextManager[Path | None]:
        """The directory of the checkpoint to resume from (None: start fresh)."""

    def batches(self, batch_size: int) -> Iterable[dict[str, Any]]:
        """One epoch of this worker's shard, in order, as numpy column batches."""

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None, name: str) -> None:
        """Report metrics (and a checkpoint directory, all ranks together) for this step."""


def train_steps(config: dict[str, Any], ctx: StepContext) -> None:
    """The per-worker loop: load, restore, step through the epochs, checkpoint, export."""
    tc = TrainConfig(**config["train"])
    rank, world = ctx.rank, ctx.world
    torch.manual_seed(tc.seed)
    random.seed(tc.seed)
    torch.set_num_threads(max(1, int(config.get("torch_threads", 1))))
    bf16 = config["bf16"]

    checkpointing = bool(config.get("gradient_checkpointing", False))
    model = _load_model(tc, config["base_model"], checkpointing)
    # The prefix-sharing loss keeps the prompt's KV cache in the graph, which checkpointed
    # blocks cannot hold (they run without a cache): with checkpointing, the packed rows go
    # through the one-forward block-mask loss instead (same loss, more attention compute).
    label_logits = packed_label_logits_dense if checkpointing else packed_label_logits
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
    scheduler = make_lr_scheduler(optimizer, tc, config["schedule_steps"])
    accum = tc.grad_accum_steps
    engine = None
    if tc.strategy == "deepspeed":
        _skip_deepspeed_shm_build()
        import deepspeed

        # DeepSpeed steps the scheduler at accumulation boundaries and checkpoints its state.
        engine, optimizer, _, scheduler = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler,
            config=config["ds_config"]
        )
        net = engine
    else:
        net = ctx.prepare_model(model)
    device = ctx.device(tc.use_gpu)
    reference = None
    if tc.kl_coef > 0:
        module = engine.module if engine is not None else getattr(net, "module", net)
        reference = _reference(tc, config["base_model"], module, device)

    state: dict[str, Any] = {"step": 0, "history": []}
    with ctx.restored() as d:
        if d is not None:
            state = json.loads((Path(d) / STATE_FILE).read_text())
            if engine is not None:
                engine.load_checkpoint(str(Path(d) / "ds"), tag="state",
                                       load_optimizer_states=True)
            else:
                blob = torch.load(Path(d) / "ddp_state.pt", map_location="cpu", weights_only=False)
                getattr(net, "module", net).load_state_dict(blob["model"])
                optimizer.load_state_dict(blob["optimizer"])
                if "scheduler" in blob:
                    scheduler.load_state_dict(blob["scheduler"])
            if rank == 0:
                print(f"[train] resumed at step {state['step']}", flush=True)

    spe = config["steps_per_epoch"]
    total = config["total_steps"]
    pad_id = config["pad_id"]

    def save(final: bool) -> None:
        metrics = {"step": state["step"], "loss": state["history"][-1]["loss"]
                   if state["history"] else None}
        full_sd = None
        if final and engine is not None and tc.zero_stage == 3:
            full_sd = engine._zero3_consolidated_16bit_state_dict()  # collective
        with tempfile.TemporaryDirectory() as tmp:
            tmp_p = Path(tmp)
            if engine is not None:
                engine.save_checkpoint(str(tmp_p / "ds"), tag="state")  # collective, sharded
            if rank == 0:
                (tmp_p / STATE_FILE).write_text(json.dumps(state))
                if engine is None:
                    torch.save({"model": getattr(net, "module", net).state_dict(),
                                "optimizer": optimizer.state_dict(),
                                "scheduler": scheduler.state_dict()}, tmp_p / "ddp_state.pt")
                if final:
                    module = engine.module if engine is not None else getattr(net, "module", net)
                    _save_hf(module, tc, config["base_model"], tmp_p / HF_DIR, full_sd)
            has_files = any(tmp_p.iterdir())
            ctx.report(metrics, tmp if has_files else None,
                       f"checkpoint_{state['step']:06d}" + ("_final" if final else ""))

    net.train()
    final_saved = False
    t_last = time.perf_counter()
    while state["step"] < total:
        skip = (state["step"] % spe) * accum  # micro-batches of this epoch already trained
        done_in_epoch = 0
        group: list[tuple[float, float, float, int]] = []  # (loss, ce, kl, tokens) per micro-batch
        for i, batch in enumerate(ctx.batches(tc.batch_size)):
            if i < skip:
                continue
            if i >= spe * accum or state["step"] >= total:
                break
            cols = ("input_ids", "labels", "src", "seg", "pos", "weights")
            rows = [{c: np.asarray(batch[c][i]).tolist() for c in cols}
                    for i in range(len(batch["input_ids"]))]
            b = {k: v.to(device) for k, v in collate_packed(rows, pad_id).items()}
            with torch.autocast(device.type, dtype=torch.bfloat16,
                                enabled=bf16 and engine is None):
                loss, seq_ce, seq_kl = rwr_loss(label_logits, net, b, tc.kl_coef, reference)
            group.append((loss.item(), seq_ce.mean().item(),
                          seq_kl.mean().item() if seq_kl is not None else 0.0,
                          int(b["tgt_tok"].numel())))
            boundary = len(group) == accum
            lr = float(optimizer.param_groups[0]["lr"])  # the rate this step is taken with
            if engine is not None:
                engine.backward(loss)  # scaled by 1/accum inside DeepSpeed
                engine.step()  # an optimizer + scheduler step only at the boundary
            else:
                (loss / accum).backward()
                if boundary:
                    torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
            if not boundary:
                continue
            mean_loss, mean_ce, mean_kl, tokens = _all_mean(
                [sum(g[0] for g in group) / accum, sum(g[1] for g in group) / accum,
                 sum(g[2] for g in group) / accum, sum(g[3] for g in group)])
            group = []
            now = time.perf_counter()
            state["step"] += 1
            done_in_epoch += 1
            rec = {"step": state["step"], "epoch": (state["step"] - 1) // spe,
                   "loss": mean_loss, "ce": mean_ce, "action_tokens": int(tokens * world),
                   "lr": lr, "step_s": now - t_last}
            if reference is not None:
                rec["kl"] = mean_kl = max(mean_kl, 0.0)  # >= 0; rounding gives -1e-9 at step 1
            t_last = now
            state["history"].append(rec)
            if rank == 0:
                kl = f" kl {mean_kl:.4f}" if reference is not None else ""
                print(f"[train] step {rec['step']}/{total} epoch {rec['epoch']} "
                      f"loss {mean_loss:.4f} ce {mean_ce:.4f}{kl} ({rec['step_s']:.2f}s)",
                      flush=True)
            final = state["step"] >= total
            if final or state["step"] % tc.checkpoint_every == 0:
                save(final)
                final_saved = final
        if done_in_epoch == 0 and state["step"] < total:
            raise RuntimeError(f"rank {rank}: empty data shard at step {state['step']}")
    if not final_saved:
        # Resumed at (or past) the last step: export the model from the restored state.
        save(True)


# ----------------------------------------------------------------------------- driver side


@dataclass
class TrainResult:
    out_dir: Path
    model_dir: Path
    steps: int
    history: list[dict[str, Any]]
    stats: rwr.BuildStats
    wall_s: float
    resumed_from: int


def prepare_examples(
    cfg: ExperimentConfig, out_dir: Path
) -> tuple[Path, rwr.BuildStats, int, int]:
    """Examples as tokenised Parquet under `out_dir/examples`: (path, stats, pad id, rows)."""
    tc = cfg.train
    rows = rwr.read_trajectories(tc.data)
    try:
        tok = load_tokenizer(tc.base_model)
    except Exception as exc:
        raise W4SError(f"train.base_model {tc.base_model}: cannot load its tokenizer "
                       f"({type(exc).__name__})") from None
    if not getattr(tok, "chat_template", None):
        raise W4SError(f"train.base_model {tc.base_model}: tokenizer has no chat template")
    examples, stats = rwr.build_examples(
        rows, tok, temperature=tc.temperature, normalize=tc.normalize_weights,
        filter=tc.filter, max_seq_len=effective_max_seq_len(tc), loss_on=tc.loss_on,
        repeats=tc.repeats,
    )
    if not examples:
        raise DataError(f"{tc.data}: no trainable rows ({stats.line()})")
    if len(examples) < tc.num_workers:
        raise DataError(f"{tc.data}: {len(examples)} trainable rows for {tc.num_workers} workers")
    # A packed row holds up to 2x max_seq_len tokens (memory); positions stay per action.
    rows = rwr.pack_examples(examples, 2 * effective_max_seq_len(tc),
                             share_prompts=tc.pack_prompts)
    if len(rows) < tc.num_workers:
        raise DataError(f"{tc.data}: {len(rows)} training sequences for {tc.num_workers} workers")
    random.Random(tc.seed).shuffle(rows)
    ex_dir = out_dir / "examples"
    ex_dir.mkdir(parents=True, exist_ok=True)
    tmp = ex_dir / ".examples.parquet.tmp"
    pq.write_table(rwr.rows_to_table(rows), tmp)
    os.replace(tmp, ex_dir / "examples.parquet")
    info = {**stats.as_dict(), "sequences": len(rows),
            "sequence_tokens": sum(len(r.input_ids) for r in rows)}
    atomic_write_text(ex_dir / "stats.json", json.dumps(info, indent=2) + "\n")
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    return ex_dir / "examples.parquet", stats, int(pad_id), len(rows)


def latest_step(run_dir: Path) -> int:
    steps = []
    for p in run_dir.glob("checkpoint_*/"):
        f = p / STATE_FILE
        if f.exists():
            steps.append(json.loads(f.read_text())["step"])
    return max(steps, default=0)


def publish_dir(src: Path, dst: Path) -> Path:
    """Copy a model dir into place via a temp dir + rename, replacing an older export."""
    tmp = dst.parent / f".{dst.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    old = dst.parent / f".{dst.name}.old"
    if dst.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
    os.replace(tmp, dst)
    shutil.rmtree(old, ignore_errors=True)
    return dst


# ----------------------------------------------------------------------------- reports


def write_reports(res: TrainResult, cfg: ExperimentConfig) -> None:
    tc = cfg.train
    atomic_write_text(res.out_dir / "train_log.jsonl",
                      "".join(json.dumps(r) + "\n" for r in res.history))
    if res.history:
        plot_loss(res.history, res.out_dir / "loss.png",
                  title=f"RWR ({tc.strategy}, {tc.num_workers} workers)")
    first = res.history[0]["loss"] if res.history else float("nan")
    last = res.history[-1]["loss"] if res.history else float("nan")
    tokens = sum(r["action_tokens"] for r in res.history)
    step_s = sum(r["step_s"] for r in res.history)
    s = res.stats
    strategy = tc.strategy + (f" ZeRO-{tc.zero_stage}" if tc.strategy == "deepspeed" else "")
    if tc.offload_optimizer and tc.strategy == "deepspeed":
        strategy += " + CPU offload"
    lines = [
        "# RWR training summary", "",
        "| field | value |", "| --- | --- |",
        f"| data | `{tc.data}` |",
        f"| base model | `{tc.base_model}` |",
        f"| strategy | {strategy}{' + LoRA r=' + str(tc.lora_r) if tc.lora else ''} |",
        f"| workers x CPU | {tc.num_workers} x {tc.cpus_per_worker} |",
        f"| batch per step | {tc.batch_size} x {tc.grad_accum_steps} accumulated x "
        f"{tc.num_workers} workers |",
        f"| lr / schedule / warm-up steps | {tc.lr} / {tc.lr_scheduler} / {tc.warmup_steps} |",
        f"| RWR temperature / filter / normalised | {tc.temperature} / {tc.filter} / "
        f"{tc.normalize_weights} |",
        f"| rows / kept | {s.rows} / {s.kept} |",
        f"| dropped: filter / no action / too long | {s.dropped_filter} / "
        f"{s.dropped_no_action} / {s.dropped_too_long} |",
        f"| repeated programs (train.repeats={tc.repeats}): merged | {s.merged_repeats} |",
        f"| history truncated | {s.truncated} |",
        f"| steps (resumed from) | {res.steps} ({res.resumed_from}) |",
        f"| weighted loss first -> last | {first:.4f} -> {last:.4f} |",
        *([f"| KL(base ‖ policy) per token, coef {tc.kl_coef}: first -> last | "
           f"{res.history[0]['kl']:.4f} -> {res.history[-1]['kl']:.4f} |"]
          if res.history and "kl" in res.history[-1] else []),
        f"| action tokens trained | {tokens} |",
        f"| action tokens / s (step time) | {tokens / step_s if step_s else 0:.1f} |",
        f"| wall time | {res.wall_s:.1f} s |",
        f"| model | `{res.model_dir}` |",
        "", "![loss](loss.png)", "",
    ]
    atomic_write_text(res.out_dir / "train_summary.md", "\n".join(lines))
    # What `w4s report OUT` needs to write this summary again (the history is train_log.jsonl).
    atomic_write_text(res.out_dir / "train_result.json", json.dumps({
        "model_dir": str(res.model_dir), "steps": res.steps, "stats": res.stats.as_dict(),
        "wall_s": res.wall_s, "resumed_from": res.resumed_from,
        "train": tc.model_dump(mode="json")}, indent=1))


def rewrite_reports(out_dir: str | Path) -> Path:
    """`w4s report OUT`: train_summary.md and loss.png again from train_log.jsonl and
    train_result.json (runs from before that file: loss.png only). Returns the summary's path."""
    out = Path(out_dir)
    history = [json.loads(line) for line in
               (out / "train_log.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    saved_path = out / "train_result.json"
    if not saved_path.exists():
        if history:
            plot_loss(history, out / "loss.png", title="RWR")
        return out / "train_summary.md"
    saved = json.loads(saved_path.read_text(encoding="utf-8"))
    res = TrainResult(out_dir=out, model_dir=Path(saved["model_dir"]), steps=saved["steps"],
                      history=history, stats=rwr.BuildStats(**saved["stats"]),
                      wall_s=saved["wall_s"], resumed_from=saved["resumed_from"])
    write_reports(res, ExperimentConfig.model_validate({"train": saved["train"]}))
    return out / "train_summary.md"
