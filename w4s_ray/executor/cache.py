"""Persistent completion cache: one sqlite file per node, shared by all its processes.

Each of a request's `n` samples is stored under its own key, sha256 of (key version, the
endpoint identity, messages, temperature, max_tokens, response_format, run seed, occurrence,
sample index). The endpoint identity (built by the client, `ExecutorClient.identity`) is the
provider, the resolved api_base, the model, the parameters the provider is sent, and what the
server says it is (the w4s simulator and its version, or an OpenAI-compatible server and what
it lists for the model). So the same model name at two endpoints, or the simulator and a real
server at one URL one after the other, never share an answer. n samples at T > 0 stay
distinct, a repeated evaluation replays exactly what it got before, and a workflow that asks
the same thing twice (occurrence 0, 1, ...) gets fresh samples.

Versioning: keys carry `KEY_VERSION` and live in table `completions_v2`. Files written by
older versions keep their `completions` table untouched and never read: its keys ignored the
endpoint, so none of its rows can be trusted for a given endpoint.

Stored per sample: the text, its share of the call's tokens and dollars (so a hit can report
the dollars it would have cost), the model and the endpoint identity (for inspection; the key
is what is matched). Never the API key.
Concurrency: WAL journal and a busy timeout across processes; one connection per thread. First
opens that race to switch a new file to WAL are retried (`_open`).
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

KEY_VERSION = 2
_TABLE = "completions_v2"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {_TABLE} (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    prompt_tokens REAL NOT NULL,
    completion_tokens REAL NOT NULL,
    cost_usd REAL NOT NULL,
    model TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    created REAL NOT NULL
)
"""


_OPEN_TIMEOUT_S = 30.0
_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _is_busy(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _BUSY_CODES  # extended codes keep the primary code in the low byte
    return "locked" in str(exc) or "busy" in str(exc)


@dataclass(frozen=True)
class CacheEntry:
    text: str
    prompt_tokens: float
    completion_tokens: float
    cost_usd: float


def sample_key(endpoint: str, messages: list[dict], temperature: float, max_tokens: int | None,
               response_format: Any, seed: int, occurrence: int, index: int) -> str:
    """The key of one sample; `endpoint` is the client's identity string (module docstring)."""
    blob = json.dumps(
        [KEY_VERSION, endpoint, messages, float(temperature), max_tokens, response_format, seed,
         occurrence, index],
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
            conn = self._open()
            self._local.conn = conn
        return conn

    def _open(self) -> sqlite3.Connection:
        # Switching a new file to WAL takes an exclusive lock, and sqlite answers "database is
        # locked" at once, without its busy handler, to a second process doing the same. Every
        # evaluator actor opens the node's cache as it starts, so concurrent first opens are
        # the normal case: retry those for as long as the busy timeout would have waited.
        deadline = time.monotonic() + _OPEN_TIMEOUT_S
        pause = 0.01
        while True:
            conn = None
            try:
                conn = sqlite3.connect(self.path, timeout=_OPEN_TIMEOUT_S, isolation_level=None,
                                       check_same_thread=False)
                conn.execute(f"PRAGMA busy_timeout={int(_OPEN_TIMEOUT_S * 1000)}")
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash may lose the last writes, never corrupt
                conn.execute(_SCHEMA)
                return conn
            except sqlite3.DatabaseError as exc:
                if conn is not None:
                    conn.close()
                if _is_busy(exc) and time.monotonic() < deadline:
                    time.sleep(pause)
                    pause = min(pause * 2, 0.5)
                    continue
                raise ExecutorError(f"executor.cache.path {self.path}: not a usable sqlite file ({exc})") from None

    def get_many(self, keys: list[str]) -> dict[str, CacheEntry]:
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        rows = self._conn().execute(
            f"SELECT key, text, prompt_tokens, completion_tokens, cost_usd FROM {_TABLE} "
            f"WHERE key IN ({marks})", keys,
        ).fetchall()
        return {r[0]: CacheEntry(r[1], r[2], r[3], r[4]) for r in rows}

    def put_many(self, model: str, entries: dict[str, CacheEntry], endpoint: str = "") -> None:
        if not entries:
            return
        now = time.time()
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                f"INSERT OR IGNORE INTO {_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(k, e.text, e.prompt_tokens, e.completion_tokens, e.cost_usd, model, endpoint, now)
                 for k, e in entries.items()],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def __len__(self) -> int:
        return self._conn().execute(f"SELECT COUNT(*) FROM {_TABLE}").fetchone()[0]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
