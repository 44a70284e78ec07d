"""Shared checks for the reliability suite: the real CLI in a subprocess, one-line errors,
run-dir fingerprints, a scan for files a reader could mistake for complete ones, kill -9 at a
random point, and a bytes-level search for a secret in everything a run wrote."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Trajectory columns that must be equal between a faulty/resumed run and a clean one.
# Excluded, with the reason (docs/RELIABILITY.md): created_at (wall clock); cost_usd and
# prompt/completion tokens are what the executor actually billed, so they shrink when a
# resumed turn replays calls from the completion cache; cached_usd (what those cache hits
# would have cost) grows by the same amount.
VOLATILE = ("created_at",)
BILLING = ("cost_usd", "prompt_tokens", "completion_tokens", "cached_usd")


def w4s(args: list[str], *, env: dict | None = None, timeout: float = 900,
        cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "w4s_ray", *args], capture_output=True,
                          text=True, timeout=timeout, env=full_env, cwd=cwd or REPO)


def sets(**kv) -> list[str]:
    out: list[str] = []
    for k, v in kv.items():
        out += ["--set", f"{k.replace('__', '.')}={v}"]
    return out


def one_error_line(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    """The process failed with `code` and printed exactly one non-empty stderr line, w4s: error:."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == code, (proc.returncode, proc.stderr[-3000:])
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("w4s: error: "), lines[0]
    return lines[0]


def tree_digest(root: str | Path) -> dict[str, str]:
    """relative path -> sha256 of every file under root (symlinks by target text)."""
    root = Path(root)
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(root))] = "->" + os.readlink(p)
        elif p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def partial_files(root: str | Path) -> list[str]:
    """Files a reader could take for complete but are not: visible temp names, Parquet that
    does not open, JSON/JSONL that does not parse. Hidden `.name.tmp` leftovers of a killed
    write-then-rename are fine (every reader skips hidden files) and are not reported."""
    import pyarrow.parquet as pq

    bad = []
    for p in Path(root).rglob("*"):
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(root).parts):
            continue
        name = p.name
        if name.endswith((".tmp", ".partial", ".part")) or "~" in name:
            bad.append(f"temp name: {p}")
        elif name.endswith(".parquet"):
            try:
                pq.read_table(p)
            except Exception as exc:  # noqa: BLE001 - any failure to read is the finding
                bad.append(f"unreadable parquet: {p}: {exc}")
        elif name.endswith(".json"):
            try:
                json.loads(p.read_text(encoding="utf-8"))
            except Exception as exc:  # noqa: BLE001
                bad.append(f"truncated json: {p}: {exc}")
        elif name.endswith(".jsonl"):
            for k, line in enumerate(p.read_text(encoding="utf-8").splitlines()):
                try:
                    json.loads(line)
                except Exception:  # noqa: BLE001
                    bad.append(f"truncated jsonl line {k}: {p}")
                    break
    return bad


def resume_flag(run: Path, *, sweep: bool = False) -> list[str]:
    """`--resume` when the killed run left a run to resume, else nothing: a kill before the
    run directory held anything (during start-up) leaves nothing to resume, and `--resume`
    there is an error since issue #14 (a mistyped directory must not start a fresh run)."""
    if sweep:
        has = (run / "sweep.json").exists() or any(
            (d / "config.yaml").exists() for d in run.glob("*") if d.is_dir())
    else:
        has = (run / "config.yaml").exists() or any(run.glob("trajectories/part-*.parquet"))
    return ["--resume"] if has else []


def strip(rows: list[dict], drop: tuple[str, ...] = VOLATILE) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in drop} for r in rows]


def kill9_when(cmd: list[str], ready: Callable[[], bool], *, delay_max: float,
               rng: random.Random, timeout: float = 600, env: dict | None = None) -> bool:
    """Start `python -m w4s_ray cmd`, wait until `ready()`, sleep a random delay, SIGKILL the
    driver (and then its process group: the Ray it started cannot clean up after it).
    Returns whether the driver was still running when killed."""
    proc = subprocess.Popen([sys.executable, "-m", "w4s_ray", *cmd], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, cwd=REPO,
                            env=dict(os.environ, **(env or {})))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None and not ready():
            time.sleep(0.2)
        time.sleep(rng.uniform(0.0, delay_max))
        was_running = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(1.0)  # let the killed group's processes go before the resume starts
    return was_running


def find_bytes(root: str | Path, needle: bytes) -> list[str]:
    """Every file under root whose bytes contain needle (also its hex and base64 forms would
    be a leak, but a plain copy is what logs, Parquet and JSON would hold)."""
    hits = []
    for p in Path(root).rglob("*"):
        try:
            if p.is_file() and not p.is_symlink() and needle in p.read_bytes():
                hits.append(str(p))
        except OSError:
            continue
    return hits
