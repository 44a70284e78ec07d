"""The one deny-list: an in-process guard (`sys.addaudithook`) installed before untrusted code
loads, in every child that runs it (the workflow child, `execute_code`, the judge's runner).

Defense in depth only. Audit hooks cannot be removed from Python code, but they are not a
security boundary (PEP 578 says so): native code (a C extension, a ctypes call that slipped
through) does not raise audit events, and determined Python code can sometimes reach objects
the hook relies on. The boundaries that hold are the process (no secrets, gold answers or
scorer inside it), rlimits, the namespaces of the isolation backend (`isolation.py`), and
scoring in the parent. This hook makes the common escapes fail loudly with a PermissionError:

- `open`: writing anywhere but the sandbox temp dir (and /dev/null); reading anywhere but the
  Python installation, site-packages, the w4s_ray package and the temp dir. Paths are resolved
  with realpath; creating symlinks/hard links is refused, so a link cannot smuggle a path in.
- opening a directory outside the temp dir (its fd could anchor `dir_fd=` writes) and
  `os.chdir`; importing readline, sqlite3 and dbm (they open files without an audit event);
- sockets, subprocesses, os.system/exec*/spawn*/fork/posix_spawn, kill/killpg, ctypes,
  gc object walks, resource.setrlimit (root could raise its own limits), re-importing
  `_posixsubprocess` (its `fork_exec` forks without an audit event; `disarm_fork_exec` removes
  it), filesystem changes outside the temp dir.
"""

from __future__ import annotations

import os
import sys

_DENY = frozenset({
    "socket.__new__", "socket.bind", "socket.connect", "socket.getaddrinfo",
    "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo", "socket.sendto",
    "socket.sendmsg", "socket.sethostname", "subprocess.Popen", "os.system", "os.exec",
    "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill", "os.killpg",
    "signal.pthread_kill", "os.symlink", "os.link", "pty.spawn", "gc.get_objects",
    "gc.get_referrers", "gc.get_referents", "resource.setrlimit", "resource.prlimit",
    "sys._current_frames", "os.chroot", "os.setuid", "webbrowser.open", "os.startfile",
    "syslog.openlog", "fcntl.ioctl", "sys.addaudithook",
})
# The runtime imports `_posixsubprocess` first and removes its `fork_exec` (which forks without
# an audit event); a fresh import would bring it back, so importing it again is refused.
# readline (read/write_history_file), sqlite3 (connect, ATTACH DATABASE) and dbm open files in
# C without an `open` event: they would read and write any path (found by tests/reliability).
# Sub-interpreters would start without this hook.
_DENY_IMPORTS = frozenset({"_posixsubprocess", "readline", "sqlite3", "_sqlite3", "_dbm",
                           "_gdbm", "_xxsubinterpreters", "_xxinterpchannels"})
# Filesystem changes: allowed only under the temp dir (first argument is the path).
_FS_CHANGE = frozenset({
    "os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate", "os.utime",
    "os.chflags", "os.lchflags", "os.setxattr", "os.removexattr", "shutil.rmtree",
    "shutil.copyfile", "shutil.copymode", "shutil.copystat", "shutil.copytree",
    "shutil.move", "shutil.chown", "shutil.make_archive", "shutil.unpack_archive",
})
_FS_RENAME = frozenset({"os.rename"})
_FS_LIST = frozenset({"os.listdir", "os.scandir", "glob.glob", "glob.glob/2"})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _norm(path: object) -> str | None:
    if isinstance(path, int):
        return None
    try:
        raw = os.fsdecode(os.fspath(path))  # type: ignore[arg-type]
    except TypeError:
        return None
    return os.path.realpath(raw)


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def disarm_fork_exec() -> None:
    """Replace `_posixsubprocess.fork_exec`, the one fork+exec path that raises no audit event.
    `subprocess`/`asyncio` stay importable; spawning a process fails with PermissionError."""
    import _posixsubprocess
    import subprocess  # noqa: F401  (imported now so later imports need no fresh _posixsubprocess)

    def fork_exec(*_a: object, **_k: object) -> None:
        raise PermissionError("sandbox: starting a process is not allowed")

    _posixsubprocess.fork_exec = fork_exec  # type: ignore[attr-defined]


def install(tmp_dir: str, extra_read_roots: tuple[str, ...] = (), allow_call: int = 0) -> None:
    """Install the guard. `allow_call` is the one ctypes function pointer the runtime itself
    still calls (PyThreadState_SetAsyncExc, to interrupt a timed-out item's thread)."""
    import site

    def roots(paths: list[str]) -> tuple[str, ...]:
        out = {os.path.realpath(p) for p in paths if p}
        return tuple(sorted(out))

    pkg_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    write_roots = roots([tmp_dir, "/dev/null"])
    read_roots = roots([
        tmp_dir, "/dev/null", "/dev/urandom", "/dev/zero", sys.prefix, sys.base_prefix,
        sys.exec_prefix, sys.base_exec_prefix, pkg_dir, *site.getsitepackages(),
        "/usr/share/zoneinfo", "/etc/localtime", "/usr/lib/locale", *extra_read_roots,
    ])
    # mkfifo/mknod raise no audit event; removing them is a speed bump only (a fresh `posix`
    # module object brings them back), documented in docs/RELIABILITY.md.
    for mod in (os, sys.modules.get("posix")):
        for name in ("mkfifo", "mknod"):
            if mod is not None and hasattr(mod, name):
                delattr(mod, name)
    deny, deny_imports, fs_change, fs_list = _DENY, _DENY_IMPORTS, _FS_CHANGE, _FS_LIST
    fs_rename = _FS_RENAME
    write_flags = _WRITE_FLAGS

    def refuse(event: str, what: object = "") -> None:
        raise PermissionError(f"sandbox: {event} {what}".rstrip() + " is not allowed")

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            p = _norm(path)
            if p is None:
                refuse("open", f"of fd/{type(path).__name__}")
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and bool(flags & write_flags))
            if writing:
                if not _under(p, write_roots):
                    refuse("writing", p)
            elif not _under(p, read_roots):
                refuse("reading", p)
            # A directory fd outside the temp dir would let `open(name, dir_fd=fd)` write there:
            # the event carries the relative name only (found by tests/reliability).
            if not _under(p, write_roots) and os.path.isdir(p):
                refuse("opening directory", p)
        elif event in deny or event.startswith("ctypes."):
            if event == "ctypes.call_function" and allow_call and args and args[0] == allow_call:
                return
            refuse(event)
        elif event == "os.chdir":
            # Relative paths are checked against the cwd; it must stay the temp dir's root so
            # that a directory fd inside it cannot resolve a name to a path outside.
            refuse("os.chdir")
        elif event == "import":
            name = args[0] if args else ""
            where = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
            base = os.path.basename(where).split(".")[0]
            if (isinstance(name, str) and any(n in deny_imports for n in name.split("."))) \
                    or base in deny_imports:
                refuse("import of", name)
        elif event in fs_change or event in fs_rename:
            for a in (args[:2] if event in fs_rename else args[:1]):
                p = _norm(a)
                if p is None or not _under(p, write_roots):
                    refuse(event, p if p else "")
        elif event in fs_list:
            p = _norm(args[0] if args and args[0] is not None else ".")
            if p is None or not _under(p, read_roots):
                refuse(event, p if p else "")

    sys.addaudithook(hook)
