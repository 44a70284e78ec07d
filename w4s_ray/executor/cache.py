"""Persistent completion cache: one sqlite file per node, shared by all its processes.

Each of a request's `n` samples is stored under its own key, sha256 of (model, messages,
temperature, max_tokens, response_format, run seed, occurrence, sample index). So n samples
at T > 0 stay distinct, a repeated evaluation replays exactly what it got before, and a
workflow that asks the same thing twice (occurrence 0, 1, ...) gets fresh samples. The
api_base is not part of the key: the same model behind another URL is the same model.

Stored per sample: the text, its share of the call's tokens and dollars (so a hit can report
the dollars it saved). Nothing else: never the API key or the api_base.
Concurrency: WAL journal and a busy timeout across processes; one connection per thread.
`INSERT OR IGNORE` makes the first writer win, so concurrent writers agree on what is stored.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from w4s_ray.errors import ExecutorError

DEFAULT_PATH = Path.home() / ".cache" / "w4s" / "completions.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    prompt_tokens REAL NOT NULL,
    completion_tokens REAL NOT NULL,
    cost_usd REAL NOT NULL,
    model TEXT NOT NULL,
    created REAL NOT NULL
)
"""


@dataclass(frozen=True)
class CacheEntry:
    text: str
    prompt_tokens: float
    completion_tokens: float
    cost_usd: float


def sample_key(model: str, messages: list[dict], temperature: float, max_tokens: int | None,
               response_format: Any, seed: int, occurrence: int, index: int) -> str:
    blob = json.dumps(
        [model, messages, float(temperature), max_tokens, response_format, seed, occurrence, index],
        sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class CompletionCache:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path).expanduser() if path else DEFAULT_PATH
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExecutorError(f"executor.cache.path {self.path}: cannot create folder ({exc.strerror})") from None
        self._local = threading.local()
        self._conn()  # fail at construction, not on the first call

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                       check_same_thread=False)
                conn.execute("PRAGMA busy_timeout=30000")
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash may lose the last writes, never corrupt
                conn.execute(_SCHEMA)
            except sqlite3.DatabaseError as exc:
                raise ExecutorError(f"executor.cache.path {self.path}: not a usable sqlite file ({exc})") from None
            self._local.conn = conn
        return conn

    def get_many(self, keys: list[str]) -> dict[str, CacheEntry]:
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        rows = self._conn().execute(
            f"SELECT key, text, prompt_tokens, completion_tokens, cost_usd FROM completions "
            f"WHERE key IN ({marks})", keys,
        ).fetchall()
        return {r[0]: CacheEntry(r[1], r[2], r[3], r[4]) for r in rows}

    def put_many(self, model: str, entries: dict[str, CacheEntry]) -> None:
        if not entries:
            return
        now = time.time()
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT OR IGNORE INTO completions VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(k, e.text, e.prompt_tokens, e.completion_tokens, e.cost_usd, model, now)
                 for k, e in entries.items()],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def __len__(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
