"""How much a w4s process prints: `--quiet`, the default, or `--verbose`.

- quiet: errors and each stage's final line only; no progress bars, no warnings, Ray workers'
  output not forwarded to the terminal;
- normal (default): one progress bar per stage, each warning once (Python's default), third-party
  loggers (Ray, Ray Data, Ray Train, litellm, httpx, transformers) at ERROR, Ray Data's
  per-operator progress bars off, litellm's banners ("Provider List", "Give Feedback") off;
- verbose: library loggers at INFO, Ray Data progress bars on, warnings libraries silence too.

The level travels in the `W4S_VERBOSITY` environment variable, so Ray workers started from
this process (which inherit its environment) apply the same settings when they call
`apply()` (a local Ray runs it in every worker: `runtime.ray_init`). litellm's banners are
off at every level (`providers.import_litellm`). w4s's own loggers are not touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator

ENV = "W4S_VERBOSITY"
LEVELS = ("quiet", "normal", "verbose")
_LOGGERS = ("ray", "ray.data", "ray.train", "ray.serve", "ray.tune", "LiteLLM",
            "LiteLLM Router", "LiteLLM Proxy", "httpx", "httpcore", "filelock", "urllib3",
            "transformers", "deepspeed", "torch.distributed", "aiohttp.access")


def level() -> str:
    value = os.environ.get(ENV, "normal")
    return value if value in LEVELS else "normal"


def configure(verbose: bool = False, quiet: bool = False) -> str:
    """Set this process's level (and its children's) from the CLI flags; returns it."""
    value = "verbose" if verbose else "quiet" if quiet else "normal"
    os.environ[ENV] = value
    apply()
    return value


_NO_PROGRESS = "W4S_NO_PROGRESS"


def progress_enabled() -> bool:
    """Progress output at all: not under --quiet nor after `--no-progress` (`no_progress()`).
    Bars also switch themselves off when stderr is not a terminal (tqdm's `disable=None`)."""
    return level() != "quiet" and os.environ.get(_NO_PROGRESS) != "1"


def no_progress(off: bool = True) -> None:
    """`--no-progress`: no bars or activity lines from this process (nor its children);
    `off=False` undoes it (each CLI invocation sets it from its own flags)."""
    if off:
        os.environ[_NO_PROGRESS] = "1"
    else:
        os.environ.pop(_NO_PROGRESS, None)


@contextlib.contextmanager
def activity(desc: str, *, enabled: bool | None = None) -> Iterator[None]:
    """A live "desc: 12s" line on stderr while a step without countable parts runs (Ray
    start, a pool evaluation of several workflows); off with --quiet / --no-progress
    (`enabled` False) and when stderr is not a terminal."""
    import sys
    import threading

    from tqdm import tqdm

    on = progress_enabled() if enabled is None else enabled
    bar = tqdm(total=None, desc=desc, bar_format="{desc}: {elapsed}", file=sys.stderr,
               disable=None if on else True, leave=False)
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(0.5):
            bar.refresh()

    ticker = threading.Thread(target=tick, daemon=True) if not bar.disable else None
    if ticker is not None:
        ticker.start()
    try:
        yield
    finally:
        stop.set()
        if ticker is not None:
            ticker.join()
        bar.close()


def forward_worker_logs() -> bool:
    """Whether Ray should copy its workers' stdout/stderr to this terminal."""
    return level() != "quiet"


def apply() -> None:
    """Apply the level to this process: warnings, loggers, Ray Data and litellm settings."""
    lvl = level()
    if lvl == "quiet":
        warnings.simplefilter("ignore")
    elif lvl == "verbose":
        warnings.simplefilter("default")
    # normal: Python's own filters already show each warning once per place, and keep the
    # filters libraries install for themselves; nothing to add.
    log_level = logging.INFO if lvl == "verbose" else logging.ERROR
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(log_level)
    os.environ["LITELLM_LOG"] = "INFO" if lvl == "verbose" else "ERROR"
    quiet_env = {
        "RAY_DATA_DISABLE_PROGRESS_BARS": "1",  # Ray Data's per-operator bars
        "RAY_DATA_LOG_LEVEL": "WARNING",  # "Starting execution of Dataset ..." lines
        "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",  # else each print of a train worker shows twice
        "TRANSFORMERS_VERBOSITY": "error",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # "Writing model shards" bars
    }
    for key, value in quiet_env.items():
        if lvl != "verbose":
            os.environ.setdefault(key, value)
        elif os.environ.get(key) == value:
            del os.environ[key]
    import sys

    if "ray.data" in sys.modules:  # already imported: its context read the env var earlier
        try:
            ctx = sys.modules["ray.data"].DataContext.get_current()
            ctx.enable_progress_bars = lvl == "verbose"
            ctx.enable_operator_progress_bars = lvl == "verbose"
        except Exception:  # noqa: BLE001 - an older/newer Ray without these knobs
            pass
