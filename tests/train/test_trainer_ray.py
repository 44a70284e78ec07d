"""The Ray Train job on 2 CPU workers: DeepSpeed ZeRO-2, DDP, LoRA, resume, worker failure.

Each run takes 30-60 s on the 2-core box (worker start + torch/deepspeed imports dominate).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from tests.train.faults import MARKER, crash_once_worker
from tests.train.synth import make_rows, write_trajectories
from w4s_ray.config import load_config
from w4s_ray.errors import W4SError
from w4s_ray.runtime.train_job import run_training
from w4s_ray.train.loss import collate_packed, packed_batch_loss

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def traj(tmp_path_factory) -> Path:
    # 6 episodes x 2 turns x 3 candidates = 36 rows -> 12 packed sequences (one per turn)
    return write_trajectories(tmp_path_factory.mktemp("traj") / "part-0.parquet",
                              make_rows(n_episodes=6))


def _cfg(out: Path, model: Path, data: Path, *extra: str):
    return load_config(None, [
        f"train.data={data}", f"train.base_model={model}", f"train.out_dir={out}",
        "train.batch_size=2", "train.lr=3e-3", "train.epochs=2", "train.checkpoint_every=2",
        *extra,
    ])


def _weighted_loss(model_dir: Path, examples: Path) -> float:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    b = collate_packed(pq.read_table(examples).to_pylist(), 0)
    with torch.no_grad():
        return packed_batch_loss(model, b)[0].item()


def _check_outputs(res, n_steps: int) -> None:
    out = res.out_dir
    assert res.steps == n_steps == len(res.history)
    assert [r["step"] for r in res.history] == list(range(1, n_steps + 1))
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert log == res.history
    assert (out / "loss.png").stat().st_size > 1000
    assert "weighted loss" in (out / "train_summary.md").read_text()


def test_deepspeed_zero2_lowers_weighted_loss_and_exports_hf_model(ray_session, tmp_path,
                                                                    tiny_model_dir, traj):
    res = run_training(_cfg(tmp_path / "ds", tiny_model_dir, traj))
    _check_outputs(res, 6)  # 12 sequences / 2 workers / batch 2 = 3 steps x 2 epochs
    examples = res.out_dir / "examples" / "examples.parquet"
    before = _weighted_loss(tiny_model_dir, examples)
    after = _weighted_loss(res.model_dir, examples)
    assert after < 0.8 * before
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(res.model_dir).eos_token == "<|im_end|>"
    ckpts = sorted(p for p in (res.out_dir / "ray" / "rwr").glob("checkpoint_*") if p.is_dir())
    final = ckpts[-1]
    assert final.name.endswith("_final")
    # DeepSpeed's sharded optimizer state from BOTH ranks is in the one checkpoint
    shards = sorted(p.name for p in (final / "ds" / "state").glob("zero_pp_rank_*optim_states.pt"))
    assert len(shards) == 2
    assert json.loads((final / "train_state.json").read_text())["step"] == 6

    # a second fresh run into the same dir must not silently resume or clobber it
    with pytest.raises(W4SError, match="--resume"):
        run_training(_cfg(tmp_path / "ds", tiny_model_dir, traj))


def test_resume_continues_step_count_history_and_lr_schedule(ray_session, tmp_path,
                                                             tiny_model_dir, traj):
    # 12 sequences / 2 workers = 6 micro-batches of 1 per worker and epoch; 2 accumulated per
    # step -> 3 steps per epoch, 6 in all. Linear decay after 1 warm-up step (which starts at 0).
    sched = ("train.batch_size=1", "train.grad_accum_steps=2", "train.lr_scheduler=linear",
             "train.warmup_steps=1", "train.checkpoint_every=2")  # the stop at 2 is saved
    out = tmp_path / "resume"
    first = run_training(_cfg(out, tiny_model_dir, traj, "train.max_steps=2", *sched))
    assert first.steps == 2
    res = run_training(_cfg(out, tiny_model_dir, traj, *sched), resume=True)
    assert res.resumed_from == 2
    _check_outputs(res, 6)
    assert res.history[:2] == first.history  # loss history carried over, not restarted
    assert "6 (2)" in (out / "train_summary.md").read_text()
    # The schedule resumed where it stopped (a restarted one would warm up again at step 3).
    # Steps are counted over the whole run (6), not the first run's max_steps.
    assert [r["lr"] for r in res.history] == pytest.approx(
        [0.0, 3e-3, 2.4e-3, 1.8e-3, 1.2e-3, 0.6e-3])
    assert "2 accumulated" in (out / "train_summary.md").read_text()


def test_ddp_fallback_with_worker_failure_recovers(ray_session, tmp_path, tiny_model_dir, traj):
    out = tmp_path / "ddp"
    # With the KL term, whose reference (a frozen copy of the base) is rebuilt on restart.
    res = run_training(_cfg(out, tiny_model_dir, traj, "train.strategy=ddp",
                            "train.checkpoint_every=1", "train.kl_coef=0.5"),
                       worker=crash_once_worker)
    assert (out / MARKER).exists()  # a worker really died at step 3
    _check_outputs(res, 6)
    kl = [r["kl"] for r in res.history]
    assert kl[0] < 1e-3 < kl[-1]  # step 1 starts at the reference; training moves away
    assert "KL(base ‖ policy) per token, coef 0.5" in (out / "train_summary.md").read_text()
    examples = out / "examples" / "examples.parquet"
    assert _weighted_loss(res.model_dir, examples) < _weighted_loss(tiny_model_dir, examples)


def test_lora_merged_export_loads_as_plain_model(ray_session, tmp_path, tiny_model_dir, traj):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    res = run_training(_cfg(tmp_path / "lora", tiny_model_dir, traj, "train.lora=true",
                            "train.lora_r=4", "train.lr=1e-2", "train.kl_coef=1.0"))
    # The KL term's reference is the model with its adapters off: zero before the first step.
    assert res.history[0]["kl"] < 1e-3 < res.history[-1]["kl"]
    model = AutoModelForCausalLM.from_pretrained(res.model_dir)
    assert not any("lora" in n for n, _ in model.named_parameters())
    base = load_file(tiny_model_dir / "model.safetensors")
    tuned = load_file(res.model_dir / "model.safetensors")
    changed = [k for k in base if "q_proj" in k and not torch.equal(base[k], tuned[k])]
    assert changed, "merged LoRA weights should differ from the base"
    assert all(torch.equal(base[k], tuned[k]) for k in base if "mlp" in k)  # only adapted layers


def test_zero3_with_cpu_offload_exports_gathered_model(ray_session, tmp_path, tiny_model_dir,
                                                        traj):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    res = run_training(_cfg(tmp_path / "z3", tiny_model_dir, traj, "train.zero_stage=3",
                            "train.offload_optimizer=true", "train.epochs=1"))
    assert res.steps == 3
    model = AutoModelForCausalLM.from_pretrained(res.model_dir)
    base = load_file(tiny_model_dir / "model.safetensors")
    tuned = load_file(res.model_dir / "model.safetensors")
    assert set(base) == set(tuned)
    assert all(base[k].shape == tuned[k].shape for k in base)  # full, not ZeRO-3 shards
    assert any(not torch.equal(base[k], tuned[k]) for k in base)
    assert model.config.vocab_size == base["model.embed_tokens.weight"].shape[0]
