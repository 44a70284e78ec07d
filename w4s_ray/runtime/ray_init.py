"""Start or join Ray with the settings this platform needs.

Measured here: Ray 2.60 turns token auth on by default (breaks `ray job submit` later), actors
with whole CPUs on a 2-core box starve each other, and the default temp dir path can be too long
for Unix sockets. So: auth off unless the user set it, logical CPUs over-subscribed, a short temp
dir, no dashboard for local runs.

Joining an existing cluster is always the user's explicit choice: `--address` /
`ray.address`, or `RAY_ADDRESS` (which `ray job submit` sets for its jobs); no shipped config
sets one. Without either, a private local instance is started (`address="local"`), never an
unrelated `ray start` cluster on the machine. `auto` is resolved here, not by Ray's legacy
scan of running processes: it means "the cluster I started with `ray start` on this machine"
and refuses one started by another user. Joining prints one line saying where (unless
--quiet). Console noise follows `w4s_ray.console` (worker log forwarding, log level).
"""

from __future__ import annotations

import os
import sys
import tempfile

from w4s_ray import console
from w4s_ray.config import RayConfig
from w4s_ray.env import apply_offline_defaults
from w4s_ray.errors import ConfigError


def resolve_auto(temp_dir: str | None = None) -> str:
    """The address `auto` stands for: $RAY_ADDRESS (what `ray job submit` sets), else the
    cluster this user started with `ray start` on this machine."""
    from ray._private.utils import get_ray_address_file

    env = os.environ.get("RAY_ADDRESS", "").strip()
    if env and env not in ("auto", "local"):
        return env
    path = get_ray_address_file(temp_dir)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            found = fh.read().strip()
        owner = os.stat(path).st_uid
        if found and owner != os.getuid():
            raise ConfigError(
                f"ray.address=auto: the Ray cluster recorded on this machine ({found}) was "
                f"started by another user (uid {owner}); to join it anyway pass --address "
                f"{found}, or leave ray.address unset for a private local Ray")
        if found:
            return found
    raise ConfigError("ray.address=auto: no Ray cluster started with `ray start` on this "
                      "machine; start one, pass --address HOST:PORT, or leave ray.address "
                      "unset for a private local Ray")


def init_ray(cfg: RayConfig | None = None, *, log_to_driver: bool | None = None) -> None:
    """Idempotent: joins the Ray already running in this process, else starts/joins one."""
    import ray

    if ray.is_initialized():
        return
    apply_offline_defaults()
    console.apply()
    if log_to_driver is None:
        log_to_driver = console.forward_worker_logs()
    cfg = cfg or RayConfig()
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    if address and address.strip() == "local":
        address = None
    if address:
        if address.strip() == "auto":
            address = resolve_auto(cfg.temp_dir)
        if console.level() != "quiet":
            print(f"w4s: joining the Ray cluster at {address}", file=sys.stderr, flush=True)
        ray.init(address=address, log_to_driver=log_to_driver, ignore_reinit_error=True,
                 logging_level="WARNING")
        return
    temp_dir = cfg.temp_dir or os.path.join(tempfile.gettempdir(), "w4sray")
    try:
        _start_local(ray, cfg, temp_dir, log_to_driver)
    except Exception as exc:  # e.g. "node timed out during startup" on an overloaded box
        from w4s_ray.errors import W4SError

        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise W4SError(f"could not start a local Ray instance in {temp_dir}: {first}") from None


def worker_setup() -> None:
    """Runs in every worker of a local Ray started here: the console level, and RAY_ADDRESS
    pointing at THIS instance. Without it, Ray's own helpers that look a cluster up (Ray
    Train's PlacementGroupCleaner) fail with "Found multiple active Ray instances" and print
    a traceback whenever another Ray runs on the machine."""
    console.apply()
    try:
        import ray

        os.environ.setdefault("RAY_ADDRESS", ray.get_runtime_context().gcs_address)
    except Exception:  # noqa: BLE001 - best effort: only a warning path depends on it
        pass


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
        logging_level="INFO" if console.level() == "verbose" else "WARNING",
        # Workers apply the same console level (W4S_VERBOSITY is inherited): Ray Train's and
        # Ray Data's own warnings (e.g. PlacementGroupCleaner) stay off the terminal.
        runtime_env={"worker_process_setup_hook": "w4s_ray.runtime.ray_init.worker_setup"},
    )
