"""The driver of `optimize` never loads a benchmark's items (gold answers included): feedback
is written in the evaluator actors, racing slices and test ids come from them too."""

from __future__ import annotations

import pytest

from tests.rlao.conftest import small_run_sets
from w4s_ray.benchmarks import base, data, get_benchmark
from w4s_ray.config import load_config
from w4s_ray.meta_agent import make_meta_agent
from w4s_ray.rlao.loop import TaskSpec
from w4s_ray.rlao.optimize import optimize
from w4s_ray.rlao.trajectories import read_rows
from w4s_ray.runtime.evaluators import EvaluatorPool

pytestmark = pytest.mark.ray


@pytest.mark.timeout(600)
@pytest.mark.parametrize("protocol", ["w4s", "w4s-ray"])
def test_optimize_loads_no_benchmark_items_in_the_driver(ray_session, rlao_sim, tmp_path,
                                                         monkeypatch, protocol):
    # w4s-ray with racing: slices come from the actors too.
    over = {"rlao.racing.enabled": "true"} if protocol == "w4s-ray" else {}
    sets = small_run_sets(rlao_sim.url, tmp_path / "cache.sqlite", **over,
                          **{"rlao.protocol": protocol, "rlao.candidates": 3})
    cfg = load_config(None, [s for s in sets if s != "--set"])
    spec = TaskSpec.from_benchmark(get_benchmark("gsm8k", data_dir=cfg.data_dir()),
                                   cfg.rlao.protocol)
    pool = EvaluatorPool(cfg)  # its actors are other processes: they load what they need
    reads: list[str] = []

    def refuse(*args, **kwargs):
        reads.append(repr(args)[:200])
        raise AssertionError("the driver read benchmark data")

    monkeypatch.setattr(base.Benchmark, "load", refuse)
    monkeypatch.setattr(base, "_build_cached", refuse)
    for name in ("read_text", "read_bytes", "read_jsonl", "read_json"):
        monkeypatch.setattr(data, name, refuse)
    agent = make_meta_agent(cfg)
    try:
        final = optimize(cfg, spec, tmp_path / "run", pool, agent, progress=False)
    finally:
        agent.close()
        pool.close()
    assert reads == []
    assert final["test_n"] == 8 and final["test_accuracy"] is not None
    rows = read_rows(tmp_path / "run" / "trajectories")
    valid = [r for r in rows if r["valid"]]
    assert valid, "no candidate was evaluated"
    # Feedback written by the evaluators: validation accuracy and cases.
    head = "Validation accuracy:" if protocol == "w4s" else "Accuracy on the validation set"
    assert all(head in r["feedback"] for r in valid)
