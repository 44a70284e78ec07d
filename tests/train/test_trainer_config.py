"""Trainer logic that needs no Ray: precision, DeepSpeed config, step counts, bad input."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.train.synth import SCHEMA, make_rows, write_trajectories
from w4s_ray.config import TrainConfig, load_config
from w4s_ray.errors import ConfigError, DataError, W4SError
from w4s_ray.runtime.train_job import run_training
from w4s_ray.train.trainer import (
    check_base_model,
    deepspeed_config,
    resolve_bf16,
    steps_per_epoch,
)


def test_bf16_only_with_a_gpu():
    assert resolve_bf16(TrainConfig()) is False
    assert resolve_bf16(TrainConfig(use_gpu=True)) is True
    assert resolve_bf16(TrainConfig(use_gpu=True, bf16=False)) is False
    with pytest.raises(ConfigError, match="bf16.*GPU"):
        resolve_bf16(TrainConfig(bf16=True))


def test_deepspeed_config_follows_train_section():
    ds = deepspeed_config(TrainConfig(batch_size=3, grad_clip=0.5), bf16=False)
    assert ds["zero_optimization"] == {"stage": 2}
    assert ds["train_micro_batch_size_per_gpu"] == 3 and ds["gradient_clipping"] == 0.5
    assert ds["bf16"]["enabled"] is False and "optimizer" not in ds  # client optimizer on CPU
    z3 = deepspeed_config(TrainConfig(zero_stage=3, offload_optimizer=True), bf16=True)
    assert z3["zero_optimization"]["stage"] == 3
    assert z3["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert z3["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    assert z3["bf16"]["enabled"] is True


def test_steps_per_epoch_is_the_same_on_every_rank():
    assert steps_per_epoch(24, 2, 4) == 3
    assert steps_per_epoch(25, 2, 4) == 3  # the odd row is dropped by the equal split
    assert steps_per_epoch(9, 2, 4) == 1
    assert steps_per_epoch(1, 2, 4) == 0
    # With accumulation: whole groups of micro-batches; the leftover ones are dropped.
    assert steps_per_epoch(24, 2, 2, 2) == 3
    assert steps_per_epoch(24, 2, 2, 4) == 1
    assert steps_per_epoch(24, 2, 2, 8) == 0


@pytest.mark.parametrize("kind, expect", [
    ("constant", [0.5, 1.0, 1.0, 1.0, 1.0]),
    ("linear", [0.5, 1.0, 2 / 3, 1 / 3, 0.0]),
    ("cosine", [0.5, 1.0, 0.75, 0.25, 0.0]),
])
def test_lr_schedules(kind, expect):
    import torch

    from w4s_ray.train.trainer import make_lr_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_lr_scheduler(opt, TrainConfig(lr_scheduler=kind, warmup_steps=2), 5)
    lrs = []
    for _ in range(5):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx(expect, abs=1e-9)


def test_deepspeed_accumulates_as_configured():
    assert deepspeed_config(TrainConfig(grad_accum_steps=4), bf16=False)[
        "gradient_accumulation_steps"] == 4


def test_check_base_model(tmp_path, tiny_model_dir, monkeypatch):
    assert check_base_model(str(tiny_model_dir)) == str(tiny_model_dir.resolve())
    with pytest.raises(W4SError, match="does not exist"):
        check_base_model(str(tmp_path / "missing"))
    with pytest.raises(W4SError, match="config.json"):
        check_base_model(str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(W4SError, match="hub is offline"):
        check_base_model("Qwen/Qwen2.5-Coder-7B-Instruct")


def _cfg(tmp_path, model, data, *extra):
    return load_config(None, [f"train.data={data}", f"train.base_model={model}",
                              f"train.out_dir={tmp_path / 'out'}", *extra])


def test_bad_inputs_fail_before_ray_with_one_line(tmp_path, tiny_model_dir):
    good = write_trajectories(tmp_path / "good.parquet")
    with pytest.raises(W4SError, match="base_model '.*nope' does not exist"):
        run_training(_cfg(tmp_path, tmp_path / "nope", good))
    with pytest.raises(DataError, match="not found"):
        run_training(_cfg(tmp_path, tiny_model_dir, tmp_path / "missing.parquet"))
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.Table.from_pylist([], schema=SCHEMA), empty)
    with pytest.raises(DataError, match="no rows"):
        run_training(_cfg(tmp_path, tiny_model_dir, empty))
    wrong = tmp_path / "wrong.parquet"
    pq.write_table(pa.table({"messages": ["x"], "response": ["y"], "reward": [1.0]}), wrong)
    with pytest.raises(DataError, match="missing trajectory column"):
        run_training(_cfg(tmp_path, tiny_model_dir, wrong))
    rows = make_rows()
    for r in rows:
        r["action"] = ""
    no_action = write_trajectories(tmp_path / "noaction.parquet", rows)
    with pytest.raises(DataError, match="no trainable rows.*no action 12"):
        run_training(_cfg(tmp_path, tiny_model_dir, no_action))
    with pytest.raises(DataError, match="no trainable rows"):
        run_training(_cfg(tmp_path, tiny_model_dir, good, "train.filter=success",
                          "train.temperature=0.4", "train.max_seq_len=8"))
    with pytest.raises(W4SError, match="--resume: no training run"):
        run_training(_cfg(tmp_path, tiny_model_dir, good), resume=True)
    assert not (tmp_path / "out" / "model").exists()


def test_cli_reports_bad_model_as_one_line(tmp_path, capsys):
    from w4s_ray.cli import main

    data = write_trajectories(tmp_path / "t.parquet")
    rc = main(["train", "--data", str(data), "--base-model", str(tmp_path / "nope"),
               "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == [f"w4s: error: train.base_model '{tmp_path / 'nope'}' does not "
                               "exist (no such directory or file)"]


def test_ray_train_storage_on_a_bucket_finds_resumes_and_removes_a_run(s3):
    """`train.out_dir` on s3://: the run check, the step `--resume` continues from, and
    `--overwrite`'s removal read Ray Train's storage in the bucket (runtime.train_job)."""
    import json

    from w4s_ray.runtime.train_job import _TrainStorage

    store = _TrainStorage(s3.uri("train", "ray"))
    assert not store.has_run() and store.latest_step() == 0
    for i, step in ((1, 2), (2, 4)):
        s3.write(json.dumps({"step": step}).encode(), "train", "ray", "rwr",
                 f"checkpoint_00000{i}", "train_state.json")
    s3.write(b"{}", "train", "ray", "rwr", "checkpoint_manager_snapshot.json")
    assert store.has_run() and store.latest_step() == 4
    assert store.shown == s3.uri("train", "ray", "rwr")
    store.remove_run()
    assert not store.has_run() and s3.files("train", "ray") == []


def test_dtype_selection():
    from w4s_ray.train.trainer import resolve_dtype

    assert resolve_dtype(TrainConfig()) == "float32"  # auto on this CPU box
    assert resolve_dtype(TrainConfig(use_gpu=True)) == "bfloat16"
    assert resolve_dtype(TrainConfig(use_gpu=True), gpu_bf16=False) == "float32"
    assert resolve_dtype(TrainConfig(use_gpu=True, dtype="float32")) == "float32"
    assert resolve_dtype(TrainConfig(use_gpu=True, bf16=False)) == "float32"  # older key
    assert resolve_dtype(TrainConfig(use_gpu=True, bf16=True, dtype="bfloat16")) == "bfloat16"
    with pytest.raises(ConfigError, match="bfloat16.*GPU"):
        resolve_dtype(TrainConfig(dtype="bfloat16"))
    with pytest.raises(ConfigError, match="does not support bf16"):
        resolve_dtype(TrainConfig(use_gpu=True, dtype="bfloat16"), gpu_bf16=False)
    with pytest.raises(ConfigError, match="contradicts"):
        resolve_dtype(TrainConfig(use_gpu=True, bf16=True, dtype="float32"))


def test_max_seq_len_defaults_to_the_model_context_up_to_the_cap(tmp_path, tiny_model_dir):
    import json

    from w4s_ray.train.trainer import effective_max_seq_len, model_context

    assert model_context(str(tiny_model_dir)) == 1536
    tiny = TrainConfig(base_model=str(tiny_model_dir))
    assert effective_max_seq_len(tiny) == 1536
    assert effective_max_seq_len(tiny.model_copy(update={"max_seq_len_cap": 1024})) == 1024
    assert effective_max_seq_len(tiny.model_copy(update={"max_seq_len": 700})) == 700
    # explicit wins over the cap, never over the context
    assert effective_max_seq_len(tiny.model_copy(update={"max_seq_len": 5000,
                                                         "max_seq_len_cap": 100})) == 1536
    tc = TrainConfig(max_seq_len_cap=8192)
    assert effective_max_seq_len(tc, ctx=131072) == 8192  # Qwen2.5-style long context
    assert effective_max_seq_len(tc, ctx=2048) == 2048
    # No sane context anywhere (config without one, tokenizer's 1e30 sentinel): the cap.
    d = tmp_path / "m"
    d.mkdir()
    for f in tiny_model_dir.iterdir():
        if f.name.startswith("tokenizer") or f.name == "special_tokens_map.json":
            (d / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((tiny_model_dir / "config.json").read_text())
    cfg["max_position_embeddings"] = 10**30
    (d / "config.json").write_text(json.dumps(cfg))
    tok_cfg = json.loads((d / "tokenizer_config.json").read_text())
    tok_cfg["model_max_length"] = int(1e30)
    (d / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    assert model_context(str(d)) is None
    assert effective_max_seq_len(TrainConfig(base_model=str(d), max_seq_len_cap=3000)) == 3000
    tok_cfg["model_max_length"] = 4096
    (d / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    assert model_context(str(d)) == 4096


def test_gradient_checkpointing_selection(tmp_path, tiny_model_dir):
    from w4s_ray.train.trainer import checkpointing_for, resolve_gradient_checkpointing

    real = str(tmp_path)  # no w4s_tiny.json: a pretrained model
    assert resolve_gradient_checkpointing(TrainConfig(), real, supported=True) is True
    assert resolve_gradient_checkpointing(TrainConfig(), real, supported=False) is False
    assert resolve_gradient_checkpointing(TrainConfig(), str(tiny_model_dir), True) is False
    on = TrainConfig(gradient_checkpointing=True)
    assert resolve_gradient_checkpointing(on, str(tiny_model_dir), True) is True
    assert resolve_gradient_checkpointing(TrainConfig(gradient_checkpointing=False), real,
                                          True) is False
    with pytest.raises(ConfigError, match="gradient_checkpointing"):
        resolve_gradient_checkpointing(on, real, supported=False)
    assert checkpointing_for(TrainConfig(), str(tiny_model_dir)) is False
    assert checkpointing_for(on, str(tiny_model_dir)) is True  # llama can
    assert load_config(None, ["train.gradient_checkpointing=true"]).train.gradient_checkpointing \
        is True
    assert load_config(None, ["train.gradient_checkpointing=auto"]).train.gradient_checkpointing \
        == "auto"
