"""A checkpoint that passes the file checks but cannot be loaded by the replica (slow)."""

from __future__ import annotations

import socket

import pytest

from w4s_ray.config import ExperimentConfig, RayConfig, ServeConfig

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.timeout(400)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_weights_that_fail_to_load_are_reported(ray_session, tiny_model_dir, tmp_path):
    """A checkpoint that passes the file checks but cannot load fails fast with the cause."""
    import shutil

    from ray import serve

    from w4s_ray.serve.checkpoint import resolve_model
    from w4s_ray.serve.manage import start_app, stop_app
    from w4s_ray.serve.settings import ServeError

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    cfg = ExperimentConfig(
        ray=RayConfig(num_cpus=4),
        serve=ServeConfig(model=str(broken), model_name="broken", port=_free_port(),
                          num_cpus=0.25, startup_timeout_s=240),
    )
    try:
        with pytest.raises(ServeError, match="failed to deploy: .*(header|safetensors)"):
            start_app(cfg, resolve_model(cfg.serve.model), "broken")
        assert "broken" not in serve.status().applications
    finally:
        stop_app("broken", shutdown_serve=True, shutdown_ray=False)
