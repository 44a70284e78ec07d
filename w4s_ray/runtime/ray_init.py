"""Start or join Ray with the settings this platform needs.

Measured here: Ray 2.60 turns token auth on by default (breaks `ray job submit` later), actors
with whole CPUs on a 2-core box starve each other, and the default temp dir path can be too long
for Unix sockets. So: auth off unless the user set it, logical CPUs over-subscribed, a short temp
dir, no dashboard for local runs.
"""

from __future__ import annotations

import os
import tempfile

from w4s_ray.config import RayConfig
from w4s_ray.env import apply_offline_defaults


def init_ray(cfg: RayConfig | None = None, *, log_to_driver: bool = True) -> None:
    """Idempotent: joins the Ray already running in this process, else starts/joins one."""
    import ray

    if ray.is_initialized():
        return
    apply_offline_defaults()
    cfg = cfg or RayConfig()
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=log_to_driver, ignore_reinit_error=True)
        return
    temp_dir = cfg.temp_dir or os.path.join(tempfile.gettempdir(), "w4sray")
    try:
        _start_local(ray, cfg, temp_dir, log_to_driver)
    except Exception as exc:  # e.g. "node timed out during startup" on an overloaded box
        from w4s_ray.errors import W4SError

        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise W4SError(f"could not start a local Ray instance in {temp_dir}: {first}") from None


def _start_local(ray, cfg: RayConfig, temp_dir: str, log_to_driver: bool) -> None:
    ray.init(
        # "local": always a fresh instance, never an unrelated `ray start` cluster that happens to
        # share the temp dir.
        address="local",
        num_cpus=cfg.num_cpus,
        include_dashboard=False,
        _temp_dir=temp_dir,
        log_to_driver=log_to_driver,
        ignore_reinit_error=True,
        configure_logging=True,
        logging_level="WARNING",
    )
