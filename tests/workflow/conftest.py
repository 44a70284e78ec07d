"""Small configs for workflow tests: tight timeouts and memory so hostile tests stay fast."""

from __future__ import annotations

import pytest

from w4s_ray.config import EvalConfig, SandboxConfig


@pytest.fixture
def sandbox_cfg() -> SandboxConfig:
    return SandboxConfig(item_timeout_s=3, workflow_timeout_s=30, memory_mb=512, cpu_seconds=30,
                         code_exec_timeout_s=5)


@pytest.fixture
def eval_cfg() -> EvalConfig:
    return EvalConfig(max_inflight_per_evaluator=8)


@pytest.fixture(scope="module")
def wf_sim(data_dir):
    """The simulator on a free port with no latency (module scope: start-up takes seconds)."""
    from w4s_ray.config import SimConfig
    from w4s_ray.executor.sim.launch import start_sim

    handle = start_sim(SimConfig(latency="none"), data_dir, port=0)
    yield handle
    handle.stop()


@pytest.fixture
def sim_executor_cfg(wf_sim, tmp_path):
    """Executor config pointing at `wf_sim`, with a private completion cache."""
    from w4s_ray.config import CacheConfig, ExecutorConfig

    return ExecutorConfig(api_base=wf_sim.url, cache=CacheConfig(path=str(tmp_path / "c.sqlite")))
