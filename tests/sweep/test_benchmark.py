"""One benchmark of a sweep on a fake evaluator: the test ids are computed once, the seed
baselines are evaluated once, and final.json and the report are written once."""

from __future__ import annotations

import json

from tests.rlao.fakes import FakeEvaluator, reply, workflow
from w4s_ray.config import load_config
from w4s_ray.meta_agent.scripted import ScriptedMetaAgent
from w4s_ray.rlao import optimize as optimize_mod
from w4s_ray.rlao.loop import TaskSpec
from w4s_ray.sweep.benchmark import run_benchmark
from w4s_ray.sweep.layout import SweepLayout

SPEC = TaskSpec("gsm8k", "math", "Grade-school math.", "a number",
                {"CoT": workflow(0.4), "SC": workflow(0.5, calls=3)})


class CountingEvaluator(FakeEvaluator):
    def __init__(self) -> None:
        super().__init__()
        self.id_calls: list[str] = []

    def item_ids(self, benchmark, split):
        self.id_calls.append(split)
        return super().item_ids(benchmark, split)


def test_run_benchmark_writes_final_and_report_once(tmp_path, monkeypatch):
    cfg = load_config(None, ["rlao.candidates=2", "rlao.turns=2", "rlao.test_limit=10"])
    writes: list[str] = []
    real_json, real_report = optimize_mod.atomic_write_json, optimize_mod.write_report

    def count_json(path, obj):
        writes.append(path.name)
        return real_json(path, obj)

    def count_report(path):
        writes.append("report.md")
        return real_report(path)

    monkeypatch.setattr(optimize_mod, "atomic_write_json", count_json)
    monkeypatch.setattr(optimize_mod, "write_report", count_report)
    ev = CountingEvaluator()
    out = run_benchmark(cfg, SPEC, SweepLayout(tmp_path), ev,
                        ScriptedMetaAgent([reply(a) for a in (0.2, 0.6, 0.7, 0.9)]),
                        resume=False)
    assert out["status"] == "done"
    assert writes.count("final.json") == 1 and writes.count("report.md") == 1
    assert ev.id_calls == ["test"]  # the final test ids: computed once for both evaluations
    test_jobs = [j for call in ev.evaluate_calls for j in call if j.split == "test"]
    assert sorted(j.tag for j in test_jobs) == ["baseline:CoT", "baseline:SC", "final"]
    final = json.loads((tmp_path / "gsm8k" / "final.json").read_text())
    base = json.loads((tmp_path / "gsm8k" / "baselines.json").read_text())
    assert {n: b["test_accuracy"] for n, b in final["seed_baselines"].items()} == \
        {n: b["test_accuracy"] for n, b in base["baselines"].items()}
    assert "seed: CoT" in (tmp_path / "gsm8k" / "report.md").read_text()
