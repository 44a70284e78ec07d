"""Weights & Biases as the tracking backend (`tracking.backend: wandb`; `w4s_ray.tracking`
decides what each stage logs, this module how W&B receives it).

- Offline by default (`tracking.mode: offline`): nothing leaves the machine; the run is written
  under `<run_dir>/wandb/offline-run-*` (`wandb sync` uploads it later). `tracking.mode: online`
  talks to W&B, or to the server at `tracking.uri` (a self-hosted W&B) with the key W&B reads
  from WANDB_API_KEY / `wandb login`.
- Project: `tracking.experiment`, else the config's name; the run is named `<stage>:<name>`.
- Per-step metrics are logged against a `step` metric (the turn; 0 = the seed workflows; the
  training step for train), values without a step go to the run summary, files to one
  artifact per call (the chosen workflow, its report and config), tables as `wandb.Table`.

W&B is optional (`pip install -e .[tracking]`); asking for it without it installed is a
ConfigError before the stage starts. No Ray here.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from w4s_ray.config import ExperimentConfig
from w4s_ray.errors import ConfigError


def check(cfg: ExperimentConfig) -> None:
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise ConfigError("tracking.backend=wandb needs wandb: pip install -e '.[tracking]' "
                          "(or set tracking.backend=none)") from None
    if cfg.tracking.uri and cfg.tracking.mode == "offline":
        raise ConfigError("tracking.uri names a W&B server, which an offline run never talks "
                          "to: set tracking.mode=online, or drop tracking.uri")


def _clean(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not math.isfinite(value):
            continue  # None / NaN (not measured) and text are not metrics
        out[key] = float(value)
    return out


class WandbTracker:
    def __init__(self, run: Any, stage: str, name: str) -> None:
        self.run = run
        self.label = re.sub(r"[^\w.-]+", "-", f"{stage}-{name}").strip("-")[:100] or stage
        run.define_metric("step")
        run.define_metric("*", step_metric="step")

    def params(self, params: dict[str, Any]) -> None:
        self.run.config.update({k: (None if v is None else str(v)[:500])
                                for k, v in params.items()}, allow_val_change=True)

    def metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        values = _clean(metrics)
        if not values:
            return
        if step is None:  # a stage's final numbers
            self.run.summary.update(values)
        else:
            self.run.log({**values, "step": int(step)})

    def artifacts(self, paths: list[Path], folder: str | None = None) -> None:
        import wandb

        files = [Path(p) for p in paths if Path(p).is_file()]
        if not files:
            return
        kind = "workflow" if any(p.name == "final_workflow.py" for p in files) else "w4s-files"
        art = wandb.Artifact(f"{self.label}{'-' + folder if folder else ''}", type=kind)
        for p in files:
            art.add_file(str(p), name=p.name)
        self.run.log_artifact(art)

    def table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None:
        import wandb

        self.run.log({name: wandb.Table(columns=columns, data=rows)})


@contextlib.contextmanager
def run(cfg: ExperimentConfig, stage: str, name: str,
        base_params: dict[str, Any]) -> Iterator[WandbTracker]:
    check(cfg)
    import wandb

    root = Path(cfg.run_dir).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    mode = cfg.tracking.mode
    if mode == "offline":  # nothing reaches the network: no crash reports either
        os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
    if cfg.tracking.uri:
        os.environ["WANDB_BASE_URL"] = cfg.tracking.uri
    wrun = wandb.init(project=cfg.tracking.experiment or cfg.name, name=f"{stage}:{name}",
                      dir=str(root), mode=mode, job_type=stage, config=base_params,
                      reinit="create_new", settings=wandb.Settings(silent=True))
    tracker = WandbTracker(wrun, stage, name)
    try:
        yield tracker
    except BaseException:
        wrun.finish(exit_code=1)
        raise
    wrun.finish()
