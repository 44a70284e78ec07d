"""`collect` on Ray with a fake evaluator: parallel episodes, Parquet readable everywhere, resume."""

from __future__ import annotations

import json

import pytest

from tests.rlao import fakes
from tests.rlao.fakes import reply
from w4s_ray.config import load_config
from w4s_ray.errors import BudgetExceeded, ConfigError, DataError
from w4s_ray.rlao.trajectories import COLUMNS, SCHEMA, read_rows

pytestmark = pytest.mark.ray

BENCHES = ["alpha", "beta", "gamma"]


@pytest.fixture(scope="module")
def pickled_fakes():
    import ray.cloudpickle as cp

    cp.register_pickle_by_value(fakes)
    yield
    cp.unregister_pickle_by_value(fakes)


def _cfg(tmp_path, **over):
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([reply(a) for a in (0.2, 0.5, 0.8, 0.65)] + ["no code"]))
    sets = {"rlao.candidates": 2, "rlao.turns": 2, "meta_agent.backend": "scripted",
            "meta_agent.model": str(replies), **over}
    return load_config(None, [f"{k}={v}" for k, v in sets.items()])


def _collect(cfg, out, **kw):
    from w4s_ray.runtime.collect import collect

    specs = fakes.fake_specs(BENCHES)
    return collect(cfg, BENCHES, out, evaluator_factory=fakes.fake_factory,
                   spec_loader=specs.__getitem__, progress=False, **kw)


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "created_at"} for r in rows]


def test_collect_three_benchmarks_in_parallel(ray_session, pickled_fakes, tmp_path):
    out = tmp_path / "collect"
    summary = _collect(_cfg(tmp_path), out, episodes=2)
    assert summary["episodes"] == 6 and summary["rows"] == 6 * 2 * 2
    parts = sorted(p.name for p in (out / "trajectories").glob("*.parquet"))
    assert len(parts) == 12 and "part-alpha-e01-0001.parquet" in parts

    import datasets
    import pandas as pd
    import polars as pl
    import pyarrow.parquet as pq

    pdf = pd.read_parquet(out / "trajectories")
    assert list(pdf.columns) == COLUMNS and len(pdf) == 24
    pldf = pl.read_parquet(str(out / "trajectories" / "*.parquet"))
    assert pldf.columns == COLUMNS and pldf.height == 24
    hf = datasets.load_dataset("parquet", data_files=str(out / "trajectories" / "*.parquet"),
                               split="train")
    assert hf.num_rows == 24 and set(COLUMNS) <= set(hf.column_names)
    assert pq.read_schema(out / "trajectories" / parts[0]).equals(SCHEMA, check_metadata=False)
    msgs = json.loads(pdf.iloc[0]["prompt_messages"])
    assert msgs[0]["role"] == "system" and {m["role"] for m in msgs} <= {"system", "user",
                                                                         "assistant"}
    assert set(pdf["benchmark"]) == set(BENCHES)
    # one chosen candidate per turn that had a valid one
    for (_, _), grp in pdf.groupby(["episode_id", "turn"]):
        assert grp["chosen"].sum() == (1 if grp["valid"].any() else 0)
    assert (out / "report.md").exists() and (out / "curve.png").exists()
    assert sorted(p.stem for p in (out / "seeds").glob("*.json")) == BENCHES


def test_collect_resume_continues_without_duplicates(ray_session, pickled_fakes, tmp_path):
    full = tmp_path / "full"
    _collect(_cfg(tmp_path), full, episodes=1, turns=2)
    part = tmp_path / "part"
    _collect(_cfg(tmp_path), part, episodes=1, turns=1)
    # simulate a crash that lost one in-flight turn: drop beta's turn 0 part
    (part / "trajectories" / "part-beta-e00-0001.parquet").unlink()
    _collect(_cfg(tmp_path), part, episodes=1, turns=2, resume=True)
    assert _strip(read_rows(part / "trajectories")) == _strip(read_rows(full / "trajectories"))


def test_corrupt_part_file_is_a_clear_error(ray_session, pickled_fakes, tmp_path):
    out = tmp_path / "c"
    _collect(_cfg(tmp_path), out, episodes=1, turns=1)
    bad = out / "trajectories" / "part-gamma-e00-0001.parquet"
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(DataError, match="part-gamma-e00-0001.parquet"):
        _collect(_cfg(tmp_path), out, episodes=1, turns=2, resume=True)
    assert bad.exists()


def test_budget_stops_collection_with_completed_turns_written(ray_session, pickled_fakes,
                                                               tmp_path, monkeypatch):
    out = tmp_path / "b"

    def small_budget(cfg):
        return fakes.FakeEvaluator(budget_calls=800)

    with pytest.raises(BudgetExceeded):
        from w4s_ray.runtime.collect import collect

        specs = fakes.fake_specs(BENCHES)
        collect(_cfg(tmp_path), BENCHES, out, evaluator_factory=small_budget, episodes=1,
                turns=5, spec_loader=specs.__getitem__, progress=False)
    rows = read_rows(out / "trajectories")
    assert rows  # completed turns are on disk
    assert (out / "report.md").exists()


def test_collect_split_train_evaluates_seeds_and_candidates_off_validation(ray_session,
                                                                           pickled_fakes,
                                                                           tmp_path):
    """rlao.collect_split=train (upstream's training mode): every seed and candidate evaluation
    of a collection is on the collection split; a benchmark without one is refused up front."""
    from w4s_ray.runtime.collect import collect

    cfg = _cfg(tmp_path, **{"rlao.collect_split": "train"})
    specs = fakes.fake_specs(BENCHES)
    with pytest.raises(ConfigError, match="rlao.collect_split=train: gamma has no collection"):
        collect(cfg, BENCHES, tmp_path / "refused", evaluator_factory=fakes.pooled_factory,
                episodes=1, turns=1, spec_loader=specs.__getitem__, progress=False)
    out = tmp_path / "train"
    collect(cfg, BENCHES[:2], out, evaluator_factory=fakes.pooled_factory, episodes=1, turns=2,
            spec_loader=specs.__getitem__, progress=False)
    seeds = [s for b in BENCHES[:2] for s in json.loads((out / "seeds" / f"{b}.json").read_text())]
    assert seeds and all(s["feedback"].startswith("train accuracy") for s in seeds)
    feedback = [r["feedback"] for r in read_rows(out / "trajectories") if r["feedback"]]
    assert feedback and all(f.startswith("train accuracy") for f in feedback)
