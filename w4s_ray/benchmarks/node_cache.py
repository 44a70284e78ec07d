"""Built benchmark splits shared by the processes of one machine (`data.node_cache`).

Every evaluator actor (and a sweep's benchmark host) builds each benchmark's splits itself:
checks the files' sha256, decompresses and parses them, builds the items. For DROP or
MMLU-Pro that is 0.2 CPU-seconds or more per process, paid again by every actor of every run.
With the cache on, the first process on a machine to build a benchmark pickles the built splits
to `~/.cache/w4s/benchmarks/`; the others load that file (several times cheaper) instead.
Processes that miss at the same moment (a pool's actors start together) take an flock on the
entry's lock file: one builds, the others wait and load its file.

The key of an entry is the benchmark class, the data directory, and the size and modification
time of each of its data files and of the modules that build it (the class's module,
`benchmarks/base.py`): a changed data file or code builds afresh (and checks the sha256 again).
A file changed in place with its size and mtime preserved would not be noticed.

What it does not do: cache a benchmark whose class says `node_cache = False` (GPQA: its
questions are decrypted in memory only and must never be written to disk); share between
machines; or load a file it did not write itself: the directory must be ours (0700) and an
entry owned by us and writable by no one else, else it is ignored and rebuilt. Sandboxed
children never see it: `~/.cache/w4s` is hidden by both isolation backends
(`sandbox/process.py` `hidden_paths`, bubblewrap binds no home directory).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import inspect
import os
import pickle
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

_dir: Path | None = None


def configure(enabled: bool, root: str | os.PathLike | None = None) -> None:
    """Turn the cache on (at `root`, default ~/.cache/w4s/benchmarks) or off for this process."""
    global _dir
    _dir = Path(root or Path.home() / ".cache" / "w4s" / "benchmarks") if enabled else None
    if _dir is not None:
        # Now, before this process starts any sandbox: the isolation hides ~/.cache/w4s from
        # children only if it exists when their hidden paths are worked out.
        with contextlib.suppress(OSError):
            _dir.mkdir(parents=True, exist_ok=True, mode=0o700)


def enabled() -> bool:
    return _dir is not None


def _stamp(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return f"{path}:missing"
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def _key(cls: type, data_dir: str, files: list[str]) -> str:
    from w4s_ray.benchmarks import base

    parts = [cls.__module__, cls.__qualname__, os.path.realpath(data_dir),
             _stamp(Path(inspect.getfile(cls))), _stamp(Path(base.__file__))]
    parts += [_stamp(Path(data_dir) / rel) for rel in sorted(files)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def _ours(path: Path, st: os.stat_result, mode_mask: int) -> bool:
    return st.st_uid == os.getuid() and not (st.st_mode & mode_mask) and \
        (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode))


def load_or_build(cls: type, data_dir: str, files: list[str],
                  build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The built splits of `cls` from this machine's cache, else `build()` (stored for the
    next process when the cache is on and the class allows it)."""
    root = _dir
    if root is None or not getattr(cls, "node_cache", False):
        return build()
    path = root / f"{cls.__name__}-{_key(cls, data_dir, files)}.pkl"
    hit = _load(root, path)
    if hit is not None:
        return hit
    lock = None
    try:
        with contextlib.suppress(OSError):
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
            if _ours(root, root.stat(), 0o077):
                # Actors of one pool start together and ask for the same benchmark at once:
                # one builds, the others wait for its file instead of building it too.
                lock = os.open(path.with_suffix(".lock"), os.O_CREAT | os.O_RDWR, 0o600)
                fcntl.flock(lock, fcntl.LOCK_EX)
        hit = _load(root, path) if lock is not None else None
        return hit if hit is not None else _build_and_store(root, path, build)
    finally:
        if lock is not None:
            os.close(lock)  # releases the flock


def _load(root: Path, path: Path) -> dict[str, Any] | None:
    try:
        if _ours(root, root.stat(), 0o077) and _ours(path, path.stat(), 0o022):
            with open(path, "rb") as fh:
                return pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
        pass  # absent, foreign or unreadable: build it
    return None


def _build_and_store(root: Path, path: Path, build: Callable[[], dict[str, Any]]
                     ) -> dict[str, Any]:
    out = build()
    try:
        if _ours(root, root.stat(), 0o077):
            fd, tmp = tempfile.mkstemp(dir=root, prefix=".tmp-", suffix=".pkl")
            try:
                with os.fdopen(fd, "wb") as fh:
                    pickle.dump(out, fh, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(tmp, path)  # atomic: a concurrent reader sees all or nothing
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
    except OSError:
        pass  # a read-only home: every process builds for itself, as without the cache
    return out
