"""Small sandbox configs for the sandbox tests (same limits as tests/workflow's), so hostile
tests stay fast."""

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
