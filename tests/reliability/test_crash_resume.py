"""`kill -9` of the driver at random points, then `--resume`: the final outputs equal an
uninterrupted run, and no file a reader could take for complete is left half-written.

optimize and collect are killed twice (two random points: after 0..k committed turns plus a
random delay), resumed after each kill and finally run to the end; sweep and train are killed
once. The reference is an uninterrupted run with the same seeds and the same completion cache,
which the killed run then shares: a turn re-run after a kill replays the reference's samples
from the cache, as a user's resume does. Rows are compared on every column except created_at
and the billing columns (cost_usd, prompt/completion tokens: the resumed run's cached calls are
free; see docs/RELIABILITY.md), except for optimize, whose reference is itself all cache hits
(a warm-up run fills the cache first), so billing is compared too.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.reliability.helpers import (
    BILLING,
    VOLATILE,
    kill9_when,
    partial_files,
    resume_flag,
    strip,
    w4s,
)
from w4s_ray.rlao.trajectories import read_rows

COMPARE_DROP = VOLATILE + BILLING

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3000)]


@pytest.fixture(scope="module")
def crash_sim(data_dir):
    from w4s_ray.config import SimConfig
    from w4s_ray.executor.sim.launch import start_sim

    # a little latency, so a kill can land inside an evaluation and not only between turns
    handle = start_sim(SimConfig(latency="fixed", latency_ms=20), data_dir, port=0)
    yield handle
    handle.stop()


def _sets(url: str, cache: Path, **over) -> list[str]:
    kv = {"executor.api_base": url, "executor.cache.path": str(cache),
          "meta_agent.backend": "scripted", "meta_agent.model": "seed-variants",
          "eval.limit": 6, "eval.num_evaluators": 1, "rlao.candidates": 2, "rlao.turns": 4,
          "rlao.test_limit": 6, **over}
    out: list[str] = []
    for k, v in kv.items():
        out += ["--set", f"{k}={v}"]
    return out


def _parts(d: Path) -> int:
    return len(list(d.rglob("trajectories/part-*.parquet"))) if d.exists() else 0


def _kill_resume_cycles(cmd: list[str], run: Path, kills: int,
                        max_turns: int, rng: random.Random) -> list[tuple[bool, int]]:
    log = []
    for _ in range(kills):
        want = _parts(run) + rng.randint(0, max(0, max_turns - 1))
        was_running = kill9_when([*cmd, *resume_flag(run)],
                                 lambda w=want: _parts(run) >= w, delay_max=3.0, rng=rng)
        log.append((was_running, _parts(run)))
        assert partial_files(run) == [], (log, partial_files(run))
    return log


def test_optimize_killed_twice_then_resumed_equals_uninterrupted(crash_sim, tmp_path):
    """Billing columns are compared too: a first run warms the cache, so the reference is all
    cache hits, as the killed run's replayed turns are (a resume must not bill twice nor lose
    what it paid; per-call dollars are summed with math.fsum, so the order calls finish in does
    not change the last bit)."""
    import pandas as pd

    sets = _sets(crash_sim.url, tmp_path / "cache.sqlite")
    base = ["optimize", "-b", "gsm8k", "--no-progress"]
    for name in ("warm", "ref"):
        proc = w4s([*base, "--run-dir", str(tmp_path / name), *sets])
        assert proc.returncode == 0, proc.stderr[-3000:]
    ref = strip(read_rows(tmp_path / "ref" / "trajectories"), VOLATILE)
    run = tmp_path / "killed"
    cmd = [*base, "--run-dir", str(run), *sets]
    log = _kill_resume_cycles(cmd, run, kills=2, max_turns=2, rng=random.Random())
    proc = w4s([*cmd, *resume_flag(run)])
    assert proc.returncode == 0, (log, proc.stderr[-3000:])
    assert strip(read_rows(run / "trajectories"), VOLATILE) == ref, log
    # a write cut by a kill leaves at most a hidden temp file, which readers skip
    assert len(pd.read_parquet(run / "trajectories")) == len(ref)
    a, b = (json.loads((d / "final.json").read_text()) for d in (tmp_path / "ref", run))
    for key in ("best", "valid_accuracy", "test_accuracy", "turns", "seed_baselines"):
        assert a[key] == b[key], key
    assert (run / "final_workflow.py").read_text() == (tmp_path / "ref" / "final_workflow.py"
                                                       ).read_text()
    assert partial_files(run) == []


def test_collect_killed_twice_then_resumed_equals_uninterrupted(crash_sim, tmp_path):
    sets = _sets(crash_sim.url, tmp_path / "cache.sqlite", **{"rlao.turns": 3})
    base = ["collect", "--benchmarks", "gsm8k,svamp", "--episodes", "1", "--no-progress"]
    proc = w4s([*base, "--out", str(tmp_path / "ref"), *sets])
    assert proc.returncode == 0, proc.stderr[-3000:]
    ref = strip(read_rows(tmp_path / "ref" / "trajectories"), COMPARE_DROP)
    assert len(ref) == 2 * 3 * 2
    run = tmp_path / "killed"
    cmd = [*base, "--out", str(run), *sets]
    log = _kill_resume_cycles(cmd, run, kills=2, max_turns=4, rng=random.Random())
    proc = w4s([*cmd, *resume_flag(run)])
    assert proc.returncode == 0, (log, proc.stderr[-3000:])
    assert strip(read_rows(run / "trajectories"), COMPARE_DROP) == ref, log
    assert partial_files(run) == []


def test_sweep_killed_then_resumed_equals_uninterrupted(crash_sim, tmp_path):
    sets = _sets(crash_sim.url, tmp_path / "cache.sqlite", **{"rlao.turns": 2})
    benches = ["gsm8k", "svamp"]

    def cmd(d):
        return ["sweep", "--benchmarks", ",".join(benches), "--no-progress", *sets,
                "--set", f"run_dir={d}"]

    proc = w4s(cmd(tmp_path / "ref"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "killed"
    rng = random.Random()
    want = rng.randint(0, 3)
    was_running = kill9_when(cmd(run), lambda: _parts(run) >= want, delay_max=3.0, rng=rng)
    assert partial_files(run) == []
    proc = w4s([*cmd(run), *resume_flag(run, sweep=True)])
    logs = {b: (run / b / "error.log").read_text()[-2000:] for b in benches
            if (run / b / "error.log").exists()}
    assert proc.returncode == 0, (was_running, want, proc.stderr[-3000:], logs)
    for b in benches:
        assert strip(read_rows(run / b / "trajectories"), COMPARE_DROP) == \
            strip(read_rows(tmp_path / "ref" / b / "trajectories"), COMPARE_DROP), \
            (b, was_running, want)
        fa, fb = (json.loads((d / b / "final.json").read_text()) for d in (tmp_path / "ref", run))
        for key in ("best", "valid_accuracy", "test_accuracy"):
            assert fa[key] == fb[key], (b, key)
    assert (run / "sweep_report.md").exists()
    assert partial_files(run) == []


def test_sweep_resume_after_kill_between_final_and_status(crash_sim, tmp_path):
    """A kill after a benchmark's final.json but before sweep.json says 'done': on --resume the
    benchmark is complete on disk, so it is done (it used to print 'FAILED: None', exit 1)."""
    run = tmp_path / "sweep"
    cmd = ["sweep", "--benchmarks", "gsm8k", "--no-progress",
           *_sets(crash_sim.url, tmp_path / "cache.sqlite", **{"rlao.turns": 1}),
           "--set", f"run_dir={run}"]
    proc = w4s(cmd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    status = json.loads((run / "sweep.json").read_text())
    status["benchmarks"]["gsm8k"]["status"] = "running"  # what a kill at that moment leaves
    (run / "sweep.json").write_text(json.dumps(status))
    proc = w4s([*cmd, "--resume"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((run / "sweep.json").read_text())["benchmarks"]["gsm8k"]["status"] == "done"


def test_train_killed_then_resumed_has_the_same_steps_and_losses(tmp_path, tiny_model_dir):
    import shutil
    import tempfile

    from tests.train.synth import make_rows, write_trajectories

    ray_tmp = Path(tempfile.mkdtemp(prefix="w4st-", dir="/tmp"))  # AF_UNIX paths: <= 107 bytes

    data = write_trajectories(tmp_path / "traj" / "part-0.parquet", make_rows(n_episodes=4))

    def cmd(out):
        return ["train", "--data", str(data), "--base-model", str(tiny_model_dir), "--out",
                str(out), "--set", "train.strategy=ddp", "--set", "train.checkpoint_every=1",
                "--set", "train.epochs=4", "--set", "train.batch_size=4", "--set",
                "train.lr=3e-3", "--set", f"ray.temp_dir={ray_tmp}"]

    try:
        ref = w4s(cmd(tmp_path / "ref"))
        assert ref.returncode == 0, ref.stderr[-3000:]
        run = tmp_path / "killed"
        rng = random.Random()
        was_running = kill9_when(cmd(run), lambda: any((run / "ray").rglob("checkpoint_*")),
                                 delay_max=5.0, rng=rng, timeout=900)
        proc = w4s([*cmd(run), "--resume"])
        assert proc.returncode == 0, (was_running, proc.stderr[-3000:])
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)

    def history(d):
        return [json.loads(x) for x in (d / "train_log.jsonl").read_text().splitlines()]

    ha, hb = history(tmp_path / "ref"), history(run)
    info = (was_running, [ln for ln in (ref.stdout + ref.stderr).splitlines()
                          if ln.startswith(("[train]", "trained"))],
            [ln for ln in (proc.stdout + proc.stderr).splitlines() if "[train]" in ln or
             ln.startswith("trained")])
    assert [h["step"] for h in hb] == [h["step"] for h in ha], info
    for x, y in zip(ha, hb, strict=True):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-4, abs=1e-6), (x, y, info)
    assert (run / "model" / "config.json").exists()
    assert partial_files(run / "model") == []
