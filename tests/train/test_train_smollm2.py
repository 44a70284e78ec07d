"""`w4s train` from a real pretrained checkpoint (SmolLM2-135M-Instruct, prepared from the
packaged GGUF): full and LoRA, 2 optimizer steps each on one Ray Train worker, on W4S-shaped
trajectories far longer than `train.max_seq_len`. Every training sequence must still hold the
system prompt and the task (issue #17's acceptance): the fitting rule drops history, not the
head. Also checks the real-model defaults: gradient checkpointing on, float32 on CPU.

Slow: the checkpoint is prepared once per session (`smollm2_dir`), each run is ~1-3 min here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.train.synth import write_trajectories
from w4s_ray.config import load_config
from w4s_ray.runtime.train_job import run_training

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.timeout(1800)]

SYSTEM = "You design agentic workflows: Python programs solver(agent, task) that call a model."
TASK = "Benchmark gsm8k: grade-school math word problems. Answer format: a number. " * 3
MAX_SEQ_LEN = 320


def _rows() -> list[dict]:
    """2 turns x 2 candidates; the second turn's prompt holds six long feedback turns."""
    good = ("Vote over samples.\n```python\ndef solver(agent, task):\n    outs = agent.call_llm("
            "messages=[{'role': 'user', 'content': task}], num_of_response=3)\n"
            "    return {'answer': max(set(outs), key=outs.count)}\n```")
    chats = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": TASK}]]
    history = list(chats[0])
    for k in range(6):
        history += [{"role": "assistant", "content": good},
                    {"role": "user", "content": f"Feedback {k}: accuracy 0.{k}. " + "wrong " * 80}]
    chats.append(history)
    return [{"benchmark": "gsm8k", "episode_id": "ep0", "turn": t, "candidate": c,
             "prompt_messages": json.dumps(chat), "action": good,
             "code": good.split("```python\n")[1].split("```")[0], "valid": True,
             "reward": 1.0 - 0.5 * c, "chosen": c == 0, "val_accuracy": 0.5}
            for t, chat in enumerate(chats) for c in range(2)]


@pytest.fixture(scope="module")
def traj(tmp_path_factory) -> Path:
    return write_trajectories(tmp_path_factory.mktemp("traj") / "part-0.parquet", _rows())


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_train_from_smollm2_keeps_the_system_prompt_and_task_in_every_sequence(
        ray_session, tmp_path, smollm2_dir, traj, lora):
    from w4s_ray.meta_agent.tokenizer import load_tokenizer
    from w4s_ray.models.loading import load_model
    from w4s_ray.train.trainer import checkpointing_for, resolve_dtype

    cfg = load_config(None, [
        f"train.data={traj}", f"train.base_model={smollm2_dir}", f"train.out_dir={tmp_path}",
        f"train.lora={str(lora).lower()}", "train.lora_r=4", "train.num_workers=1",
        "train.batch_size=1", "train.max_steps=2", "train.epochs=1", "train.lr=1e-5",
        f"train.max_seq_len={MAX_SEQ_LEN}", "train.checkpoint_every=2",
    ])
    assert checkpointing_for(cfg.train, str(smollm2_dir))  # on by default for a real model
    assert resolve_dtype(cfg.train) == "float32"  # no GPU here: bf16 would be refused
    tok = load_tokenizer(smollm2_dir)
    full = tok(tok.apply_chat_template(json.loads(_rows()[-1]["prompt_messages"]),
                                       tokenize=False, add_generation_prompt=True),
               add_special_tokens=False)["input_ids"]
    assert len(full) > 2 * MAX_SEQ_LEN  # plain left truncation would cut system and task

    res = run_training(cfg)
    assert res.steps == 2 and res.stats.truncated >= 2
    head = tok(tok.apply_chat_template(
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": TASK}],
        tokenize=False), add_special_tokens=False)["input_ids"]
    rows = pq.read_table(res.out_dir / "examples" / "examples.parquet").to_pylist()
    assert rows
    for row in rows:  # what the workers trained on
        ids = row["input_ids"]
        assert ids[:len(head)] == head  # system prompt + task, whole, at the front
        assert SYSTEM in tok.decode(ids)
        assert max(row["pos"]) < MAX_SEQ_LEN
    lm = load_model(str(res.model_dir))  # as `w4s serve` / `w4s compare` load it
    assert lm.tokenizer.chat_template and lm.max_positions == 8192
