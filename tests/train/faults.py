"""Fault injection for the Ray Train tests, outside production code: a worker function that
kills the last rank's process once, at a given step, before that step's checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from w4s_ray.runtime.train_job import RayTrainContext
from w4s_ray.train.trainer import train_steps

CRASH_AT_STEP = 3
MARKER = ".injected_failure"


class _CrashOnce(RayTrainContext):
    def __init__(self, marker: Path) -> None:
        super().__init__()
        self.marker = marker

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None, name: str) -> None:
        if (metrics["step"] == CRASH_AT_STEP and self.rank == self.world - 1
                and not self.marker.exists()):
            self.marker.write_text("failed once\n")
            os._exit(1)  # a crashed worker process, as an OOM kill would leave it
        super().report(metrics, checkpoint_dir, name)


def crash_once_worker(config: dict[str, Any]) -> None:
    """`train_worker` whose last rank dies once at step CRASH_AT_STEP (marker in out_dir)."""
    marker = Path(config["train"]["out_dir"]).expanduser().resolve() / MARKER
    train_steps(config, _CrashOnce(marker))
