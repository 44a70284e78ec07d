"""Backend selection, replica options and the port check: decided before Ray starts."""

from __future__ import annotations

import socket

import pytest

from w4s_ray.config import ServeConfig
from w4s_ray.serve import settings
from w4s_ray.serve.checkpoint import ResolvedModel
from w4s_ray.serve.settings import (
    ServeError,
    check_port_free,
    deployment_options,
    select_backend,
)


def test_transformers_is_the_default_backend():
    assert select_backend(ServeConfig()) == "transformers"


def test_vllm_without_vllm_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(settings, "vllm_available", lambda: False)
    with pytest.raises(ServeError, match="needs vLLM .*serve.backend=transformers"):
        select_backend(ServeConfig(backend="vllm", num_gpus=1))


def test_vllm_here_is_not_installed():
    # This box cannot install vLLM (docs/PLATFORM.md); the real check must say so.
    assert not settings.vllm_available()
    with pytest.raises(ServeError, match="vLLM"):
        select_backend(ServeConfig(backend="vllm", num_gpus=1))


def test_vllm_needs_gpu_replicas_and_merged_weights(monkeypatch):
    monkeypatch.setattr(settings, "vllm_available", lambda: True)
    with pytest.raises(ServeError, match="serve.num_gpus"):
        select_backend(ServeConfig(backend="vllm", num_gpus=0))
    lora = ResolvedModel("/base", "/adapter", "/base")
    with pytest.raises(ServeError, match="LoRA"):
        select_backend(ServeConfig(backend="vllm", num_gpus=1), lora)
    assert select_backend(ServeConfig(backend="vllm", num_gpus=1)) == "vllm"


def test_vllm_modules_stay_importable_without_vllm():
    # vLLM is imported lazily inside the replica; the modules themselves must import on CPU.
    import w4s_ray.serve.app as app
    import w4s_ray.serve.vllm_engine as vllm_engine

    assert callable(app.build_app) and callable(vllm_engine.VLLMGenerator)


def test_serve_keeps_queueing_in_the_replica_so_it_can_answer_429():
    cfg = ServeConfig(max_batch_size=8, max_queue=4)
    assert deployment_options(cfg)["max_ongoing_requests"] > 8 + 4
    assert deployment_options(ServeConfig(max_ongoing_requests=5))["max_ongoing_requests"] == 5


def test_fixed_replicas_and_resources():
    opts = deployment_options(ServeConfig(num_replicas=3, num_cpus=0.25, num_gpus=1))
    assert opts["num_replicas"] == 3 and "autoscaling_config" not in opts
    assert opts["ray_actor_options"] == {"num_cpus": 0.25, "num_gpus": 1}


def test_autoscaling_bounds():
    opts = deployment_options(ServeConfig(autoscale_min=1, autoscale_max=4))
    assert "num_replicas" not in opts
    auto = opts["autoscaling_config"]
    assert (auto["min_replicas"], auto["max_replicas"]) == (1, 4)
    zero = deployment_options(ServeConfig(autoscale_min=0, autoscale_max=2))["autoscaling_config"]
    assert zero["min_replicas"] == 0 and zero["initial_replicas"] == 1


def test_autoscaling_min_above_max_is_an_error():
    from w4s_ray.config import load_config
    from w4s_ray.errors import ConfigError

    # A cross-field rule of the schema: refused when the config is loaded, before serving.
    with pytest.raises(ConfigError, match=r"autoscale_min \(5\) is larger than autoscale_max"):
        load_config(None, ["serve.autoscale_min=5", "serve.autoscale_max=2"])


def test_port_in_use_is_detected():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        with pytest.raises(ServeError, match=f"port {port} on 127.0.0.1 is already in use"):
            check_port_free("127.0.0.1", port)
    finally:
        holder.close()
    check_port_free("127.0.0.1", port)  # free again: no error


def test_unbindable_host_is_an_error():
    with pytest.raises(ServeError, match="cannot listen on 203.0.113.7"):
        check_port_free("203.0.113.7", 8000)


def test_ray_serve_cli_builder_checks_args(tiny_model_dir, tmp_path):
    from ray.serve import Application

    from w4s_ray.errors import ConfigError
    from w4s_ray.serve.app import app_builder
    from w4s_ray.serve.checkpoint import CheckpointError

    # `serve run ... num_replicas=2` passes strings; they are coerced and validated.
    app = app_builder({"model": str(tiny_model_dir), "model_name": "x", "num_replicas": "2"})
    assert isinstance(app, Application)
    with pytest.raises(ConfigError, match="serve.num_replicas"):
        app_builder({"model": str(tiny_model_dir), "num_replicas": "zero"})
    with pytest.raises(ConfigError, match="serve.colour"):
        app_builder({"model": str(tiny_model_dir), "colour": "red"})
    with pytest.raises(CheckpointError, match="does not exist"):
        app_builder({"model": str(tmp_path / "none")})
