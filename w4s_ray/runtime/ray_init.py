"""Start, join and stop Ray with the settings this platform needs; user errors out of Ray errors.

Measured here: Ray 2.60 turns token auth on by default (breaks `ray job submit` later), actors
with whole CPUs on a 2-core box starve each other, and the default temp dir path can be too long
for Unix sockets. So: auth off unless the user set it, logical CPUs over-subscribed, a short temp
dir, no dashboard for local runs unless `ray.dashboard` (its URL is printed).

- `init_ray(cfg.ray)`: idempotent start/join.
- `ray_session(cfg.ray)`: a context manager around a stage: joins or starts Ray, and shuts it
  down on the way out only if it started it (the one copy of that pattern).
- `user_error(exc)`: the one place that finds the `W4SError` (budget spent, bad config, ...)
  inside a Ray task, actor or actor-constructor error, so a user sees `w4s: error: <message>`
  instead of a Ray traceback. `reraise_user_error` raises it when there is one.
- `--address` / `ray.address` / `RAY_ADDRESS`: joining an existing cluster is always the user's
  explicit choice (`ray job submit` sets RAY_ADDRESS for its jobs); no shipped config sets one.
  Without either, a private local instance is started (`address="local"`), never an unrelated
  `ray start` cluster on the machine. `auto` is resolved here (`resolve_auto`), not by Ray's
  legacy scan of running processes: it means "the cluster I started with `ray start` on this
  machine" and refuses one started by another user. Joining prints one line saying where
  (unless --quiet).
- Your own benchmarks (`include`, `w4s_ray.benchmarks.plugins`): the job's runtime_env carries
  $W4S_INCLUDE to every worker, and the directories as py_modules when joining a cluster.
- Console noise follows `w4s_ray.console` (worker log forwarding, log level); every worker of a
  local Ray started here runs `worker_setup` (the same console level, RAY_ADDRESS pointing at
  this instance).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from typing import Any, NoReturn

import ray
from ray._private.utils import get_ray_address_file

from w4s_ray import console, errors
from w4s_ray.benchmarks import plugins
from w4s_ray.config import RayConfig
from w4s_ray.env import apply_offline_defaults
from w4s_ray.errors import ConfigError, W4SError


def resolve_auto(temp_dir: str | None = None) -> str:
    """The address `auto` stands for: $RAY_ADDRESS (what `ray job submit` sets), else the
    cluster this user started with `ray start` on this machine."""
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
        # Included benchmark directories travel with the job (py_modules): a cluster's nodes
        # need not share this filesystem.
        extra = {"runtime_env": env} if (env := plugins.runtime_env(ship=True)) else {}
        with console.activity(f"connecting to Ray at {address}"):
            ray.init(address=address, log_to_driver=log_to_driver, ignore_reinit_error=True,
                     logging_level="WARNING", **extra)
        return
    # One per user: a directory another user's Ray created is not writable by this one.
    temp_dir = cfg.temp_dir or os.path.join(tempfile.gettempdir(), f"w4sray-{os.getuid()}")
    try:
        with console.activity("starting a local Ray"):
            _start_local(cfg, temp_dir, log_to_driver)
    except Exception as exc:  # e.g. "node timed out during startup" on an overloaded box
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise W4SError(f"could not start a local Ray instance in {temp_dir}: {first}") from None


def worker_setup() -> None:
    """Runs in every worker of a local Ray started here: the console level, and RAY_ADDRESS
    pointing at THIS instance. Without it, Ray's own helpers that look a cluster up (Ray
    Train's PlacementGroupCleaner) fail with "Found multiple active Ray instances" and print
    a traceback whenever another Ray runs on the machine."""
    console.apply()
    try:
        os.environ.setdefault("RAY_ADDRESS", ray.get_runtime_context().gcs_address)
    except Exception:  # noqa: BLE001 - best effort: only a warning path depends on it
        pass


def _start_local(cfg: RayConfig, temp_dir: str, log_to_driver: bool) -> None:
    ctx = ray.init(
        # "local": always a fresh instance, never an unrelated `ray start` cluster that happens to
        # share the temp dir.
        address="local",
        num_cpus=cfg.num_cpus,
        include_dashboard=cfg.dashboard,
        **({"dashboard_port": cfg.dashboard_port} if cfg.dashboard and cfg.dashboard_port
           is not None else {}),
        _temp_dir=temp_dir,
        log_to_driver=log_to_driver,
        ignore_reinit_error=True,
        configure_logging=True,
        logging_level="INFO" if console.level() == "verbose" else "WARNING",
        # Workers apply the same console level (W4S_VERBOSITY is inherited): Ray Train's and
        # Ray Data's own warnings (e.g. PlacementGroupCleaner) stay off the terminal.
        runtime_env={"worker_process_setup_hook": "w4s_ray.runtime.ray_init.worker_setup",
                     **plugins.runtime_env(ship=False)},
    )
    if cfg.dashboard and console.level() != "quiet":
        print(f"w4s: Ray dashboard at http://{ctx.dashboard_url}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def ray_session(cfg: RayConfig | None = None, *, start: bool = True,
                log_to_driver: bool | None = None) -> Iterator[None]:
    """Ray for the duration of a stage; shut down afterwards if this call started it.

    `start=False` skips starting (e.g. nothing left to do) but still shuts down a Ray that
    something inside the block started. `log_to_driver` None: as `console` says (off under
    --quiet)."""
    started = not ray.is_initialized()
    if start:
        init_ray(cfg, log_to_driver=log_to_driver)
    try:
        yield
    finally:
        if started and ray.is_initialized():
            ray.shutdown()


_ACTOR_INIT_ERROR = re.compile(r"w4s_ray\.[\w.]*?errors\.(\w+): (.+)")


def user_error(exc: BaseException) -> W4SError | None:
    """The W4SError carried by `exc` (itself, the cause of a Ray task/actor error, or the text of
    an actor-constructor failure, which Ray keeps only as text), else None."""
    cur: Any = exc
    for _ in range(5):
        cause = getattr(cur, "cause", None)
        if not isinstance(cause, BaseException) or cause is cur:
            break
        cur = cause
    if isinstance(cur, W4SError):
        # A RayTaskError(BudgetExceeded) is an instance of a dynamic subclass: rebuild the
        # plain project class, so `except BudgetExceeded` and exit codes behave.
        for klass in type(cur).__mro__:
            if issubclass(klass, W4SError) and klass.__module__.startswith("w4s_ray"):
                return cur if type(cur) is klass else klass(*cur.args)
    if isinstance(exc, ray.exceptions.RayActorError):
        m = _ACTOR_INIT_ERROR.search(str(exc))
        klass = getattr(errors, m.group(1), None) if m else None
        if isinstance(klass, type) and issubclass(klass, W4SError):
            return klass(m.group(2).strip())
    return None


def reraise_user_error(exc: BaseException) -> NoReturn:
    """Raise the user error inside `exc` (without Ray's traceback), else `exc` itself."""
    err = user_error(exc)
    if err is None:
        raise exc
    raise err from None
