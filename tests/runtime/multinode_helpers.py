"""Helpers of the multi-node tests: where actors ran, rows without timings, a train worker that
records its node and slows its steps (so a node can be removed between checkpoints)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from w4s_ray.runtime.train_job import RayTrainContext
from w4s_ray.train.trainer import train_steps

STEP_LOG = "steps_by_node.jsonl"
STEP_PAUSE_S = 1.5


def actors_of(class_name: str, exclude: set[str] = frozenset()) -> list[dict]:
    """Every actor of that class the GCS knows (alive or dead), minus `exclude` ids."""
    import ray._private.state as state

    return [a for aid, a in state.actors().items()
            if a["ActorClassName"] == class_name and aid not in exclude]


def actor_ids() -> set[str]:
    import ray._private.state as state

    return set(state.actors())


def strip_timings(rows: list[dict]) -> list[dict]:
    """Rows minus what differs between identical runs (wall clock, latency), floats to 12
    significant digits: a cost is summed in the order calls complete, so its last bits vary
    (0.00087 vs 0.0008699999999999999) with or without a lost node."""
    def keep(key: str) -> bool:
        return not any(t in key for t in ("wall", "latency", "elapsed", "time", "_at"))

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if keep(k)}
        if isinstance(v, list):
            return [clean(x) for x in v]
        if isinstance(v, float):
            return float(f"{v:.12g}")
        if isinstance(v, str) and v[:1] in "{[":
            try:
                return clean(json.loads(v))
            except ValueError:
                return v
        return v

    return [clean(r) for r in rows]


def when(condition: Callable[[], bool], action: Callable[[], None], timeout_s: float,
         poll_s: float = 0.2) -> threading.Thread:
    """Run `action` in a thread as soon as `condition()` holds (give up after timeout_s);
    the thread's `fired` says whether it ran, `error` what the action raised. The action must
    not start Ray nodes (a node registers signal handlers: main thread only)."""
    def run() -> None:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            try:
                ok = condition()
            except Exception:  # noqa: BLE001 - a transient GCS read error: poll again
                ok = False
            if ok:
                try:
                    action()
                    t.fired = True
                except Exception as exc:  # noqa: BLE001 - reported to the test
                    t.error = exc
                return
            time.sleep(poll_s)

    t = threading.Thread(target=run, daemon=True)
    t.fired = False
    t.error = None
    t.start()
    return t


class _RecordingContext(RayTrainContext):
    def __init__(self, log: Path) -> None:
        super().__init__()
        self.log = log

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None, name: str) -> None:
        import ray

        ctx = ray.get_runtime_context()
        line = {"step": metrics["step"], "rank": self.rank, "node": ctx.get_node_id(),
                "pid": os.getpid(), "resources": ctx.get_assigned_resources()}
        with open(self.log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")
        time.sleep(STEP_PAUSE_S)  # room to remove the node between two checkpoints
        super().report(metrics, checkpoint_dir, name)


def recording_worker(config: dict[str, Any]) -> None:
    """`train_worker` that logs (step, rank, node, assigned resources) per step to
    out_dir/STEP_LOG and pauses STEP_PAUSE_S before each report."""
    log = Path(config["train"]["out_dir"]).expanduser().resolve() / STEP_LOG
    train_steps(config, _RecordingContext(log))


def first_difference(a: list[dict], b: list[dict]) -> str:
    """Where two row lists (sorted the same way) first differ: '' when equal."""
    if len(a) != len(b):
        return f"{len(a)} rows vs {len(b)}"
    for ra, rb in zip(sorted(a, key=_row_key), sorted(b, key=_row_key), strict=True):
        keys = sorted(k for k in set(ra) | set(rb) if ra.get(k) != rb.get(k))
        if keys:
            return f"row {_row_key(ra)}: " + "; ".join(
                f"{k}: {str(ra.get(k))[-300:]!r} vs {str(rb.get(k))[-300:]!r}" for k in keys)
    return ""


def _row_key(r: dict) -> tuple:
    return (r.get("episode_id", ""), r.get("turn", 0), r.get("candidate", 0))
