"""The benchmark data directory: manifest, verification, fetching, and guarded readers.

`manifest.json` (next to this module) lists every file the benchmarks read, with the sha256 of
the stored file and where it came from upstream (GitHub repo, commit, path; optionally a zip
member, and whether we store the plain upstream file gzipped). It holds checksums, never data.

- `verify(data_dir)` reports each file as ok / missing / mismatch / unreadable.
- `fetch(data_dir)` downloads missing or mismatching files from raw.githubusercontent.com at
  the recorded commit, gzips where the manifest says so (`gzip -9n`, which reproduces the stored
  bytes exactly), checks sha256 and writes with write-then-rename. Offline, it stops at the
  first unreachable host with one clear `DataError` and leaves no partial file.
- `open_text` / `read_*` open a file of the data dir and turn a missing or corrupt file into
  one-line `DataError`s that name the file and the command that fixes it.

It does not decrypt GPQA (see `gpqa.py`, in memory only) and never downloads anything at import
or load time: only `w4s data fetch` touches the network.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from w4s_ray.errors import DataError
from w4s_ray.utils.io import atomic_write_bytes

MANIFEST_PATH = Path(__file__).with_name("manifest.json")
RAW_BASE = "https://raw.githubusercontent.com"
FETCH_HINT = "run `w4s data fetch` (or set data.dir / W4S_DATA_DIR to the benchmark data)"


@dataclass(frozen=True)
class FileEntry:
    path: str                 # relative to the data dir
    sha256: str               # of the stored file
    bytes: int
    source_repo: str | None
    source_commit: str | None
    source_path: str | None
    zip_member: str | None = None
    gzip: bool = False        # upstream is plain text, stored gzipped
    raw_sha256: str | None = None

    @property
    def url(self) -> str | None:
        if not (self.source_repo and self.source_commit and self.source_path):
            return None
        return f"{RAW_BASE}/{self.source_repo}/{self.source_commit}/{self.source_path}"


@lru_cache(maxsize=1)
def manifest() -> tuple[FileEntry, ...]:
    raw = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))
    return tuple(FileEntry(**entry) for entry in raw["files"])


@lru_cache(maxsize=1)
def _source_zip_sha256() -> dict[str, str]:
    return json.loads(MANIFEST_PATH.read_text(encoding="utf-8")).get("source_zip_sha256", {})


def entry(path: str) -> FileEntry:
    for e in manifest():
        if e.path == path:
            return e
    raise KeyError(path)


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Explicit dir, else $W4S_DATA_DIR, else ./data (same rule as `cfg.data_dir()`)."""
    raw = data_dir if data_dir is not None else (os.environ.get("W4S_DATA_DIR") or "data")
    return Path(raw).expanduser().resolve()


def require_dir(data_dir: Path) -> Path:
    if not data_dir.is_dir():
        what = "is not a directory" if data_dir.exists() else "does not exist"
        raise DataError(f"data directory {data_dir} {what}; {FETCH_HINT}")
    return data_dir


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# verify


def file_status(data_dir: Path, e: FileEntry) -> str:
    """'ok' | 'missing' | 'mismatch' | 'unreadable' for one manifest entry."""
    p = data_dir / e.path
    if not p.is_file():
        return "missing"
    try:
        if sha256_file(p) == e.sha256:
            return "ok"
    except OSError:  # permission denied, I/O error: the file is there but cannot be used
        return "unreadable"
    # A gz recompressed by another deflate implementation differs in bytes, not in content.
    if e.gzip and e.raw_sha256:
        try:
            with gzip.open(p, "rb") as fh:
                if hashlib.sha256(fh.read()).hexdigest() == e.raw_sha256:
                    return "ok"
        except (OSError, EOFError, zlib.error):
            pass
    return "mismatch"


def verify(data_dir: str | os.PathLike | None = None,
           paths: list[str] | None = None) -> dict[str, str]:
    """Status of every manifest file (or of `paths`) under `data_dir`."""
    root = resolve_data_dir(data_dir)
    wanted = set(paths) if paths is not None else None
    return {e.path: file_status(root, e) for e in manifest()
            if wanted is None or e.path in wanted}


# ---------------------------------------------------------------------------------------------
# fetch


def _download(url: str, timeout: float) -> bytes:
    host = url.split("/")[2]
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.read()
    except urllib.error.HTTPError as exc:
        raise DataError(f"download failed: {url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"cannot reach {host}: offline? ({reason})") from None


def _gzip_like_stored(data: bytes) -> bytes:
    # GNU `gzip -9n` is what produced the stored files; zlib's deflate differs in bytes.
    if shutil.which("gzip"):
        out = subprocess.run(["gzip", "-9n", "-c"], input=data, capture_output=True, check=True)
        return out.stdout
    return gzip.compress(data, compresslevel=9, mtime=0)


def _materialise(e: FileEntry, fetched: Callable[[str], bytes]) -> bytes:
    assert e.url is not None
    data = fetched(e.url)
    if e.zip_member:
        key = f"{e.source_repo}/{e.source_path}"
        want_zip = _source_zip_sha256().get(key)
        if want_zip and hashlib.sha256(data).hexdigest() != want_zip:
            raise DataError(f"{e.url}: sha256 mismatch of the upstream zip")
        data = zipfile.ZipFile(io.BytesIO(data)).read(e.zip_member)
    if e.gzip:
        if e.raw_sha256 and hashlib.sha256(data).hexdigest() != e.raw_sha256:
            raise DataError(f"{e.path}: upstream content sha256 mismatch ({e.url})")
        return _gzip_like_stored(data)
    return data


def fetch(data_dir: str | os.PathLike | None = None, *, paths: list[str] | None = None,
          timeout: float = 30.0, force: bool = False,
          progress: Callable[[str, str], None] | None = None) -> dict[str, str]:
    """Download every missing/mismatching manifest file; return path -> status after fetch.

    Raises `DataError` on the first unreachable host (one line, nothing partial written).
    """
    root = resolve_data_dir(data_dir)
    cache: dict[str, bytes] = {}  # one download per upstream URL (the MMLU-Pro zip serves two)

    def fetched(url: str) -> bytes:
        if url not in cache:
            cache[url] = _download(url, timeout)
        return cache[url]

    result: dict[str, str] = {}
    writable = False
    for e in manifest():
        if paths is not None and e.path not in paths:
            continue
        if not force and file_status(root, e) == "ok":
            result[e.path] = "ok"
            continue
        if e.url is None:
            result[e.path] = "no public URL"
            continue
        if not writable:  # say so before a download that could never be stored
            _check_writable(root)
            writable = True
        data = _materialise(e, fetched)
        got = hashlib.sha256(data).hexdigest()
        content_ok = e.gzip and e.raw_sha256 and (
            hashlib.sha256(gzip.decompress(data)).hexdigest() == e.raw_sha256)
        if got != e.sha256 and not content_ok:
            raise DataError(f"{e.path}: downloaded file sha256 {got[:12]}… does not match the "
                            f"manifest ({e.sha256[:12]}…) from {e.url}")
        atomic_write_bytes(root / e.path, data)
        result[e.path] = "fetched"
        if progress:
            progress(e.path, "fetched")
    return result


def _check_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".w4s-write-check-"):
            pass
    except OSError as exc:
        raise DataError(f"cannot write the data files to {root} "
                        f"({exc.strerror or type(exc).__name__})") from None


# ---------------------------------------------------------------------------------------------
# guarded readers: every benchmark reads its files through these


def data_path(data_dir: Path, rel: str) -> Path:
    require_dir(data_dir)
    p = data_dir / rel
    if not p.is_file():
        raise DataError(f"missing data file {p}; {FETCH_HINT}")
    return p


def read_bytes(data_dir: Path, rel: str) -> bytes:
    p = data_path(data_dir, rel)
    try:
        return p.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read data file {p} ({exc.strerror or type(exc).__name__})"
                        ) from None


def read_text(data_dir: Path, rel: str) -> str:
    p = data_path(data_dir, rel)
    try:
        if rel.endswith(".gz"):
            with gzip.open(p, "rt", encoding="utf-8") as fh:
                return fh.read()
        return p.read_text(encoding="utf-8")
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        raise DataError(f"corrupt data file {p} ({type(exc).__name__}); "
                        f"`w4s data verify` to check, `w4s data fetch` to repair") from None


def _corrupt(p: str, what: str) -> DataError:
    return DataError(f"corrupt data file {p} ({what}); "
                     f"`w4s data verify` to check, `w4s data fetch` to repair")


def read_jsonl(data_dir: Path, rel: str) -> list[dict[str, Any]]:
    text = read_text(data_dir, rel)
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise _corrupt(str(data_dir / rel), f"line {lineno} is not JSON") from None
        if not isinstance(row, dict):
            raise _corrupt(str(data_dir / rel), f"line {lineno} is not an object")
        rows.append(row)
    return rows


def read_json(data_dir: Path, rel: str) -> Any:
    text = read_text(data_dir, rel)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _corrupt(str(data_dir / rel), f"invalid JSON at line {exc.lineno}") from None


def require_fields(rows: list[dict], fields: tuple[str, ...], path: str) -> None:
    """A schema check so a truncated/garbled file fails here, not deep inside a scorer."""
    for i, row in enumerate(rows):
        missing = [f for f in fields if f not in row]
        if missing:
            raise _corrupt(path, f"row {i} lacks {', '.join(missing)}")


def expect_count(rows: list, n: int, path: str) -> None:
    if len(rows) != n:
        raise _corrupt(path, f"expected {n} items, found {len(rows)}")
