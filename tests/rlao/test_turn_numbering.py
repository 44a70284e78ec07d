"""One turn numbering everywhere (issue #19): the seed workflows are turn 0 and the meta-agent's
turns 1..N, alike in the Parquet rows, metrics.jsonl, report.md and the curve; files written
under the old numbering (first meta-agent turn 0) read back renumbered."""

from __future__ import annotations

import json
import re

import matplotlib

matplotlib.use("Agg")

import pyarrow.parquet as pq  # noqa: E402

from tests.rlao.fakes import FakeEvaluator, reply, workflow  # noqa: E402
from w4s_ray.config import load_config  # noqa: E402
from w4s_ray.meta_agent.scripted import ScriptedMetaAgent  # noqa: E402
from w4s_ray.rlao.loop import TaskSpec  # noqa: E402
from w4s_ray.rlao.optimize import optimize  # noqa: E402
from w4s_ray.rlao.report import curve_figure, turn_table  # noqa: E402
from w4s_ray.rlao.runs import RunDir  # noqa: E402
from w4s_ray.rlao.trajectories import read_rows, to_table  # noqa: E402

SPEC = TaskSpec("gsm8k", "math", "Grade-school math.", "a number",
                {"CoT": workflow(0.4), "SC": workflow(0.5, calls=3)})
REPLIES = [reply(a) for a in (0.2, 0.55, 0.7, 0.9, 0.35, 0.6)]


def _run(tmp_path):
    cfg = load_config(None, ["rlao.candidates=2", "rlao.turns=3"])
    d = tmp_path / "run"
    final = optimize(cfg, SPEC, d, FakeEvaluator(), ScriptedMetaAgent(REPLIES), progress=False)
    return d, final


def test_parquet_metrics_report_and_plot_number_turns_alike(tmp_path):
    d, final = _run(tmp_path)
    rows = read_rows(d / "trajectories")
    parquet_turns = sorted({r["turn"] for r in rows})
    metrics_turns = [json.loads(x)["turn"] for x in (d / "metrics.jsonl").read_text().splitlines()]
    report = (d / "report.md").read_text()
    turns_section = report.split("## Turns", 1)[1]
    report_turns = [m.group(1) for m in re.finditer(r"^\| gsm8k-e00 \| ([^|]+?) \|",
                                                    turns_section, re.M)]
    assert parquet_turns == metrics_turns == [1, 2, 3]
    assert report_turns == ["0 (seeds)", "1", "2", "3"]
    # Workflow files and the chosen workflow's name follow the rows' numbers.
    for r in rows:
        if r["code"]:
            assert (d / "workflows" / f"turn_{r['turn']:02d}_cand_{r['candidate']}.py").exists()
    if final["best_turn"] is not None:
        chosen = next(r for r in rows if r["turn"] == final["best_turn"] and r["chosen"])
        assert final["best"] == f"turn {chosen['turn']} candidate {chosen['candidate']}"
    # The curve: x = 0 (the best seed) then the rows' turns; y at 0 is the best seed's accuracy.
    rd = RunDir(d)
    fig = curve_figure(turn_table(rd.read_rows(), rd.all_seeds(), with_seeds=True))
    best_line = fig.axes[0].get_lines()[0]
    assert list(best_line.get_xdata()) == [0, 1, 2, 3]
    assert best_line.get_ydata()[0] == max(s["val_accuracy"] for s in rd.load_seeds("gsm8k"))
    assert "seed" in fig.axes[0].get_xlabel()


def _old_style(tmp_path):
    """A run dir as the old numbering wrote it: first meta-agent turn 0, no numbering key."""
    d, _ = _run(tmp_path)
    for p in sorted((d / "trajectories").glob("*.parquet")):
        t = pq.read_table(p)
        rows = t.to_pylist()
        for r in rows:
            r["turn"] -= 1
        pq.write_table(to_table(rows).replace_schema_metadata({}), p)
    lines = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    (d / "metrics.jsonl").write_text("".join(json.dumps({**m, "turn": m["turn"] - 1}) + "\n"
                                             for m in lines))
    return d


def test_files_of_the_old_numbering_read_back_renumbered(tmp_path):
    d = _old_style(tmp_path)
    assert pq.read_table(next((d / "trajectories").glob("*.parquet"))).column("turn")[0] \
        .as_py() == 0  # the file really is old-style
    rd = RunDir(d)
    assert sorted({r["turn"] for r in rd.read_rows()}) == [1, 2, 3]
    assert [m["turn"] for m in rd.load_metrics()] == [1, 2, 3]
    assert set(rd.walls()) == {("gsm8k-e00", t) for t in (1, 2, 3)}


def test_resuming_an_old_numbered_run_continues_with_the_next_turn(tmp_path):
    d = _old_style(tmp_path)
    cfg = load_config(None, ["rlao.candidates=2", "rlao.turns=4"])
    agent = ScriptedMetaAgent(REPLIES + [reply(0.95), reply(0.1)])
    optimize(cfg, SPEC, d, FakeEvaluator(), agent, resume=True, progress=False)
    assert sorted({r["turn"] for r in read_rows(d / "trajectories")}) == [1, 2, 3, 4]
