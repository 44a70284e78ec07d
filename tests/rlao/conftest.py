"""`rlao_sim`: one simulated executor for the RLAO end-to-end tests (a subprocess, stopped at
the end of the session), and the CLI settings that keep those runs small."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def rlao_sim(data_dir):
    from w4s_ray.config import SimConfig
    from w4s_ray.executor.sim.launch import start_sim

    handle = start_sim(SimConfig(latency="none"), data_dir)
    yield handle
    handle.stop()


def small_run_sets(sim_url: str, cache: Path, **over) -> list[str]:
    sets = {
        "executor.api_base": sim_url, "executor.cache.path": str(cache),
        "meta_agent.backend": "scripted", "meta_agent.model": "seed-variants",
        "eval.limit": 8, "eval.num_evaluators": 1, "rlao.candidates": 2, "rlao.turns": 2,
        "rlao.test_limit": 8, **over,
    }
    out = []
    for k, v in sets.items():
        out += ["--set", f"{k}={v}"]
    return out


def w4s(args: list[str], timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "w4s_ray", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, **kw)
