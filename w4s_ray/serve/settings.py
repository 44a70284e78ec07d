"""Pure decisions about a serving deployment, made before Ray starts (no Ray imports here).

- `select_backend`: "transformers" (the built-in batching engine, runs anywhere) or "vllm"
  (vLLM's engine inside the same deployment, needs vLLM and GPU replicas). Asking for vLLM
  where it cannot run is one clear `ServeError`, not an ImportError from deep inside Serve.
- `deployment_options`: Serve deployment options from `serve.*` config: fixed replicas or
  autoscaling bounds, CPUs/GPUs per replica, in-flight request limits (large enough that a
  full replica answers 429 itself rather than Serve queueing without bound).
- `check_port_free`: Serve's proxy fails late and obscurely on a taken port, so we look first.
"""

from __future__ import annotations

import errno
import importlib.util
import socket
from typing import Any

from w4s_ray.config import ServeConfig
from w4s_ray.errors import W4SError
from w4s_ray.serve.checkpoint import ResolvedModel


class ServeError(W4SError):
    """The serving request cannot be met (backend, port, replicas, a running app)."""


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def select_backend(cfg: ServeConfig, resolved: ResolvedModel | None = None) -> str:
    """The backend that will serve `cfg`; raises `ServeError` when it cannot run."""
    if cfg.backend == "transformers":
        return "transformers"
    if not vllm_available():
        raise ServeError(
            "serve.backend=vllm needs vLLM (pip install vllm, GPU machines only); "
            "it is not installed here: use serve.backend=transformers"
        )
    if cfg.num_gpus <= 0:
        raise ServeError("serve.backend=vllm needs GPU replicas: set serve.num_gpus >= 1")
    if resolved is not None and resolved.adapter_path:
        raise ServeError(
            "serve.backend=vllm serves merged checkpoints only; merge the LoRA adapter "
            "(train.merge_lora=true) or use serve.backend=transformers"
        )
    return "vllm"


def scaling_options(cfg: ServeConfig) -> dict[str, Any]:
    """Fixed `num_replicas`, or `autoscaling_config` when either autoscale bound is set."""
    if cfg.autoscale_min is None and cfg.autoscale_max is None:
        return {"num_replicas": cfg.num_replicas}
    lo = cfg.autoscale_min if cfg.autoscale_min is not None else 1
    hi = cfg.autoscale_max if cfg.autoscale_max is not None else max(lo, cfg.num_replicas)
    if lo > hi:
        raise ServeError(f"serve.autoscale_min ({lo}) is larger than serve.autoscale_max ({hi})")
    return {
        "autoscaling_config": {
            "min_replicas": lo,
            "max_replicas": hi,
            "initial_replicas": max(lo, 1),
            "target_ongoing_requests": cfg.target_ongoing_requests,
        }
    }


def max_ongoing_requests(cfg: ServeConfig) -> int:
    if cfg.max_ongoing_requests is not None:
        return cfg.max_ongoing_requests
    return cfg.max_batch_size + cfg.max_queue + 16


def deployment_options(cfg: ServeConfig, resources: dict[str, float] | None = None
                       ) -> dict[str, Any]:
    """Options for `Deployment.options(...)`; `resources`: the replicas' custom (role)
    resources (runtime.placement)."""
    actor: dict[str, Any] = {"num_cpus": cfg.num_cpus, "num_gpus": cfg.num_gpus}
    if resources:
        actor["resources"] = dict(resources)
    opts: dict[str, Any] = {
        "ray_actor_options": actor,
        "max_ongoing_requests": max_ongoing_requests(cfg),
        # Loading a big checkpoint can take minutes; don't let Serve kill a replica mid-load.
        "health_check_timeout_s": 120.0,
    }
    opts.update(scaling_options(cfg))
    return opts


def check_port_free(host: str, port: int) -> None:
    """Raise `ServeError` if nothing can listen on host:port (in use, or not our address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # Same option uvicorn uses, so a port in TIME_WAIT after a restart is not reported busy.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(
                f"port {port} on {host} is already in use; pick another with --port"
            ) from None
        raise ServeError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    finally:
        sock.close()
