"""Injected executor faults do not change results.

The simulator answers 10% of requests with HTTP 429, 5% with HTTP 500 and hangs 2% past the
client's timeout (`executor.timeout_s` 2 s, `sim.hang_s` 6 s). `optimize`, `collect` and a
reduced `sweep` run once against a clean simulator and once against the faulty one, with the
same seeds and separate (empty) completion caches. The trajectory rows must be equal
row-for-row on every column except `created_at` (wall clock) and the billing columns
(`cost_usd`, `prompt_tokens`, `completion_tokens`: which of two identical concurrent requests
fills the cache first is a race in both runs, so what was billed may differ while every
answer, score, reward and choice is the same). Selected workflows and valid/test accuracies in
final.json must be equal, and the faulty simulator must really have injected faults.

An evaluator actor killed mid-evaluation is replaced and its items re-run:
tests/runtime/test_evaluators.py (not duplicated here).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.reliability.helpers import BILLING, VOLATILE, partial_files, strip, w4s
from w4s_ray.rlao.trajectories import read_rows

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

FAULTS = dict(rate_429=0.10, rate_500=0.05, rate_hang=0.02, hang_s=6.0, retry_after_s=0.1,
              seed=11)


@pytest.fixture(scope="module")
def sims(data_dir):
    from w4s_ray.config import SimConfig
    from w4s_ray.executor.sim.launch import start_sim

    clean = start_sim(SimConfig(latency="none"), data_dir, port=0)
    faulty = start_sim(SimConfig(latency="none", **FAULTS), data_dir, port=0)
    yield clean, faulty
    clean.stop()
    faulty.stop()


def _sets(url: str, cache: Path, **over) -> list[str]:
    kv = {
        "executor.api_base": url, "executor.cache.path": str(cache),
        "executor.timeout_s": 2, "executor.max_retries": 10,
        "executor.retry_base_delay_s": 0.05, "executor.retry_max_delay_s": 0.5,
        "meta_agent.backend": "scripted", "meta_agent.model": "seed-variants",
        "eval.limit": 6, "eval.num_evaluators": 1, "rlao.candidates": 2, "rlao.turns": 2,
        "rlao.test_limit": 6, "sandbox.item_timeout_s": 120, **over,
    }
    out: list[str] = []
    for k, v in kv.items():
        out += ["--set", f"{k}={v}"]
    return out


def _pair(args_of, tmp_path: Path, sims) -> tuple[Path, Path]:
    """Run the clean and the faulty variant side by side; both must succeed."""
    clean, faulty = sims
    dirs = (tmp_path / "clean", tmp_path / "faulty")

    def run(k):
        sim, d = (clean, faulty)[k], dirs[k]
        return w4s(args_of(d, _sets(sim.url, tmp_path / f"cache{k}.sqlite")), timeout=1800)

    with ThreadPoolExecutor(2) as pool:
        procs = list(pool.map(run, [0, 1]))
    for p in procs:
        assert p.returncode == 0, p.stderr[-3000:]
    return dirs


def _assert_same_rows(a: Path, b: Path) -> None:
    ra, rb = read_rows(a), read_rows(b)
    assert ra, a
    assert strip(ra, VOLATILE + BILLING) == strip(rb, VOLATILE + BILLING)


def _assert_faults_injected(sim) -> None:
    st = sim.stats()
    assert st.get("fault_429", 0) > 0 and st.get("fault_500", 0) > 0, st
    assert st.get("fault_hang", 0) > 0 or st.get("requests", 0) < 100, st


def test_optimize_under_faults_equals_fault_free(sims, tmp_path):
    clean, faulty = _pair(lambda d, s: ["optimize", "-b", "gsm8k", "--run-dir", str(d),
                                        "--no-progress", *s], tmp_path, sims)
    _assert_same_rows(clean / "trajectories", faulty / "trajectories")
    fa, fb = (json.loads((d / "final.json").read_text()) for d in (clean, faulty))
    for key in ("best", "best_turn", "best_candidate", "valid_accuracy", "test_accuracy",
                "test_n", "seed_baselines"):
        assert fa[key] == fb[key], key
    assert fb["test_error"] is None
    sa, sb = (json.loads((d / "seeds" / "gsm8k.json").read_text()) for d in (clean, faulty))
    assert [(s["name"], s["val_accuracy"]) for s in sa] == [(s["name"], s["val_accuracy"])
                                                            for s in sb]
    assert (clean / "final_workflow.py").read_text() == (faulty / "final_workflow.py").read_text()
    assert partial_files(faulty) == []
    _assert_faults_injected(sims[1])


def test_collect_under_faults_equals_fault_free(sims, tmp_path):
    clean, faulty = _pair(lambda d, s: ["collect", "--benchmarks", "gsm8k,svamp", "--episodes",
                                        "1", "--out", str(d), "--no-progress", *s],
                          tmp_path, sims)
    _assert_same_rows(clean / "trajectories", faulty / "trajectories")
    assert len(read_rows(faulty / "trajectories")) == 2 * 2 * 2  # no evaluation lost
    assert partial_files(faulty) == []
    _assert_faults_injected(sims[1])


def test_reduced_sweep_under_faults_equals_fault_free(sims, tmp_path):
    clean, faulty = _pair(lambda d, s: ["sweep", "--benchmarks", "gsm8k,mmlu_pro",
                                        "--no-progress", *s, "--set", f"run_dir={d}",
                                        "--set", "rlao.turns=1"], tmp_path, sims)
    for b in ("gsm8k", "mmlu_pro"):
        _assert_same_rows(clean / b / "trajectories", faulty / b / "trajectories")
        fa, fb = (json.loads((d / b / "final.json").read_text()) for d in (clean, faulty))
        for key in ("best", "valid_accuracy", "test_accuracy"):
            assert fa[key] == fb[key], (b, key)
        ba, bb = (json.loads((d / b / "baselines.json").read_text()) for d in (clean, faulty))
        assert json.dumps(ba, sort_keys=True, default=str).count("accuracy") > 0
        assert _accuracies(ba) == _accuracies(bb), b
    assert partial_files(faulty) == []


def _accuracies(obj) -> list:
    """Every (key path, value) of an accuracy-like number in a JSON document."""
    out = []

    def walk(o, path):
        if isinstance(o, dict):
            for k, v in sorted(o.items()):
                walk(v, f"{path}/{k}")
        elif isinstance(o, list):
            for i, v in enumerate(o):
                walk(v, f"{path}/{i}")
        elif "accuracy" in path.rsplit("/", 1)[-1] or path.endswith(("/n", "/name")):
            out.append((path, o))

    walk(obj, "")
    return out


