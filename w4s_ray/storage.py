"""Run directories on shared storage: `s3://`, `gs://`, `hdfs://`, `file://` or a mounted path
(no Ray).

A run directory (`run_dir`, `--run-dir`, `--out`, `train.out_dir`) may be a URI that pyarrow's
filesystems understand. A plain path or a `file://` URI is used as is (an NFS or PVC mount is a
plain path: nothing to sync). Any other URI is *staged*: the stage runs in a local staging
directory (`storage.staging_dir`) that is first filled from the URI (so `--resume` and the
"already holds a run" checks see what is stored there), and whose files are copied to the URI
after each completed turn (where the stage offers the hook), every `storage.sync_interval_s`
seconds, and once more when the stage ends, whatever way it ends.

A URI that cannot be used (unknown scheme, missing bucket, no or read-only credentials) is one
`ConfigError` before anything starts: `open_remote` writes and deletes a probe object. A write
that fails mid-run loses nothing: the staging directory keeps every file, the periodic sync
retries, and the stage's end says where the local copy is (a `StorageError`, exit 4, when the
stage itself succeeded; a warning line when it failed for another reason, whose error stays the
one reported).

Not here: deleting remote files (a sync only adds and replaces; starting over in a URI that
holds a run is refused like on a local path), and Ray Train checkpoints (`w4s train` hands the
URI to Ray Train's own `storage_path`, see `runtime.train_job`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from w4s_ray.errors import ConfigError, W4SError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
PROBE = ".w4s-write-probe"


class StorageError(W4SError):
    """Results could not be written to the run's URI; they are complete in the local copy."""

    exit_code = 4


def scheme(location: str | Path) -> str | None:
    """The URI scheme of `location` ("s3", "file", ...), None for a plain path."""
    m = _SCHEME.match(str(location))
    return m.group(1).lower() if m else None


def is_remote(location: str | Path | None) -> bool:
    """A URI that needs staging (anything but a plain path or `file://`)."""
    return location is not None and scheme(location) not in (None, "file")


def local_path(location: str | Path) -> Path:
    """A plain path or a `file://` URI as a local path (`~` expanded)."""
    s = str(location)
    if scheme(s) == "file":
        parts = urlsplit(s)
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"{s}: a file:// URI names a local path (file:///abs/path), "
                              f"not host {parts.netloc!r}")
        return Path(unquote(parts.path))
    if scheme(s) is not None:
        raise ConfigError(f"{s}: not a local path")
    return Path(s).expanduser()


def join(location: str | Path, *parts: str) -> str:
    """`location`/parts/...: a path joined as a path, a URI before its ?query."""
    s = str(location)
    if scheme(s) is None:
        return str(Path(s, *parts))
    base, q, query = s.partition("?")
    base = base.rstrip("/") + "".join("/" + p.strip("/") for p in parts)
    return base + (q + query if q else "")


def display(location: str | Path) -> str:
    """A URI without its ?query (endpoint settings), for messages."""
    return str(location).partition("?")[0]


@dataclass
class Remote:
    """An opened URI: its pyarrow filesystem and the directory path inside it."""

    uri: str
    fs: object  # pyarrow.fs.FileSystem
    base: str


def open_remote(uri: str, what: str = "run_dir", *, write: bool = True,
                timeout_s: float = 60.0) -> Remote:
    """The filesystem of `uri`, checked by writing and deleting a probe object (`write`) or
    by finding a directory there; a URI that cannot be used is a one-line ConfigError naming
    `what`. A check that gets no answer within `timeout_s` (an unreachable endpoint, a
    credential lookup retrying offline) is such an error too."""
    box: dict = {}

    def check() -> None:
        try:
            box["remote"] = _open_remote(uri, what, write)
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    # A daemon thread: a filesystem client that retries for minutes must not hold the exit.
    t = threading.Thread(target=check, name="w4s-storage-check", daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        raise ConfigError(f"{what} {display(uri)}: no answer from the storage within "
                          f"{timeout_s:g} s (endpoint unreachable, or credentials looked up "
                          "offline; storage.check_timeout_s)")
    if "error" in box:
        raise box["error"]
    return box["remote"]


def _open_remote(uri: str, what: str, write: bool) -> Remote:
    import pyarrow.fs as pafs

    shown = display(uri)
    try:
        fs, base = pafs.FileSystem.from_uri(uri)
    except Exception as exc:  # ArrowInvalid (unknown scheme, bad query), OSError
        raise ConfigError(f"{what} {shown}: not a storage URI pyarrow can open "
                          f"({_first_line(exc)}); use a path, file://, s3://, gs:// or "
                          "hdfs://") from None
    base = base.rstrip("/")
    if not base or "/" not in base and scheme(uri) in ("s3", "gs", "gcs"):
        bucket = base or "BUCKET"
        raise ConfigError(f"{what} {shown}: give a directory inside the bucket "
                          f"({scheme(uri)}://{bucket}/runs/NAME), not the bucket itself")
    try:
        info = fs.get_file_info(base)
        if info.type == pafs.FileType.File:
            raise ConfigError(f"{what} {shown} exists and is not a directory")
        if not write:
            if info.type != pafs.FileType.Directory:
                raise ConfigError(f"{what} {shown}: no such directory")
            return Remote(uri, fs, base)
        probe = f"{base}/{PROBE}"
        with fs.open_output_stream(probe) as fh:
            fh.write(b"w4s")
        fs.delete_file(probe)
    except ConfigError:
        raise
    except Exception as exc:  # missing bucket, no/refused credentials, unreachable endpoint
        raise ConfigError(f"{what} {shown}: cannot write there ({_first_line(exc)}); check "
                          "the bucket and the credentials (e.g. AWS_* env vars)") from None
    return Remote(uri, fs, base)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@dataclass
class Mirror:
    """Copies between a remote directory and a local one. `push` uploads the local files that
    changed since they were last pulled or pushed (size, mtime); hidden files (atomic writes in
    progress, the probe) and `exclude`d top-level entries stay local."""

    remote: Remote
    local: Path
    exclude: tuple[str, ...] = ()
    _seen: dict[str, tuple[int, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _skip(self, rel: str) -> bool:
        parts = rel.split("/")
        return parts[0] in self.exclude or any(p.startswith(".") for p in parts)

    def pull(self) -> int:
        """Download every remote file into the local directory; returns how many."""
        import pyarrow.fs as pafs

        fs, base = self.remote.fs, self.remote.base
        try:
            infos = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True,
                                                       recursive=True))
        except Exception as exc:
            raise ConfigError(f"{display(self.remote.uri)}: cannot list it "
                              f"({_first_line(exc)})") from None
        n = 0
        for info in infos:
            if info.type != pafs.FileType.File:
                continue
            rel = info.path[len(base):].lstrip("/")
            if self._skip(rel):
                continue
            dest = self.local / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.pull.tmp")
            with fs.open_input_stream(info.path) as src, open(tmp, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            tmp.replace(dest)
            st = dest.stat()
            self._seen[rel] = (st.st_size, st.st_mtime_ns)
            n += 1
        return n

    def push(self) -> int:
        """Upload the changed local files and delete the remote copies of files removed
        locally; returns how many files changed. Raises what the filesystem raises (the caller
        decides whether that ends the stage)."""
        with self._lock:
            n = 0
            for path in sorted(self.local.rglob("*")):
                rel = path.relative_to(self.local).as_posix()
                if not path.is_file() or self._skip(rel):
                    continue
                try:
                    st = path.stat()
                    stamp = (st.st_size, st.st_mtime_ns)
                    if self._seen.get(rel) == stamp:
                        continue
                    src = open(path, "rb")  # noqa: SIM115 (closed below)
                except FileNotFoundError:
                    continue  # renamed away since the listing (a model publish): next push
                with src, self.remote.fs.open_output_stream(f"{self.remote.base}/{rel}") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
                self._seen[rel] = stamp
                n += 1
            # Files this mirror pulled or pushed that are gone locally (--fresh cleared the
            # run, a rename moved them): gone remotely too, or a later pull would bring stale
            # rows back into the run.
            for rel in [r for r in self._seen if not (self.local / r).is_file()]:
                try:
                    self.remote.fs.delete_file(f"{self.remote.base}/{rel}")
                except FileNotFoundError:
                    pass
                del self._seen[rel]
                n += 1
            return n


def staging_root(configured: str | None) -> Path:
    return Path(configured).expanduser() if configured else \
        Path.home() / ".cache" / "w4s-ray" / "staging"


def new_staging_dir(uri: str, configured: str | None) -> Path:
    """A fresh local directory for one stage run on `uri`: <root>/<uri, hash, time>/<the URI's
    last name> (reports name a run by its directory's name, so it stays the user's)."""
    shown = display(uri)
    name = shown.rstrip("/").rsplit("/", 1)[-1] or "run"
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", shown.split("://", 1)[-1]).strip("_")[-60:]
    digest = hashlib.sha256(uri.encode()).hexdigest()[:8]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = staging_root(configured)
    for i in range(1000):
        path = root / f"{slug}-{digest}-{stamp}{f'-{i}' if i else ''}"
        try:
            path.mkdir(parents=True)
            (path / name).mkdir()
            return path / name
        except FileExistsError:
            continue
    raise ConfigError(f"storage.staging_dir {root}: cannot create a staging directory")


class Stage:
    """The local directory a stage writes (`path`) and, for a remote URI, its mirror."""

    def __init__(self, location: str | Path, *, staging_dir: str | None = None,
                 sync_interval_s: float = 30.0, what: str = "run_dir",
                 exclude: tuple[str, ...] = (), check_timeout_s: float = 60.0) -> None:
        self.location = str(location)
        self.remote = is_remote(location)
        self.mirror: Mirror | None = None
        self.error: str | None = None  # the last failed sync's cause
        self.pushed = 0  # files copied to the URI so far
        self._interval = sync_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if not self.remote:
            self.path = local_path(location)
            return
        # A bad URI: one line, nothing created.
        remote = open_remote(self.location, what, timeout_s=check_timeout_s)
        self.path = new_staging_dir(self.location, staging_dir)
        self.mirror = Mirror(remote, self.path, exclude)
        _pull(self.mirror, what)

    @property
    def shown(self) -> str:
        return display(self.location) if self.remote else str(self.path)

    def sync(self) -> bool:
        """Copy what changed to the URI now (a durable point); False when it failed (the error
        is kept in `error`, warned once per cause, and the next sync retries)."""
        if self.mirror is None:
            return True
        try:
            self.pushed += self.mirror.push()
        except Exception as exc:
            cause = _first_line(exc)
            if cause != self.error:
                print(f"w4s: warning: could not write to {self.shown} ({cause}); the run "
                      f"continues and is kept in {self.path}", file=sys.stderr, flush=True)
            self.error = cause
            return False
        self.error = None
        return True

    def start(self) -> Stage:
        if self.mirror is not None and self._interval > 0:
            self._thread = threading.Thread(target=self._loop, name="w4s-storage-sync",
                                            daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.sync()

    def close(self, *, failed: bool) -> None:
        """Stop the periodic sync and copy the rest. A failed copy raises StorageError unless
        the stage already failed (its error stays the one reported; a warning says where the
        local copy is)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.mirror is None:
            return
        if self.sync():
            if failed and not self.pushed:  # refused before any work: the copy is redundant
                shutil.rmtree(self.path.parent, ignore_errors=True)
            elif not failed and os.environ.get("W4S_VERBOSITY") != "quiet":
                print(f"w4s: stored in {self.shown} (local copy: {self.path})",
                      file=sys.stderr, flush=True)
            return
        msg = (f"results not written to {self.shown} ({self.error}); they are complete in "
               f"{self.path}: copy that directory there, or pass it as the run directory")
        if failed:
            print(f"w4s: warning: {msg}", file=sys.stderr, flush=True)
        else:
            raise StorageError(msg)


def fetch(location: str | Path, storage_cfg=None, *, what: str) -> Path:
    """An input directory as a local path: a remote URI is downloaded into a new staging
    directory (read access is enough)."""
    if not is_remote(location):
        return local_path(location)
    remote = open_remote(str(location), what, write=False,
                         timeout_s=getattr(storage_cfg, "check_timeout_s", 60.0))
    path = new_staging_dir(str(location), getattr(storage_cfg, "staging_dir", None))
    _pull(Mirror(remote, path), what)
    return path


def _pull(mirror: Mirror, what: str) -> None:
    """Fill a new staging directory; a download that fails is one line and leaves nothing."""
    try:
        mirror.pull()
    except Exception as exc:
        shutil.rmtree(mirror.local.parent, ignore_errors=True)
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{what} {display(mirror.remote.uri)}: cannot read what is stored "
                          f"there ({_first_line(exc)})") from None


def require_local(location: str | Path, what: str) -> Path:
    """`location` as a local path; a remote URI is a one-line ConfigError (for the places that
    do not stage: `w4s demo`, `meta-agent init-tiny`, ...)."""
    if is_remote(location):
        raise ConfigError(f"{what} {display(location)}: this stage writes a local or mounted "
                          "path only (file:// works); run_dir URIs work for optimize, collect, "
                          "sweep, train, compare and report")
    return local_path(location)


@contextlib.contextmanager
def staged(location: str | Path, storage_cfg=None, *, what: str = "run_dir",
           exclude: tuple[str, ...] = ()) -> Iterator[Stage]:
    """A `Stage` for `location` (see the module doc), synced while the block runs and at its
    end. `storage_cfg`: the config's `storage` section (None: its defaults)."""
    staging_dir = getattr(storage_cfg, "staging_dir", None)
    interval = getattr(storage_cfg, "sync_interval_s", 30.0)
    stage = Stage(location, staging_dir=staging_dir, sync_interval_s=interval, what=what,
                  exclude=exclude,
                  check_timeout_s=getattr(storage_cfg, "check_timeout_s", 60.0)).start()
    try:
        yield stage
    except W4SError as exc:
        stage.close(failed=True)
        if stage.remote and exc.args and isinstance(exc.args[0], str):
            # The checks ran on the staging copy: name the place the user gave.
            exc.args = (exc.args[0].replace(str(stage.path), stage.shown), *exc.args[1:])
        raise
    except BaseException:
        stage.close(failed=True)
        raise
    stage.close(failed=False)
