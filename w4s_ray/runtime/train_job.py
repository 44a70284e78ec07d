"""`w4s train` on Ray: the RWR step loop (`w4s_ray.train.trainer.train_steps`) as a Ray Train
job (`TorchTrainer`, DeepSpeed or DDP workers).

The driver prepares the examples (`train.trainer.prepare_examples`), hands them to the trainer
as a materialised Ray Dataset (`ray.data.from_arrow` of the Parquet file it just wrote: with
Train holding the CPUs a streaming read can starve, see docs/PLATFORM.md), runs the job and
publishes the exported model.
Each worker runs `train_worker`: the plain step loop with a `RayTrainContext` (its rank, its
dataset shard, the checkpoint Ray Train restores, `ray.train.report`).

Checkpoints are reported through `ray.train.report(..., checkpoint=...)`; Ray Train restores the
latest one after a worker failure (`FailureConfig(train.max_failures)`) and, with `--resume`,
after a driver failure: the same run name under the same storage path makes Ray Train hand the
workers the latest checkpoint. A worker's node lost mid-run is such a failure: the group restarts
(on nodes that still carry the `meta_agent` role resource, runtime.placement) from the latest
checkpoint. Outputs under `train.out_dir`: `model/` (HF format + tokenizer;
LoRA merged unless `merge_lora=false`, then `model/` is the adapter and `model/base` names the
base), `train_log.jsonl`, `loss.png`, `train_summary.md`, `examples/`, `ray/` (Ray Train storage).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import ray
import ray.data
import ray.train
import ray.train.torch
import torch
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

from w4s_ray import console
from w4s_ray.config import ExperimentConfig, RayConfig, TrainConfig
from w4s_ray.errors import ConfigError, DataError, W4SError
from w4s_ray.runtime.placement import role_resources
from w4s_ray.runtime.ray_init import init_ray
from w4s_ray.train.trainer import (
    HF_DIR,
    RUN_NAME,
    STATE_FILE,
    TrainResult,
    check_base_model,
    checkpointing_for,
    deepspeed_config,
    latest_step,
    prepare_examples,
    publish_dir,
    resolve_bf16,
    steps_per_epoch,
    train_steps,
    write_reports,
)


class RayTrainContext:
    """The `StepContext` of a Ray Train worker."""

    def __init__(self) -> None:
        ctx = ray.train.get_context()
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()

    def device(self, use_gpu: bool) -> Any:
        return ray.train.torch.get_device() if use_gpu else torch.device("cpu")

    def prepare_model(self, model: Any) -> Any:
        return ray.train.torch.prepare_model(model)

    @contextlib.contextmanager
    def restored(self) -> Iterator[Path | None]:
        ckpt = ray.train.get_checkpoint()
        if ckpt is None:
            yield None
            return
        with ckpt.as_directory() as d:
            yield Path(d)

    def batches(self, batch_size: int) -> Iterable[dict[str, Any]]:
        shard = ray.train.get_dataset_shard("train")
        return shard.iter_batches(batch_size=batch_size, batch_format="numpy")

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None, name: str) -> None:
        ray.train.report(
            metrics,
            checkpoint=ray.train.Checkpoint.from_directory(checkpoint_dir)
            if checkpoint_dir else None,
            checkpoint_dir_name=name,
        )


def train_worker(config: dict[str, Any]) -> None:
    """Runs in every Ray Train worker."""
    # The driver's console level, also on a joined cluster whose workers neither inherit the
    # driver's environment nor run the local Ray's setup hook: Ray Train's, DeepSpeed's and
    # transformers' loggers below ERROR stay off the terminal (w4s_ray.console).
    os.environ[console.ENV] = config.get("verbosity", console.level())
    console.apply()
    train_steps(config, RayTrainContext())


def _check_resources(tc: TrainConfig, rc: RayConfig) -> dict[str, float]:
    """One error line when the workers cannot be placed; returns the role resources each
    worker requests (runtime.placement)."""
    role = role_resources(rc, "meta_agent")
    res = ray.cluster_resources()
    need_cpu = tc.num_workers * tc.cpus_per_worker
    if res.get("CPU", 0) < need_cpu:
        raise ConfigError(f"train: {tc.num_workers} workers x {tc.cpus_per_worker} CPU need "
                          f"{need_cpu} CPUs; the Ray cluster has {res.get('CPU', 0)}")
    if tc.use_gpu and res.get("GPU", 0) < tc.num_workers:
        raise ConfigError(f"train.use_gpu: {tc.num_workers} workers need "
                          f"{tc.num_workers} GPUs; the Ray cluster has {res.get('GPU', 0)}")
    return role


def run_training(
    cfg: ExperimentConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    worker: Callable[[dict[str, Any]], None] = train_worker,
    ray_storage: str | None = None,
) -> TrainResult:
    """Build examples, run the Ray Train job, export the model, write the log/plot/summary.

    `worker` is the function each Ray Train worker runs (default `train_worker`; tests wrap it
    to inject faults). `ray_storage`: a URI for Ray Train's checkpoints (`storage_path`,
    default `out_dir/ray`): a `train.out_dir` URI passes `<uri>/ray` so that Ray Train writes
    and restores them there itself (`api.train` stages the rest of out_dir)."""
    tc = cfg.train
    t0 = time.perf_counter()
    bf16 = resolve_bf16(tc)
    base = check_base_model(tc.base_model, cfg.models)
    if base != tc.base_model:  # workers and the tokenizer load the resolved local directory
        cfg = cfg.model_copy(update={"train": tc.model_copy(update={"base_model": base})})
        tc = cfg.train
    checkpointing = checkpointing_for(tc, tc.base_model)
    out_dir = Path(tc.out_dir).expanduser().resolve()
    store = _TrainStorage(ray_storage or str(out_dir / "ray"))
    if store.has_run() and not resume:
        if not overwrite:
            raise W4SError(f"{out_dir} already holds a training run; pass --resume to continue "
                           "it or --overwrite to start over")
        store.remove_run()
    if resume and not store.has_run():
        raise W4SError(f"--resume: no training run under {store.shown}")
    out_dir.mkdir(parents=True, exist_ok=True)

    ex_path, stats, pad_id, n_rows = prepare_examples(cfg, out_dir)
    print(f"[train] examples: {stats.line()}; {n_rows} training sequences", flush=True)
    spe = steps_per_epoch(n_rows, tc.num_workers, tc.batch_size, tc.grad_accum_steps)
    total = spe * tc.epochs
    if tc.max_steps is not None:
        total = min(total, tc.max_steps)
    if total < 1:
        raise DataError(f"{tc.data}: not enough examples for one step")

    init_ray(cfg.ray)
    role = _check_resources(tc, cfg.ray)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # resume skips batches by position
    # The driver wrote these examples a moment ago and holds them in memory anyway: reading the
    # file here and handing Ray Data the Arrow table (one block in the object store) costs
    # milliseconds and needs no storage shared with the workers' nodes, where
    # read_parquet(...).materialize() starts a read task in a fresh worker process (6-19 s
    # measured here for 8 rows). The dataset is materialised either way (docs/TRAINING.md).
    ds = ray.data.from_arrow(pq.read_table(ex_path))

    loop_cfg: dict[str, Any] = {
        "train": tc.model_dump(mode="json"),
        "base_model": str(Path(tc.base_model).expanduser().resolve())
        if Path(tc.base_model).expanduser().exists() else tc.base_model,
        "ds_config": deepspeed_config(tc, bf16=bf16),
        "bf16": bf16,
        "gradient_checkpointing": checkpointing,
        "steps_per_epoch": spe,
        "total_steps": total,
        # The LR schedule spans the planned epochs: max_steps is a stop point, not a new plan.
        "schedule_steps": spe * tc.epochs,
        "pad_id": pad_id,
        "torch_threads": max(1, int(tc.cpus_per_worker)),
        "verbosity": console.level(),
    }
    trainer = TorchTrainer(
        worker,
        train_loop_config=loop_cfg,
        scaling_config=ScalingConfig(
            num_workers=tc.num_workers, use_gpu=tc.use_gpu,
            # Workers go to the meta-agent (GPU) nodes when the cluster declares roles.
            resources_per_worker={"CPU": tc.cpus_per_worker, **role},
        ),
        torch_config=TorchConfig(backend="nccl" if tc.use_gpu else "gloo"),
        run_config=RunConfig(
            name=RUN_NAME, storage_path=store.location,
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            failure_config=FailureConfig(max_failures=tc.max_failures),
            # Ray Train's own INFO lines (resources requested, worker group started) only
            # under --verbose (w4s_ray.console).
            logging_config=ray.train.LoggingConfig(
                log_level="INFO" if console.level() == "verbose" else "WARNING"),
        ),
        datasets={"train": ds},
    )
    resumed_from = store.latest_step() if resume else 0
    result = trainer.fit()
    if result.checkpoint is None:
        raise W4SError("training finished without a checkpoint")
    with result.checkpoint.as_directory() as d:
        state = json.loads((Path(d) / STATE_FILE).read_text())
        hf = Path(d) / HF_DIR
        if not hf.is_dir():
            raise W4SError(f"the last checkpoint ({result.checkpoint.path}) has no exported model; "
                           "run again with --resume")
        model_dir = publish_dir(hf, out_dir / "model")
    wall = time.perf_counter() - t0
    res = TrainResult(out_dir, model_dir, state["step"], state["history"], stats, wall,
                      resumed_from)
    write_reports(res, cfg)
    return res


class _TrainStorage:
    """Ray Train's storage path: a local directory or a URI (pyarrow filesystem)."""

    def __init__(self, location: str) -> None:
        from w4s_ray import storage

        self.location = location
        self.shown = f"{storage.display(location)}/{RUN_NAME}"
        self.local = None if storage.is_remote(location) else storage.local_path(location)
        if self.local is None:
            remote = storage.open_remote(location, "train.out_dir")
            self.fs, self.run = remote.fs, f"{remote.base}/{RUN_NAME}"

    def has_run(self) -> bool:
        import pyarrow.fs as pafs

        if self.local is not None:
            return (self.local / RUN_NAME).exists()
        return self.fs.get_file_info(self.run).type != pafs.FileType.NotFound

    def remove_run(self) -> None:
        if self.local is not None:
            shutil.rmtree(self.local / RUN_NAME)
        else:
            self.fs.delete_dir(self.run)

    def latest_step(self) -> int:
        import pyarrow.fs as pafs

        if self.local is not None:
            return latest_step(self.local / RUN_NAME)
        steps = [0]
        for info in self.fs.get_file_info(pafs.FileSelector(self.run, allow_not_found=True)):
            if info.type == pafs.FileType.Directory and info.base_name.startswith("checkpoint_"):
                state = f"{info.path}/{STATE_FILE}"
                if self.fs.get_file_info(state).type == pafs.FileType.File:
                    with self.fs.open_input_stream(state) as fh:
                        steps.append(json.loads(fh.read())["step"])
        return max(steps)
