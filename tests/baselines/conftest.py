"""Configs for baseline tests: generous item timeouts (debate and refine make many calls)."""

from __future__ import annotations

import pytest

from w4s_ray.config import EvalConfig, SandboxConfig

# One benchmark per family: the acceptance set of issue 18.
FAMILY_BENCHMARKS = {"math": "gsm8k", "reading": "drop", "multiple_choice": "mmlu_pro",
                     "code": "humaneval"}


@pytest.fixture
def sandbox_cfg() -> SandboxConfig:
    return SandboxConfig(item_timeout_s=60, workflow_timeout_s=300)


@pytest.fixture
def eval_cfg() -> EvalConfig:
    return EvalConfig(max_inflight_per_evaluator=8)


@pytest.fixture(scope="session")
def family_benchmarks(data_dir):
    from w4s_ray.benchmarks import get_benchmark

    return {k: get_benchmark(b, data_dir) for k, b in FAMILY_BENCHMARKS.items()}
