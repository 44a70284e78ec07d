"""Start, inspect and stop a served meta-agent (`w4s serve`, `--detach`, `--status`, `--shutdown`).

Design:
- Every check a user can fail (checkpoint, backend, autoscale bounds, port, an app of the same
  name already running) happens in `preflight`, before Ray starts.
- Foreground (`run_server`): starts (or joins, when `ray.address`/`RAY_ADDRESS` is set) Ray,
  starts Serve's HTTP proxy on `serve.host:serve.port`, deploys the app, waits until it answers
  `/health`, records it in the registry and blocks until Ctrl-C or SIGTERM; then deletes the app,
  stops Serve and the Ray it started, and removes the record.
- Detached on this machine (`start_detached`): the same foreground server, run by a
  supervisor process in its own session (`python -m w4s_ray.serve.manage --spec ...`,
  output in `<registry>/<name>.log`). It owns a private Ray, so `--shutdown` (SIGTERM to the
  supervisor, SIGKILL to its process group after a timeout) takes down exactly what it started
  and never touches another Ray on the box. The caller waits until the app is healthy (or
  reports why it failed) and returns.
- Detached on a cluster (`ray.address` set): the app is deployed into the cluster's Serve (which
  outlives the driver); `--shutdown` connects and deletes the app; the cluster keeps running.
- The registry is one JSON file per app name under `serve.registry_dir` (default
  ~/.cache/w4s/serve), written atomically. A record whose process is gone (checked by pid and
  process start time, so a recycled pid is not mistaken for ours) is reported as stale.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from w4s_ray import console
from w4s_ray.config import ExperimentConfig, ServeConfig
from w4s_ray.serve.checkpoint import ResolvedModel, resolve_model
from w4s_ray.serve.settings import ServeError, check_port_free, scaling_options, select_backend
from w4s_ray.utils.io import atomic_write_json

DEFAULT_REGISTRY = Path.home() / ".cache" / "w4s" / "serve"


# --- registry -------------------------------------------------------------------------------

def registry_dir(cfg: ServeConfig) -> Path:
    return Path(cfg.registry_dir).expanduser() if cfg.registry_dir else DEFAULT_REGISTRY


def registry_file(cfg: ServeConfig, name: str) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise ServeError(f"invalid app name {name!r} (no '/', not starting with '.')")
    return registry_dir(cfg) / f"{name}.json"


def read_entry(cfg: ServeConfig, name: str) -> dict[str, Any] | None:
    path = registry_file(cfg, name)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise ServeError(f"serve registry file {path} is unreadable ({exc})") from None


def remove_entry(cfg: ServeConfig, name: str) -> None:
    for suffix in (".json", ".spec.json"):
        (registry_dir(cfg) / f"{name}{suffix}").unlink(missing_ok=True)


def _proc_start_time(pid: int) -> str | None:
    """Start time (clock ticks since boot) of a live, non-zombie process; None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # zombie/dead: exited, only waiting to be reaped
        return None
    return fields[19]


def entry_alive(entry: dict[str, Any]) -> bool:
    """Does the process recorded in `entry` still run (same pid AND same start time)?"""
    pid = entry.get("pid")
    if not pid:
        return entry.get("mode") == "cluster"  # lives in the cluster; probe over HTTP instead
    return _proc_start_time(int(pid)) == entry.get("pid_start")


# --- checks before Ray ----------------------------------------------------------------------

def _cluster_address(cfg: ExperimentConfig) -> str | None:
    return cfg.ray.address or os.environ.get("RAY_ADDRESS") or None


def _owns_ray(cfg: ExperimentConfig) -> bool:
    """Will this process start Ray (and so must stop it)? Not if joined or already running."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return False
    return _cluster_address(cfg) is None


def local_url(cfg: ServeConfig) -> str:
    host = cfg.host
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{cfg.port}"


def preflight(cfg: ExperimentConfig, name: str) -> ResolvedModel:
    """Every user-fixable problem, as one `W4SError`, before anything is started."""
    resolved = resolve_model(cfg.serve.model, cfg.serve.lora_base, cfg.models)
    select_backend(cfg.serve, resolved)
    scaling_options(cfg.serve)
    entry = read_entry(cfg.serve, name)
    if entry is not None and entry_alive(entry) and entry.get("mode") != "cluster":
        raise ServeError(
            f"serve app '{name}' is already running at {entry.get('url')} (pid {entry.get('pid')});"
            f" stop it with: w4s serve --shutdown --name {name}"
        )
    if _cluster_address(cfg) is None:  # the proxy will listen on this machine
        check_port_free(cfg.serve.host, cfg.serve.port)
    return resolved


# --- Serve lifecycle ------------------------------------------------------------------------

def _wait_running(name: str, url: str, timeout_s: float) -> None:
    """Poll Serve until the app is RUNNING and its HTTP route answers; raise on failure."""
    import httpx
    from ray import serve

    deadline = time.monotonic() + timeout_s
    last = "not deployed yet"
    while time.monotonic() < deadline:
        app = serve.status().applications.get(name)
        if app is not None:
            state = getattr(app.status, "value", app.status)
            last = f"{state}: {app.message}" if app.message else str(state)
            if state in ("DEPLOY_FAILED", "UNHEALTHY"):
                raise ServeError(f"serve app '{name}' failed to deploy: {_failure_cause(app)}")
            if app.status == "RUNNING":
                try:
                    if httpx.get(f"{url}/health", timeout=5.0).status_code == 200:
                        return
                    last = "RUNNING, /health not ready"
                except httpx.HTTPError as exc:
                    last = f"RUNNING, /health unreachable ({type(exc).__name__})"
        time.sleep(0.5)
    raise ServeError(
        f"serve app '{name}' was not healthy within {timeout_s:.0f} s (last status: {last}); "
        "raise serve.startup_timeout_s or check replica resources (num_cpus/num_gpus)"
    )


def _failure_cause(app: Any) -> str:
    """The last line of a failed replica's traceback (e.g. the model load error), if any."""
    for dep in getattr(app, "deployments", {}).values():
        lines = [ln.strip() for ln in (dep.message or "").splitlines() if ln.strip()]
        if lines:
            return lines[-1][:500]
    return app.message or "unknown error"


def serve_logging() -> dict[str, Any]:
    """Ray Serve's log settings for the controller, proxies and replicas: INFO lines and one
    access-log line per request only under --verbose. They still go to Serve's log files
    under the Ray session directory; without this every request printed a line (twice: the
    proxy's and the replica's) into the terminal of `w4s demo` or a foreground `w4s serve`."""
    verbose = console.level() == "verbose"
    return {"log_level": "INFO" if verbose else "WARNING", "enable_access_log": verbose}


def start_app(cfg: ExperimentConfig, resolved: ResolvedModel, name: str) -> str:
    """Deploy the app on the Ray of this process (started/joined via init_ray); returns URL."""
    from ray import serve

    from w4s_ray.runtime.placement import role_resources
    from w4s_ray.runtime.ray_init import init_ray
    from w4s_ray.serve.app import build_app

    init_ray(cfg.ray)
    role = role_resources(cfg.ray, "meta_agent")  # replicas on the meta-agent (GPU) nodes
    logs = serve_logging()
    serve.start(http_options={"host": cfg.serve.host, "port": cfg.serve.port},
                logging_config=logs)
    console.apply()  # serve.start sets the driver's "ray.serve" logger to INFO again
    app = build_app(cfg.serve, resolved, role)
    # Don't let serve.run wait: it waits forever if replicas can never be placed (e.g. GPUs).
    serve.run_many(
        [serve.RunTarget(target=app, name=name, route_prefix="/", logging_config=logs)],
        wait_for_ingress_deployment_creation=False,
        wait_for_applications_running=False,
    )
    url = local_url(cfg.serve)
    try:
        _wait_running(name, url, cfg.serve.startup_timeout_s)
    except BaseException:
        _delete_quietly(name)
        raise
    return url


def _delete_quietly(name: str) -> None:
    from ray import serve

    try:
        serve.delete(name, _blocking=True)
    except Exception:  # noqa: BLE001 - best effort on the way out; the original error matters
        pass


def stop_app(name: str, *, shutdown_serve: bool, shutdown_ray: bool) -> None:
    """Delete the app; stop Serve's controller/proxy and Ray when this process started them."""
    import ray
    from ray import serve

    if ray.is_initialized():
        _delete_quietly(name)
        if shutdown_serve:
            serve.shutdown()
        if shutdown_ray:
            ray.shutdown()


# --- foreground / detached ------------------------------------------------------------------

def _base_entry(cfg: ExperimentConfig, name: str, resolved: ResolvedModel, mode: str) -> dict:
    url = local_url(cfg.serve)
    return {
        "name": name,
        "mode": mode,
        "state": "starting",
        "url": url,
        "api_base": f"{url}/v1",
        "model_name": cfg.serve.model_name,
        "model": resolved.description,
        "host": cfg.serve.host,
        "port": cfg.serve.port,
        "pid": os.getpid() if mode != "cluster" else None,
        "pid_start": _proc_start_time(os.getpid()) if mode != "cluster" else None,
        "ray_address": _cluster_address(cfg),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "log": str(registry_dir(cfg.serve) / f"{name}.log") if mode == "detached" else None,
    }


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_server(
    cfg: ExperimentConfig, name: str, *, mode: str = "foreground",
    stop_event: threading.Event | None = None,
) -> int:
    """Serve until Ctrl-C/SIGTERM (or `stop_event`), then clean up. `mode`: foreground|detached."""
    resolved = preflight(cfg, name)
    owns = _owns_ray(cfg)
    path = registry_file(cfg.serve, name)
    entry = _base_entry(cfg, name, resolved, mode)
    atomic_write_json(path, entry)
    stop = stop_event or threading.Event()
    previous = None
    started = False
    try:
        _say(f"w4s serve: starting '{name}' ({resolved.description}) on {entry['url']} ...")
        entry["url"] = start_app(cfg, resolved, name)
        started = True
        if threading.current_thread() is threading.main_thread():
            # After ray.init, which installs its own SIGTERM handler (kill Ray, exit 1): ours
            # lets the finally-block delete the app and shut Serve and Ray down in order.
            previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        entry.update(state="running", ready_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        atomic_write_json(path, entry)
        print(f"serving '{cfg.serve.model_name}' at {entry['api_base']}  (Ctrl-C stops)",
              flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        _say("w4s serve: shutting down ...")
        return 0
    except BaseException as exc:
        if mode == "detached":
            # Left in place for the parent waiting on start-up; it removes the record.
            entry.update(state="failed", error=str(exc) or type(exc).__name__)
            atomic_write_json(path, entry)
        raise
    finally:
        stop_app(name, shutdown_serve=owns, shutdown_ray=owns)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if started or mode != "detached":
            remove_entry(cfg.serve, name)


def deploy_to_cluster(cfg: ExperimentConfig, name: str) -> dict[str, Any]:
    """`--detach` with a Ray address: deploy into the cluster's Serve and return."""
    resolved = preflight(cfg, name)
    entry = _base_entry(cfg, name, resolved, "cluster")
    entry["url"] = start_app(cfg, resolved, name)
    entry["state"] = "running"
    atomic_write_json(registry_file(cfg.serve, name), entry)
    return entry


def start_detached(cfg: ExperimentConfig, name: str) -> dict[str, Any]:
    """Start a supervisor process in its own session; wait until the app is healthy."""
    if _cluster_address(cfg) is not None:
        return deploy_to_cluster(cfg, name)
    preflight(cfg, name)
    rdir = registry_dir(cfg.serve)
    rdir.mkdir(parents=True, exist_ok=True)
    spec = rdir / f"{name}.spec.json"
    atomic_write_json(spec, {"name": name, "config": cfg.model_dump(mode="json")})
    log_path = rdir / f"{name}.log"
    path = registry_file(cfg.serve, name)
    path.unlink(missing_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "w4s_ray.serve.manage", "--spec", str(spec)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )
    deadline = time.monotonic() + cfg.serve.startup_timeout_s + 60.0  # + Ray start
    while time.monotonic() < deadline:
        entry = read_entry(cfg.serve, name) if path.exists() else None
        if entry and entry.get("pid") == proc.pid:
            if entry.get("state") == "running":
                return entry
            if entry.get("state") == "failed":
                proc.wait(timeout=60)
                remove_entry(cfg.serve, name)
                raise ServeError(f"{entry.get('error')} (log: {log_path})")
        if proc.poll() is not None:
            remove_entry(cfg.serve, name)
            raise ServeError(
                f"the serve process exited during start-up (code {proc.returncode}); "
                f"see {log_path}"
            )
        time.sleep(0.5)
    _kill_group(proc.pid)
    remove_entry(cfg.serve, name)
    raise ServeError(f"serve app '{name}' did not start in time; see {log_path}")


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --- status / shutdown ----------------------------------------------------------------------

def app_status(cfg: ServeConfig, name: str) -> dict[str, Any]:
    """The registry record plus live checks: process alive, /health, /v1/models."""
    import httpx

    entry = read_entry(cfg, name)
    if entry is None:
        raise ServeError(f"no serve app '{name}' is recorded in {registry_dir(cfg)}")
    alive = entry_alive(entry)
    status = dict(entry)
    status["process_alive"] = alive
    status["health"] = "unreachable"
    status["models"] = []
    if alive or entry.get("mode") == "cluster":
        try:
            h = httpx.get(f"{entry['url']}/health", timeout=5.0)
            status["health"] = "ok" if h.status_code == 200 else f"HTTP {h.status_code}"
            m = httpx.get(f"{entry['url']}/v1/models", timeout=5.0)
            if m.status_code == 200:
                status["models"] = [d["id"] for d in m.json().get("data", [])]
        except httpx.HTTPError as exc:
            status["health"] = f"unreachable ({type(exc).__name__})"
    if not alive:
        status["state"] = "stale (process gone)"
    return status


def shutdown_app(cfg: ExperimentConfig, name: str, *, timeout_s: float = 60.0) -> str:
    """Stop what `name`'s record says was started; returns a one-line summary."""
    entry = read_entry(cfg.serve, name)
    if entry is None:
        raise ServeError(f"no serve app '{name}' is recorded in {registry_dir(cfg.serve)}")
    if entry.get("mode") == "cluster":
        import ray
        from ray import serve

        from w4s_ray.config import RayConfig
        from w4s_ray.runtime.ray_init import init_ray

        init_ray(RayConfig(address=entry.get("ray_address") or "auto"))
        try:
            serve.delete(name)
        finally:
            ray.shutdown()
        remove_entry(cfg.serve, name)
        return f"deleted serve app '{name}' from the cluster at {entry.get('ray_address')}"
    pid = int(entry["pid"])
    if not entry_alive(entry):
        remove_entry(cfg.serve, name)
        return f"serve app '{name}' was not running (stale record removed)"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and entry_alive(entry):
        time.sleep(0.3)
    forced = entry_alive(entry)
    if forced:
        if entry.get("mode") == "detached":
            _kill_group(pid)  # its own session: only the supervisor and the Ray it started
        else:
            os.kill(pid, signal.SIGKILL)
    remove_entry(cfg.serve, name)
    how = "killed after timeout" if forced else "stopped"
    return f"serve app '{name}' at {entry.get('url')} {how} (pid {pid})"


# --- supervisor entry point -----------------------------------------------------------------

def _supervise(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m w4s_ray.serve.manage")
    parser.add_argument("--spec", required=True)
    args = parser.parse_args(argv)
    from w4s_ray.env import apply_offline_defaults
    from w4s_ray.errors import W4SError

    apply_offline_defaults()
    spec = json.loads(Path(args.spec).read_text(encoding="utf-8"))
    cfg = ExperimentConfig.model_validate(spec["config"])
    try:
        return run_server(cfg, spec["name"], mode="detached")
    except W4SError as exc:
        print(f"w4s: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(_supervise())
