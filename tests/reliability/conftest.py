"""Fixtures of the reliability suite: tight sandbox limits (benchmarks: tests/fixtures/data.py)."""

from __future__ import annotations

import pytest

from w4s_ray.config import EvalConfig, SandboxConfig


@pytest.fixture
def sandbox_cfg() -> SandboxConfig:
    return SandboxConfig(item_timeout_s=4, workflow_timeout_s=40, memory_mb=512, cpu_seconds=30,
                         code_exec_timeout_s=5, max_file_mb=8, max_open_files=128)


@pytest.fixture
def eval_cfg() -> EvalConfig:
    return EvalConfig(max_inflight_per_evaluator=8)
