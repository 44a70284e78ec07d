"""The optimize driver on a fake evaluator: run dir layout, final test, resume, bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.rlao.fakes import FakeEvaluator, reply, workflow
from w4s_ray.config import load_config
from w4s_ray.errors import BudgetExceeded, ConfigError, DataError
from w4s_ray.meta_agent.scripted import ScriptedMetaAgent
from w4s_ray.rlao.loop import TaskSpec
from w4s_ray.rlao.optimize import optimize
from w4s_ray.rlao.runs import RunDir
from w4s_ray.rlao.trajectories import COLUMNS, read_rows

SPEC = TaskSpec("gsm8k", "math", "Grade-school math.", "a number",
                {"CoT": workflow(0.4), "SC": workflow(0.5, calls=3)})
REPLIES = [reply(a) for a in (0.2, 0.55, 0.7, 0.9, 0.35)] + ["no code here"]


def _cfg(**over):
    sets = [f"{k}={v}" for k, v in {"rlao.candidates": 3, "rlao.turns": 3, **over}.items()]
    return load_config(None, sets)


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "created_at"} for r in rows]


def test_optimize_writes_the_run_dir(tmp_path):
    ev = FakeEvaluator()
    final = optimize(_cfg(), SPEC, tmp_path / "run", ev, ScriptedMetaAgent(REPLIES),
                          progress=False)
    d = tmp_path / "run"
    for name in ("config.yaml", "metrics.jsonl", "cost.json", "final.json",
                 "final_workflow.py", "report.md", "curve.png", "seeds/gsm8k.json"):
        assert (d / name).exists(), name
    rows = read_rows(d / "trajectories")
    assert len(rows) == 9 and sorted({r["turn"] for r in rows}) == [1, 2, 3]
    assert len(list((d / "trajectories").glob("part-gsm8k-e00-*.parquet"))) == 3
    for r in rows:
        if r["code"]:
            assert (d / "workflows" / f"turn_{r['turn']:02d}_cand_{r['candidate']}.py"
                    ).read_text() == r["code"]
    metrics = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    assert [m["turn"] for m in metrics] == [1, 2, 3]
    on_disk = json.loads((d / "final.json").read_text())
    assert on_disk == final
    seeds = json.loads((d / "seeds/gsm8k.json").read_text())
    best_valid = max([r["val_accuracy"] for r in rows if r["valid"]]
                     + [s["val_accuracy"] for s in seeds])
    assert final["valid_accuracy"] == best_valid
    assert (d / "final_workflow.py").read_text() in {r["code"] for r in rows} | set(
        SPEC.seed_workflows.values())
    # Exactly one test evaluation of the optimized workflow (+ the seed baselines, report only).
    test_jobs = [j for call in ev.evaluate_calls for j in call if j.split == "test"]
    assert len(test_jobs) == 1 + len(SPEC.seed_workflows)
    assert [j.tag for j in test_jobs][0] == "final"
    assert set(final["seed_baselines"]) == {"CoT", "SC"}
    report = (d / "report.md").read_text()
    assert "| turn |" in report.replace("| episode | turn |", "| turn |")
    assert "optimized" in report and "seed: CoT" in report
    assert pd.read_parquet(d / "trajectories").shape == (9, len(COLUMNS))


def test_resume_after_each_turn_equals_uninterrupted(tmp_path):
    full = tmp_path / "full"
    optimize(_cfg(), SPEC, full, FakeEvaluator(), ScriptedMetaAgent(REPLIES), progress=False)
    part = tmp_path / "part"
    for k in (1, 2, 3):  # a fresh process-like start for each turn
        optimize(_cfg(), SPEC, part, FakeEvaluator(), ScriptedMetaAgent(REPLIES),
                      turns=k, resume=k > 1, progress=False)
    assert _strip(read_rows(part / "trajectories")) == _strip(read_rows(full / "trajectories"))
    a = json.loads((full / "final.json").read_text())
    b = json.loads((part / "final.json").read_text())
    assert {k: v for k, v in a.items() if k != "wall_s"} == {
        k: v for k, v in b.items() if k != "wall_s"}


def test_existing_run_needs_resume_and_same_settings(tmp_path):
    d = tmp_path / "run"
    optimize(_cfg(**{"rlao.turns": 1}), SPEC, d, FakeEvaluator(),
                  ScriptedMetaAgent(REPLIES), progress=False)
    with pytest.raises(ConfigError, match="already holds a run; pass --resume"):
        optimize(_cfg(), SPEC, d, FakeEvaluator(), ScriptedMetaAgent(REPLIES), progress=False)
    with pytest.raises(ConfigError, match="rlao.candidates"):
        optimize(_cfg(**{"rlao.candidates": 4}), SPEC, d, FakeEvaluator(),
                      ScriptedMetaAgent(REPLIES), resume=True, progress=False)


def test_scoring_is_recorded_and_a_resume_cannot_switch_it(tmp_path):
    import yaml

    d = tmp_path / "run"
    final = optimize(_cfg(**{"rlao.turns": 1}), SPEC, d, FakeEvaluator(),
                          ScriptedMetaAgent(REPLIES), progress=False)
    assert final["scoring"] == "official"
    assert "Scoring: official" in (d / "report.md").read_text()
    with pytest.raises(ConfigError, match="eval.scoring"):
        optimize(_cfg(**{"eval.scoring": "lenient"}), SPEC, d, FakeEvaluator(),
                      ScriptedMetaAgent(REPLIES), resume=True, progress=False)
    # A run written before eval.scoring existed was scored leniently: only lenient resumes it.
    old = yaml.safe_load((d / "config.yaml").read_text())
    del old["eval"]["scoring"]
    (d / "config.yaml").write_text(yaml.safe_dump(old))
    with pytest.raises(ConfigError, match="eval.scoring is 'official' .* used 'lenient'"):
        RunDir(d).check_reuse(_cfg(), resume=True)
    RunDir(d).check_reuse(_cfg(**{"eval.scoring": "lenient"}), resume=True)


def test_corrupt_parquet_is_named_and_kept(tmp_path):
    d = tmp_path / "run"
    optimize(_cfg(**{"rlao.turns": 2}), SPEC, d, FakeEvaluator(),
                  ScriptedMetaAgent(REPLIES), progress=False)
    bad = d / "trajectories" / "part-gsm8k-e00-0001.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match="part-gsm8k-e00-0001.parquet"):
        optimize(_cfg(), SPEC, d, FakeEvaluator(), ScriptedMetaAgent(REPLIES),
                      resume=True, progress=False)
    assert bad.read_bytes() == b"PAR1 this is not parquet"


def test_no_code_for_every_candidate_is_recorded_not_lost(tmp_path):
    # w4s-ray: failed turns are recorded and the episode goes on (w4s: test_loop_w4s.py).
    d = tmp_path / "run"
    final = optimize(_cfg(**{"rlao.protocol": "w4s-ray"}), SPEC, d, FakeEvaluator(),
                          ScriptedMetaAgent(["I refuse to write code."]), progress=False)
    rows = read_rows(d / "trajectories")
    assert len(rows) == 9 and not any(r["valid"] for r in rows)
    assert all(r["error"].startswith("no code") for r in rows)
    # The best workflow stays the best seed; it is what gets tested.
    assert final["best"] == "SC" and final["best_turn"] is None
    assert "0/3" in (d / "report.md").read_text()


def test_budget_stop_keeps_completed_turns_and_resume_finishes(tmp_path):
    d = tmp_path / "run"
    # Seeds cost 40 + 120 calls; each turn ~3 self-checks + 3*40 calls.
    with pytest.raises(BudgetExceeded):
        optimize(_cfg(), SPEC, d, FakeEvaluator(budget_calls=300),
                      ScriptedMetaAgent(REPLIES), progress=False)
    rows = read_rows(d / "trajectories")
    assert {r["turn"] for r in rows} == {1}
    assert (d / "report.md").exists() and not (d / "final.json").exists()
    optimize(_cfg(), SPEC, d, FakeEvaluator(), ScriptedMetaAgent(REPLIES), resume=True,
                  progress=False)
    full = tmp_path / "full"
    optimize(_cfg(), SPEC, full, FakeEvaluator(), ScriptedMetaAgent(REPLIES), progress=False)
    assert _strip(read_rows(d / "trajectories")) == _strip(read_rows(full / "trajectories"))


def _other_value(value, annotation, upper=float("inf")):
    """A different valid value for a config field (the parametrised resume test)."""
    import typing

    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Literal:
        return next(a for a in typing.get_args(annotation) if a != value)
    if value is None:
        from pydantic import BaseModel

        if isinstance(args[0], type) and issubclass(args[0], BaseModel):
            return {}  # a section that was unset: set, with its defaults
        if typing.get_origin(args[0]) is list:
            return ["other"]
        return {int: 7, str: "other", float: 0.5}[args[0]]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1 if value + 1 <= upper else value - 1
    if isinstance(value, float):
        return value / 2 if value else 0.5
    if isinstance(value, str):
        return value + "-other"
    if isinstance(value, list):
        return value[1:]
    raise AssertionError(f"no other value for {value!r}")


def _field(path):
    from pydantic import BaseModel

    from w4s_ray.config import ExperimentConfig

    model, info = ExperimentConfig, None
    for part in path.split("."):
        info = model.model_fields[part]
        model = info.annotation if isinstance(info.annotation, type) and issubclass(
            info.annotation, BaseModel) else None
    return info


def test_resume_keys_come_from_the_schema():
    from w4s_ray.config import resume_keys

    keys = resume_keys()
    # The ones a hand-kept list once missed are marked in the schema now.
    for key in ("executor.seed", "executor.temperature", "executor.max_tokens",
                "eval.failure_samples", "eval.self_check_items", "rlao.racing.slices",
                "rlao.racing.confidence", "rlao.racing.bound", "meta_agent.top_p",
                "meta_agent.max_tokens"):
        assert key in keys


def _resume_keys():
    from w4s_ray.config import resume_keys

    return resume_keys()


@pytest.mark.parametrize("key", _resume_keys())
def test_resume_refuses_every_changed_resume_key(tmp_path, key):
    import re

    from w4s_ray.rlao.runs import RunDir, preflight

    # Racing exists under the w4s-ray protocol only.
    sets = ["rlao.protocol=w4s-ray"] if key.startswith("rlao.racing") else []
    base = load_config(None, sets)
    RunDir(tmp_path / "run").prepare(base, resume=False)
    current = base.model_dump(mode="json")
    for part in key.split("."):
        current = current[part]
    info = _field(key)
    upper = next((m.le for m in info.metadata if getattr(m, "le", None) is not None),
                 float("inf"))
    other = _other_value(current, info.annotation, upper)
    changed = load_config(None, [*sets, f"{key}={json.dumps(other)}"])
    with pytest.raises(ConfigError, match=rf"--resume: {re.escape(key)} is "):
        preflight(tmp_path / "run", changed, resume=True)
    preflight(tmp_path / "run", base, resume=True)  # the same settings resume fine


def test_a_run_from_before_the_protocol_key_resumes_as_w4s_ray(tmp_path):
    """Its config.yaml has no rlao.protocol (nor the keys the protocol owns): that run used the
    w4s-ray process, so resuming needs --set rlao.protocol=w4s-ray and nothing else."""
    import yaml

    from w4s_ray.rlao.runs import preflight

    old = load_config(None, ["rlao.protocol=w4s-ray"]).model_dump(mode="json")
    del old["rlao"]["protocol"]
    for key in ("feedback", "execute_code_guard", "extra_random_items"):
        del old["eval"][key]
    for key in ("max_turn_attempts", "drop_accuracy", "collect_split", "bootstrap_samples"):
        del old["rlao"][key]
    d = tmp_path / "run"
    (d / "trajectories").mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump(old))
    with pytest.raises(ConfigError, match=r"--resume: rlao\.protocol is 'w4s' but the run .* "
                                          r"used 'w4s-ray'"):
        preflight(d, load_config(None), resume=True)
    preflight(d, load_config(None, ["rlao.protocol=w4s-ray"]), resume=True)
