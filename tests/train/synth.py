"""Small synthetic trajectory Parquet files with the documented schema (docs/TRAJECTORIES.md).

Rewards are chosen so the RWR weights differ: actions that "improved" the workflow get reward
1, others 0 or negative. The prompts follow the W4S shape (system, task, earlier feedback).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema([
    ("benchmark", pa.string()),
    ("episode_id", pa.string()),
    ("turn", pa.int32()),
    ("candidate", pa.int32()),
    ("prompt_messages", pa.string()),
    ("action", pa.string()),
    ("code", pa.string()),
    ("valid", pa.bool_()),
    ("reward", pa.float64()),
    ("chosen", pa.bool_()),
    ("val_accuracy", pa.float64()),
])

GOOD = (
    "Analysis: sample several answers and take a vote.\n```python\n"
    "def solver(agent, task):\n"
    "    outs = agent.call_llm(messages=[{\"role\": \"user\", \"content\": task}], "
    "temperature=0.7, num_of_response=3)\n"
    "    return {\"answer\": max(set(outs), key=outs.count)}\n```"
)
BAD = "Analysis: answer directly.\n```python\ndef solver(agent, task):\n    return {}\n```"


def make_rows(n_episodes: int = 2, turns: int = 2, candidates: int = 3, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for e in range(n_episodes):
        history = [
            {"role": "system", "content": "You write Python workflows solver(agent, task)."},
            {"role": "user", "content": f"Task {e}: improve the workflow for gsm8k."},
        ]
        for t in range(turns):
            for c in range(candidates):
                good = (c + t + e) % 2 == 0
                action = GOOD if good else BAD
                rows.append({
                    "benchmark": "gsm8k",
                    "episode_id": f"ep{e}",
                    "turn": t,
                    "candidate": c,
                    "prompt_messages": json.dumps(history),
                    "action": action,
                    "code": action.split("```python\n")[1].split("```")[0],
                    "valid": True,
                    "reward": 1.0 if good else rng.choice([0.0, -0.5]),
                    "chosen": c == 0,
                    "val_accuracy": 0.8 if good else 0.2,
                })
            history = history + [
                {"role": "assistant", "content": GOOD},
                {"role": "user", "content": f"Feedback turn {t}: accuracy 0.8."},
            ]
    return rows


def write_trajectories(path: str | Path, rows: list[dict] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows if rows is not None else make_rows(), schema=SCHEMA), path)
    return path
