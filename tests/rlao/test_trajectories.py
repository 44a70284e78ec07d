"""The trajectory schema and per-turn Parquet parts."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from w4s_ray.errors import DataError
from w4s_ray.rlao.trajectories import (
    COLUMNS,
    SCHEMA,
    part_files,
    read_rows,
    to_table,
    write_turn,
)

REQUIRED = {
    "run_id": pa.string(), "episode_id": pa.string(), "benchmark": pa.string(),
    "turn": pa.int32(), "candidate": pa.int32(), "prompt_messages": pa.string(),
    "action": pa.string(), "code": pa.string(), "valid": pa.bool_(), "error": pa.string(),
    "val_accuracy": pa.float64(), "reward": pa.float64(), "chosen": pa.bool_(),
    "repair_count": pa.int32(), "eval_calls": pa.int64(), "prompt_tokens": pa.int64(),
    "completion_tokens": pa.int64(), "cost_usd": pa.float64(), "meta_agent": pa.string(),
    "executor": pa.string(), "seed": pa.int64(), "racing_stopped": pa.bool_(),
    "created_at": pa.timestamp("us", tz="UTC"),
}


def _row(turn=0, cand=0, **kw):
    r = {c: None for c in COLUMNS}
    r.update(run_id="r", episode_id="gsm8k-e00", benchmark="gsm8k", turn=turn, candidate=cand,
             prompt_messages='[{"role": "user", "content": "x"}]', action="a", valid=False,
             reward=-0.1, chosen=False, repair_count=0, eval_calls=0, prompt_tokens=0,
             completion_tokens=0, cost_usd=0.0, meta_agent="m", executor="e", seed=7,
             racing_stopped=False, created_at=datetime(2026, 1, 1, tzinfo=UTC))
    r.update(kw)
    return r


def test_schema_has_the_documented_columns_and_types():
    for name, typ in REQUIRED.items():
        assert SCHEMA.field(name).type == typ, name
    assert COLUMNS[: len(REQUIRED)] == list(REQUIRED)


def test_write_read_roundtrip_with_nulls(tmp_path):
    rows = [_row(0, 0), _row(0, 1, code="def solver(agent, task): ...", valid=True,
                            val_accuracy=0.5, reward=0.5, chosen=True, feedback="fb")]
    path = write_turn(tmp_path, "gsm8k-e00", 0, rows)
    assert path.name == "part-gsm8k-e00-0000.parquet"
    assert pq.read_schema(path).equals(SCHEMA, check_metadata=False)
    assert read_rows(tmp_path) == rows
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_missing_column_and_wrong_type_are_rejected():
    bad = _row()
    del bad["reward"]
    with pytest.raises(ValueError, match="reward"):
        to_table([bad])
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        to_table([_row(turn="zero")])


def test_corrupt_and_foreign_files(tmp_path):
    write_turn(tmp_path, "gsm8k-e00", 0, [_row()])
    (tmp_path / "notes.txt").write_text("ignored")
    assert [p.name for p in part_files(tmp_path)] == ["part-gsm8k-e00-0000.parquet"]
    pq.write_table(pa.table({"x": [1]}), tmp_path / "part-gsm8k-e00-0001.parquet")
    with pytest.raises(DataError, match="part-gsm8k-e00-0001.parquet lacks columns"):
        read_rows(tmp_path)
    (tmp_path / "part-gsm8k-e00-0001.parquet").write_bytes(b"garbage")
    with pytest.raises(DataError, match="corrupt trajectory file .*part-gsm8k-e00-0001.parquet"):
        read_rows(tmp_path)


def test_files_written_before_the_w4s_protocol_columns_still_load(tmp_path):
    """A part file without protocol/attempt/dropped/trajectory/reference_best (written before
    issue #16) reads with their defaults: those runs used the w4s-ray process."""
    from w4s_ray.rlao.trajectories import ADDED_DEFAULTS

    old_schema = pa.schema([f for f in SCHEMA if f.name not in ADDED_DEFAULTS])
    row = {k: v for k, v in _row(0, 0).items() if k not in ADDED_DEFAULTS}
    tmp_path.mkdir(exist_ok=True)
    pq.write_table(pa.Table.from_pylist([row], schema=old_schema),
                   tmp_path / "part-gsm8k-e00-0000.parquet")
    got = read_rows(tmp_path)
    assert got[0]["protocol"] == "w4s-ray" and got[0]["attempt"] == 0
    assert got[0]["dropped"] is False and got[0]["trajectory"] is None
    assert got[0]["reward"] == -0.1
