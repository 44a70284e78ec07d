"""bench/run_all.py as a harness: discovery, per-script isolation, rows, atomic results.

Nothing here times anything: the bench scripts are fakes written into a temp dir.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str):
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


run_all = _load("run_all")
common = _load("common")

FAKES = {
    "bench_good.py": """
        def run(scale=1):
            return [
                {"name": "fast_ratio", "value": 0.9 * scale, "target": 1.1,
                 "unit": "ratio (lower is better)", "params": {"scale": scale}},
                {"name": "speedup", "value": 2.0, "target": 5.0,
                 "unit": "x (higher is better)", "params": {}},
                {"name": "info_only", "value": 42, "target": None, "unit": "MiB", "params": {}},
            ]
    """,
    "bench_boom.py": """
        def run():
            raise ValueError("simulator refused to start")
    """,
    "bench_badrows.py": """
        def run():
            return [{"name": "no_unit", "value": 1.0, "target": None, "params": {}}]
    """,
    "bench_norun.py": """
        X = 1
    """,
    "bench_exits.py": """
        import os
        def run():
            os._exit(9)
    """,
    "not_a_bench.py": """
        raise SystemExit("must not be imported")
    """,
}


@pytest.fixture
def fake_dir(tmp_path: Path) -> Path:
    d = tmp_path / "fakebench"
    d.mkdir()
    for name, src in FAKES.items():
        (d / name).write_text(textwrap.dedent(src))
    return d


def _by_module(entries):
    out = {}
    for e in entries:
        out.setdefault(e["module"], []).append(e)
    return out


def test_run_all_collects_rows_isolates_failures_and_writes_results(fake_dir, tmp_path):
    out = tmp_path / "res" / "results.json"
    result = run_all.run_all(fake_dir, out, budget={"bench_good": {"scale": 2}}, progress=False)

    on_disk = json.loads(out.read_text())
    assert on_disk["entries"] == json.loads(json.dumps(result["entries"]))
    for key in ("nproc", "ram_gib", "cpu_model", "python", "load_avg", "versions"):
        assert key in on_disk["machine"]
    assert on_disk["timestamp"]

    mods = _by_module(on_disk["entries"])
    assert set(mods) == {"bench_good", "bench_boom", "bench_badrows", "bench_norun",
                         "bench_exits"}  # not_a_bench.py is not discovered
    good = {e["name"]: e for e in mods["bench_good"]}
    assert set(good) == {"fast_ratio", "speedup", "info_only"}
    for e in on_disk["entries"]:
        for key in ("name", "value", "target", "unit", "params", "module", "measured_at"):
            assert key in e, (e, key)
    # the budget's kwargs reached run()
    assert good["fast_ratio"]["value"] == pytest.approx(1.8)
    assert good["fast_ratio"]["params"] == {"scale": 2}

    boom = mods["bench_boom"]
    assert len(boom) == 1 and boom[0]["value"] is None
    assert "ValueError: simulator refused to start" in boom[0]["error"]
    assert "missing key" in mods["bench_badrows"][0]["error"] and "unit" in \
        mods["bench_badrows"][0]["error"]
    assert "no run()" in mods["bench_norun"][0]["error"]
    assert "child died" in mods["bench_exits"][0]["error"]
    # one failing script did not stop the ones after it (alphabetical: good runs after boom)
    assert on_disk["modules"]["bench_good"]["error"] is None

    md = out.with_suffix(".md").read_text()
    assert "| fast_ratio | 1.8 | <= 1.1 | miss |" in md
    assert "| speedup | 2 | >= 5 | miss |" in md
    assert "| info_only | 42 | - | - |" in md
    assert (out.parent / "logs" / "bench_boom.log").exists()
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_only_selects_scripts_and_default_budget_is_not_used_for_unknown(fake_dir, tmp_path):
    out = tmp_path / "r.json"
    result = run_all.run_all(fake_dir, out, only=["good"], budget={}, progress=False)
    assert {e["module"] for e in result["entries"]} == {"bench_good"}
    assert {e["name"]: e["value"] for e in result["entries"]}["fast_ratio"] == pytest.approx(0.9)


def test_only_keeps_other_scripts_entries_and_regenerates_the_doc(fake_dir, tmp_path):
    """`--only good` re-measures bench_good, keeps bench_boom's old entry, and rewrites the
    doc's generated section (and only it) with every figure's target, value and limit."""
    out = tmp_path / "r.json"
    run_all.run_all(fake_dir, out, only=["good", "boom"], budget={}, progress=False)
    doc = tmp_path / "PERF.md"
    perf_doc = _load("perf_doc")
    doc.write_text(f"# Perf\n\nhand-written intro\n\n{perf_doc.BEGIN}\nstale\n{perf_doc.END}\n"
                   "\nhand-written tail\n")
    result = run_all.run_all(fake_dir, out, only=["good"], budget={"bench_good": {"scale": 2}},
                             progress=False, doc=doc)
    mods = _by_module(result["entries"])
    assert set(mods) == {"bench_good", "bench_boom"}  # boom's row was kept, not re-run
    assert {e["name"]: e["value"] for e in mods["bench_good"]}["fast_ratio"] == pytest.approx(1.8)
    text = doc.read_text()
    assert "hand-written intro" in text and "hand-written tail" in text and "stale" not in text
    assert "| fast_ratio | 1.8 | <= 1.1 | miss |" in text
    assert "**0 of 2 targets met.**" in text
    assert json.loads(out.read_text())["entries"] == result["entries"]


def test_every_figure_of_the_real_results_names_what_limits_it():
    perf_doc = _load("perf_doc")
    result = json.loads((BENCH / "results.json").read_text())
    missing = [e["name"] for e in result["entries"] if e.get("target") is not None
               and perf_doc.limit_of(e) == "-"]
    assert missing == []


def test_hanging_script_times_out_as_an_error_row(tmp_path):
    d = tmp_path / "b"
    d.mkdir()
    (d / "bench_hang.py").write_text("import time\ndef run():\n    time.sleep(600)\n")
    result = run_all.run_all(d, tmp_path / "r.json", timeouts={"bench_hang": 2.0},
                             budget={}, progress=False)
    (row,) = result["entries"]
    assert row["value"] is None and "timed out" in row["error"]


def test_failed_write_keeps_previous_results_whole(fake_dir, tmp_path, monkeypatch):
    out = tmp_path / "results.json"
    out.write_text('{"previous": true}\n')

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        run_all.run_all(fake_dir, out, only=["good"], budget={}, progress=False)
    assert json.loads(out.read_text()) == {"previous": True}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".results")] == []


@pytest.mark.parametrize("row,expected", [
    ({"value": 1.05, "target": 1.1, "unit": "ratio (lower is better)"}, "pass"),
    ({"value": 1.2, "target": 1.1, "unit": "ratio"}, "miss"),
    ({"value": 6.0, "target": 5.0, "unit": "x, baseline / ours"}, "pass"),
    ({"value": 0.9, "target": 1.0, "unit": "fraction"}, "miss"),
    ({"value": 0.4, "target": 0.5, "unit": "ratio", "direction": "<="}, "pass"),
    ({"value": 3.1, "target": 3.0, "unit": "", "direction": ">="}, "pass"),
    ({"value": None, "target": 3.0, "unit": "x"}, "error"),
    ({"value": 7, "target": None, "unit": "MiB"}, "-"),
])
def test_verdict_reads_the_direction_of_a_target(row, expected):
    assert common.verdict({"name": "f", "params": {}, **row}) == expected


def test_run_all_discovers_the_real_bench_scripts():
    names = {p.stem for p in run_all.discover(BENCH)}
    assert {"bench_eval", "bench_p2_official", "bench_memory", "bench_scaling"} <= names
    assert set(run_all.BUDGET) <= names


@pytest.mark.parametrize("name", sorted(run_all.BUDGET))
def test_default_budget_matches_each_scripts_run_signature(name):
    """A renamed parameter must not turn `make bench`'s row into an error (bench_train did)."""
    import inspect

    sig = inspect.signature(_load(name).run)
    sig.bind(**run_all.BUDGET[name])  # TypeError on an unknown or missing argument
