"""Isolation backends: how a child command is wrapped before it is started.

- `ProcessIsolation` ("process"): the command as is; the pre-exec hook of `process.py` adds a
  network and a mount namespace where the kernel allows it (tmpfs over the data dir, the
  completion cache and /proc). Available everywhere; the namespaces need root or user
  namespaces (`isolation_status()` says which).
- `BwrapIsolation` ("bwrap"): the command runs under bubblewrap (Debian package `bubblewrap`)
  in fresh user/pid/net/ipc/uts namespaces, with a filesystem built from scratch: the Python
  installation, site-packages, the `w4s_ray` package and the system directories read-only, a
  private /tmp holding only the child's own read-write temp dir, a fresh /proc (its own pid
  namespace: no other process is visible) and a minimal /dev. The data dir, the completion
  cache, keys in the home directory and other evaluations' temp dirs are simply absent. It
  dies with its parent. `bwrap_status()` probes once whether bubblewrap runs here (it needs
  user namespaces or root).

`select_isolation("auto")` picks bwrap when the probe succeeds, else the process backend. The
audit hook (`audit.py`), rlimits and the empty environment apply under both.
"""

from __future__ import annotations

import functools
import os
import shutil
import site
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from w4s_ray.errors import ConfigError
from w4s_ray.sandbox.process import child_program, isolation_status

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the w4s_ray package
SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc")


class ProcessIsolation:
    name = "process"

    def command(self, argv: list[str], *, workdir: str,
                hide: tuple[bytes, ...] = ()) -> list[str]:
        return list(argv)

    def namespaces(self) -> bool:
        """Whether the pre-exec hook should add its namespaces (probed once)."""
        return bool(isolation_status()["namespaces"])

    def exit_status(self, rc: int | None) -> int | None:
        """The child's exit status as Popen reports it (negative: killed by that signal)."""
        return rc

    def status(self) -> dict[str, Any]:
        st = isolation_status()
        return {"backend": self.name, "namespaces": st["namespaces"], "reason": st["reason"]}


def read_roots() -> list[str]:
    """Directories a child needs to read: Python, site-packages, w4s_ray, system dirs.
    Nested ones are dropped (their parent is bound already)."""
    cands = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             *site.getsitepackages(), str(PACKAGE_DIR), *SYSTEM_DIRS]
    real = sorted({os.path.realpath(p) for p in cands if p and os.path.isdir(p)})
    out: list[str] = []
    for p in real:
        if not any(p == q or p.startswith(q.rstrip("/") + "/") for q in out):
            out.append(p)
    # A symlinked system dir (/lib -> usr/lib on merged-/usr systems) is bound at its own name.
    for d in SYSTEM_DIRS:
        if os.path.islink(d) and os.path.isdir(d) and d not in out:
            out.append(d)
    return out


def bwrap_command(argv: list[str], *, workdir: str, hide: tuple[bytes, ...] = (),
                  bwrap: str = "bwrap", roots: list[str] | None = None,
                  as_root: bool | None = None) -> list[str]:
    """The bubblewrap command line that runs `argv` with `workdir` as its only writable place."""
    roots = read_roots() if roots is None else roots
    as_root = (os.geteuid() == 0) if as_root is None else as_root
    cmd = [bwrap, "--die-with-parent", "--unshare-all"]
    if as_root:
        cmd += ["--cap-drop", "ALL"]  # root inside must not keep capabilities
    for r in roots:
        if os.path.islink(r):
            cmd += ["--symlink", os.readlink(r), r]
        else:
            cmd += ["--ro-bind", r, r]
    cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    work = os.path.realpath(workdir)
    cmd += ["--bind", work, work]
    # Paths to hide that a read-only root would still show (e.g. a data dir inside the repo).
    for h in hide:
        p = os.fsdecode(h)
        if p != "/proc" and any(p == r or p.startswith(r.rstrip("/") + "/") for r in roots):
            cmd += ["--tmpfs", p]
    cmd += ["--chdir", work, "--", *argv]
    return cmd


@functools.lru_cache(maxsize=1)
def bwrap_status() -> dict[str, Any]:
    """Probe once: {"available": bool, "reason": str, "path": str | None}."""
    path = shutil.which("bwrap")
    if path is None:
        return {"available": False, "reason": "bubblewrap (bwrap) is not installed", "path": None}
    work = tempfile.mkdtemp(prefix="w4s-probe-")
    try:
        probe = ("import os, w4s_ray.sandbox.audit; "
                 "assert os.getcwd() == os.path.realpath(os.environ['W4S_PROBE']); "
                 "assert not os.path.exists(os.path.expanduser('~root/.cache/w4s/x'))")
        cmd = bwrap_command([sys.executable, "-I", "-B", "-c", probe], workdir=work, bwrap=path)
        res = subprocess.run(cmd, capture_output=True, timeout=30, cwd=work,
                             env={"PATH": "/usr/bin:/bin", "W4S_PROBE": work})
        if res.returncode != 0:
            err = res.stderr.decode("utf-8", "replace").strip().splitlines()
            return {"available": False, "path": path,
                    "reason": f"bwrap does not run here: {err[-1] if err else res.returncode}"}
        return {"available": True, "path": path, "reason": "bubblewrap namespaces"}
    except (OSError, subprocess.SubprocessError) as exc:
        return {"available": False, "path": path, "reason": f"bwrap probe failed: {exc}"}
    finally:
        shutil.rmtree(work, ignore_errors=True)


class BwrapIsolation:
    name = "bwrap"

    def __init__(self) -> None:
        st = bwrap_status()
        if not st["available"]:
            raise ConfigError(f"sandbox.backend=bwrap: {st['reason']}")
        self.path = st["path"]

    def command(self, argv: list[str], *, workdir: str,
                hide: tuple[bytes, ...] = ()) -> list[str]:
        return bwrap_command(argv, workdir=workdir, hide=hide, bwrap=self.path)

    def namespaces(self) -> bool:
        return False  # bubblewrap makes its own

    def exit_status(self, rc: int | None) -> int | None:
        # bwrap exits with 128 + N when its child is killed by signal N.
        if rc is not None and 128 < rc <= 128 + 64:
            return -(rc - 128)
        return rc

    def status(self) -> dict[str, Any]:
        return {"backend": self.name, "namespaces": True, "reason": bwrap_status()["reason"]}


ISOLATIONS = {"process": ProcessIsolation, "bwrap": BwrapIsolation}


def select_isolation(backend: str = "auto") -> ProcessIsolation | BwrapIsolation:
    """The isolation backend for `sandbox.backend` ("auto": bwrap where it runs, else process)."""
    if backend == "auto":
        backend = "bwrap" if bwrap_status()["available"] else "process"
    if backend not in ISOLATIONS:
        raise ConfigError(f"sandbox.backend {backend!r}: expected one of auto, "
                          f"{', '.join(ISOLATIONS)}")
    return ISOLATIONS[backend]()


__all__ = ["BwrapIsolation", "ProcessIsolation", "bwrap_command", "bwrap_status",
           "child_program", "select_isolation"]
