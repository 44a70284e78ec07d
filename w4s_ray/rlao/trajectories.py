"""RLAO trajectories: the Arrow schema, the per-turn Parquet writer, and reading for resume.

One row per candidate (see docs/TRAJECTORIES.md for every column; files written before the
w4s protocol columns existed are read with their defaults). Turns are numbered as everywhere
else: the seed workflows are turn 0, the meta-agent's turns 1, 2, ...; files from before that
convention (first turn 0, no `w4s.turn_numbering` key) are read back renumbered. A dataset is a directory of
`part-<episode_id>-<turn:04d>.parquet` files, one per COMPLETED turn of one episode, each
written to a temp file and renamed, so a reader (pandas, polars, HF `datasets`, Ray Data) never
sees half a turn and a killed writer leaves at most a stray `.tmp` file, never a partial part.
Rows of a turn are written together or not at all: that is the unit of resume.

`read_rows(dir)` opens every part file and raises `DataError` naming the first one that is not
valid Parquet with this schema; nothing is ever deleted.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from w4s_ray.errors import DataError
from w4s_ray.utils.io import atomic_write_bytes

SCHEMA = pa.schema([
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("episode_id", pa.string(), nullable=False),
    pa.field("benchmark", pa.string(), nullable=False),
    pa.field("turn", pa.int32(), nullable=False),
    pa.field("candidate", pa.int32(), nullable=False),
    pa.field("prompt_messages", pa.string(), nullable=False),
    pa.field("action", pa.string(), nullable=False),
    pa.field("code", pa.string()),
    pa.field("valid", pa.bool_(), nullable=False),
    pa.field("error", pa.string()),
    pa.field("val_accuracy", pa.float64()),
    pa.field("reward", pa.float64()),  # null: a dropped candidate (w4s protocol)
    pa.field("chosen", pa.bool_(), nullable=False),
    pa.field("repair_count", pa.int32(), nullable=False),
    pa.field("eval_calls", pa.int64(), nullable=False),
    pa.field("prompt_tokens", pa.int64(), nullable=False),
    pa.field("completion_tokens", pa.int64(), nullable=False),
    pa.field("cost_usd", pa.float64(), nullable=False),
    pa.field("meta_agent", pa.string(), nullable=False),
    pa.field("executor", pa.string(), nullable=False),
    pa.field("seed", pa.int64(), nullable=False),
    pa.field("racing_stopped", pa.bool_(), nullable=False),
    pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
    # Beyond the required columns: the validation feedback the candidate got (the observation
    # a multi-turn trainer would append), null for failed candidates.
    pa.field("feedback", pa.string()),
    # What the executor samples served from the completion cache would have cost (they cost
    # nothing); null in files written before the column existed.
    pa.field("cached_usd", pa.float64()),
    # Added with the w4s protocol (issue #16). Files written before lack them; `read_part`
    # fills ADDED_DEFAULTS (those runs used the w4s-ray process).
    pa.field("protocol", pa.string()),
    pa.field("attempt", pa.int32()),
    pa.field("dropped", pa.bool_()),
    pa.field("trajectory", pa.int32()),
    pa.field("reference_best", pa.float64()),
])
COLUMNS = SCHEMA.names
# Columns added after the first release and the value files without them read back with.
ADDED_DEFAULTS = {"cached_usd": None, "protocol": "w4s-ray", "attempt": 0, "dropped": False,
                  "trajectory": None, "reference_best": None}
ADDED_COLUMNS = tuple(ADDED_DEFAULTS)
# Turn numbering: the seed workflows are turn 0, so the meta-agent's rows start at turn 1. Files
# carry this key; files without it were written when the first meta-agent turn was 0 and are
# read back renumbered (+1), so old and new parts of one resumed run agree.
TURN_KEY = b"w4s.turn_numbering"
TURN_NUMBERING = b"seeds=0"
_PART = re.compile(r"^part-(?P<episode>.+)-(?P<turn>\d{4,})\.parquet$")


def part_name(episode_id: str, turn: int) -> str:
    return f"part-{episode_id}-{turn:04d}.parquet"


def now_utc() -> datetime:
    return datetime.now(UTC)


def to_table(rows: Iterable[dict]) -> pa.Table:
    rows = [{**ADDED_DEFAULTS, **r} for r in rows]
    missing = [c for c in COLUMNS if rows and c not in rows[0]]
    if missing:
        raise ValueError(f"trajectory row lacks columns: {missing}")
    return pa.Table.from_pylist([{c: r.get(c) for c in COLUMNS} for r in rows], schema=SCHEMA)


def write_turn(out_dir: str | Path, episode_id: str, turn: int, rows: list[dict]) -> Path:
    """Write one completed turn's rows as one Parquet file (temp file + rename)."""
    path = Path(out_dir) / part_name(episode_id, turn)
    buf = io.BytesIO()
    table = to_table(rows)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           TURN_KEY: TURN_NUMBERING})
    pq.write_table(table, buf, compression="zstd")
    atomic_write_bytes(path, buf.getvalue())
    return path


def part_files(out_dir: str | Path) -> list[Path]:
    d = Path(out_dir)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if _PART.match(p.name))


def read_part(path: Path) -> pa.Table:
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError variants for corrupt files
        raise DataError(
            f"corrupt trajectory file {path}: {str(exc).splitlines()[0][:160]} "
            "(move it away to resume without that turn; nothing was deleted)"
        ) from None
    old = (table.schema.metadata or {}).get(TURN_KEY) != TURN_NUMBERING
    i = table.column_names.index("turn") if "turn" in table.column_names else None
    if old and i is not None and pa.types.is_integer(table.schema.field(i).type):
        table = table.set_column(i, table.schema.field(i),
                                 pc.add(table.column(i), pa.scalar(1, table.column(i).type)))
    for name, value in ADDED_DEFAULTS.items():
        if name not in table.column_names:
            field = SCHEMA.field(name)
            table = table.append_column(field, pa.array([value] * table.num_rows, field.type))
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise DataError(f"trajectory file {path} lacks columns {missing}")
    try:
        return table.select(COLUMNS).cast(SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError) as exc:
        # Right column names, wrong types or nulls: another schema (version or tool) wrote it.
        raise DataError(
            f"trajectory file {path} does not have the trajectory schema "
            f"({str(exc).splitlines()[0][:160]}); move it away to resume without it"
        ) from None


def read_table(out_dir: str | Path) -> pa.Table:
    parts = [read_part(p) for p in part_files(out_dir)]
    if not parts:
        return SCHEMA.empty_table()
    return pa.concat_tables(parts)


def read_rows(out_dir: str | Path) -> list[dict]:
    """Every row of every part file, ordered by (episode_id, turn, candidate)."""
    rows = read_table(out_dir).to_pylist()
    rows.sort(key=lambda r: (r["episode_id"], r["turn"], r["candidate"]))
    return rows
