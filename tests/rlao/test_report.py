"""`write_report`: tables and the PNG curve from a run directory's files alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from w4s_ray.errors import DataError
from w4s_ray.rlao.report import turn_table, write_report
from w4s_ray.rlao.trajectories import write_turn


def _row(eid, bench, turn, cand, acc, chosen=False, stopped=False, usd=0.01):
    return {
        "run_id": "r", "episode_id": eid, "benchmark": bench, "turn": turn, "candidate": cand,
        "prompt_messages": "[]", "action": "a", "code": "c" if acc is not None else None,
        "valid": acc is not None, "error": None if acc is not None else "no code: x",
        "val_accuracy": acc, "reward": 0.5, "chosen": chosen, "repair_count": 0,
        "eval_calls": 10, "prompt_tokens": 1, "completion_tokens": 1, "cost_usd": usd,
        "meta_agent": "m", "executor": "e", "seed": 1, "racing_stopped": stopped,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC), "feedback": None,
    }


def _collect_dir(tmp_path):
    d = tmp_path / "col"
    (d / "seeds").mkdir(parents=True)
    (d / "config.yaml").write_text("name: r\n")
    for bench, seed_acc in (("gsm8k", 0.5), ("svamp", 0.6)):
        (d / "seeds" / f"{bench}.json").write_text(json.dumps(
            [{"name": "cot", "code": "x", "val_accuracy": seed_acc, "feedback": "", "cost_usd": 0.1}]))
    write_turn(d / "trajectories", "gsm8k-e00", 0,
               [_row("gsm8k-e00", "gsm8k", 0, 0, 0.7, True), _row("gsm8k-e00", "gsm8k", 0, 1, None)])
    write_turn(d / "trajectories", "gsm8k-e00", 1,
               [_row("gsm8k-e00", "gsm8k", 1, 0, 0.6, True),
                _row("gsm8k-e00", "gsm8k", 1, 1, 0.9, stopped=True)])
    write_turn(d / "trajectories", "svamp-e00", 0,
               [_row("svamp-e00", "svamp", 0, 0, None), _row("svamp-e00", "svamp", 0, 1, None)])
    return d


def test_turn_table_best_so_far_ignores_partial_raced_means(tmp_path):
    d = _collect_dir(tmp_path)
    from w4s_ray.rlao.trajectories import read_rows

    seeds = {b: json.loads((d / "seeds" / f"{b}.json").read_text()) for b in ("gsm8k", "svamp")}
    table = turn_table(read_rows(d / "trajectories"), seeds, {})
    by = {(t["episode_id"], t["turn"]): t for t in table}
    assert by[("gsm8k-e00", 0)]["best_so_far"] == 0.7
    assert by[("gsm8k-e00", 1)]["best_val_accuracy"] == 0.6  # the stopped 0.9 is a partial mean
    assert by[("gsm8k-e00", 1)]["best_so_far"] == 0.7
    assert by[("gsm8k-e00", 1)]["cum_usd"] == pytest.approx(0.1 + 0.04)
    assert by[("svamp-e00", 0)]["best_val_accuracy"] is None
    assert by[("svamp-e00", 0)]["best_so_far"] == 0.6


def test_collect_report_has_episode_and_turn_tables_and_png(tmp_path):
    d = _collect_dir(tmp_path)
    report = write_report(d).read_text()
    assert "## Episodes" in report and "| gsm8k-e00 | 2 | 4 | 3 | 0 |" in report
    assert "| svamp-e00 | 0 | 0/2 | 0 | 0 | n/a | n/a |" in report  # no code: 0 distinct
    assert "Protocol: w4s-ray (run predates rlao.protocol)" in report
    assert "test accuracy" not in report  # no final.json: no test section
    assert "Scoring: lenient (run predates eval.scoring)" in report  # config.yaml has no key
    (d / "config.yaml").write_text("name: r\neval:\n  scoring: official\n")
    assert "Scoring: official" in write_report(d).read_text()
    (d / "config.yaml").write_text("name: r\n")
    png = (d / "curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert write_report(d).read_text() == report  # idempotent


def test_not_a_run_dir(tmp_path):
    with pytest.raises(DataError, match="not a w4s run directory"):
        write_report(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        write_report(tmp_path / "missing")
