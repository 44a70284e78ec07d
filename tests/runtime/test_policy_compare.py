"""`w4s compare` driver: per-cell resume, settings guard, reports; and its CLI errors.

The driver runs here with an in-memory evaluator and scripted policies (no Ray, no model), so
what is checked is the bookkeeping a user relies on; the real thing (local models in Ray
actors, the evaluator pool, the simulator) runs in tests/test_demo.py.
"""

from __future__ import annotations

import pytest

from tests.rlao.conftest import w4s
from tests.rlao.fakes import FakeEvaluator, reply
from w4s_ray.config import load_config
from w4s_ray.errors import ConfigError
from w4s_ray.meta_agent.base import MetaAgent
from w4s_ray.runtime.policy_compare import compare_policies, parse_model_args


class Fixed(MetaAgent):
    def __init__(self, text: str):
        super().__init__()
        self.text = text
        self.calls = 0

    def generate(self, messages, n, *, seed=None):
        self.calls += 1
        return [self.text] * n


POLICIES = {"weak": "Analysis: none.", "strong": reply(0.8)}


def _run(tmp_path, started, data_dir, **kw):
    cfg = load_config(None, [f"data.dir={data_dir}"])

    def start(name, path):
        started.append(name)
        return Fixed(POLICIES[name])

    return compare_policies(cfg, {"weak": "w", "strong": "s"}, ["gsm8k", "svamp"],
                            tmp_path / "cmp", samples=3, seeds=[0, 1], progress=False,
                            evaluator=FakeEvaluator(), start_agent=start, **kw)


def test_compare_reports_the_better_policy_and_resumes_per_cell(tmp_path, data_dir):
    started: list[str] = []
    out = _run(tmp_path, started, data_dir)
    assert started == ["weak", "strong"]
    pm = out["per_model"]
    assert pm["weak"]["mean_accuracy"] == 0.0 and pm["weak"]["valid_rate"] == 0.0
    assert pm["strong"]["valid_rate"] == 1.0
    assert pm["strong"]["mean_accuracy"] == pytest.approx(0.8, abs=0.05)
    assert out["paired"]["strong"]["cells_better"] == 4
    d = tmp_path / "cmp"
    for f in ("compare.md", "compare.json", "compare.png", "samples.jsonl",
              "seeds/gsm8k.json", "seeds/svamp.json"):
        assert (d / f).exists(), f
    assert "| strong | 12 | " in (d / "compare.md").read_text()
    assert len((d / "samples.jsonl").read_text().splitlines()) == 8  # one line per cell

    # A rerun loads nothing: every cell is on disk.
    started.clear()
    again = _run(tmp_path, started, data_dir)
    assert started == []
    assert again["per_model"] == out["per_model"]

    # A crash mid-append leaves a cut line: that cell (only) is redone.
    lines = (d / "samples.jsonl").read_text().splitlines()
    (d / "samples.jsonl").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:40])
    started.clear()
    third = _run(tmp_path, started, data_dir)
    assert started == ["strong"]
    assert third["per_model"] == out["per_model"]
    assert len((d / "samples.jsonl").read_text().splitlines()) == 8


def test_other_settings_in_the_same_dir_are_refused(tmp_path, data_dir):
    _run(tmp_path, [], data_dir)
    cfg = load_config(None, [f"data.dir={data_dir}"])
    with pytest.raises(ConfigError, match="other settings"):
        compare_policies(cfg, {"weak": "w"}, ["gsm8k"], tmp_path / "cmp", samples=3,
                         seeds=[0], progress=False, evaluator=FakeEvaluator(),
                         start_agent=lambda n, p: Fixed(POLICIES[n]))


def test_corrupt_sample_line_is_named(tmp_path, data_dir):
    _run(tmp_path, [], data_dir)
    f = tmp_path / "cmp" / "samples.jsonl"
    lines = f.read_text().splitlines()
    f.write_text("\n".join(["{not json"] + lines[1:]) + "\n")
    with pytest.raises(Exception, match=r"samples.jsonl:1: not a sample record"):
        _run(tmp_path, [], data_dir)


def test_model_args():
    assert parse_model_args(["a=/x", "/y/trained"]) == {"a": "/x", "trained": "/y/trained"}
    with pytest.raises(ConfigError, match="twice"):
        parse_model_args(["a=/x", "a=/y"])
    with pytest.raises(ConfigError, match="NAME=PATH"):
        parse_model_args(["=/x"])


@pytest.mark.parametrize("args, msg", [
    ([], "at least one --model"),
    (["--model", "m=/nonexistent/model"], "no such directory"),
    (["--model", "m={tmp}"], "no config.json"),
    (["--model", "m={model}", "--benchmarks", "nope"], "unknown benchmark"),
    (["--model", "m={model}", "--seeds", "1,x"], "--seeds"),
    (["--model", "m={model}", "--samples", "0"], "--samples must be >= 1"),
    (["--model", "m={model}"], "cannot reach executor at"),
])
def test_cli_bad_input_is_one_line(tmp_path, tiny_model_dir, args, msg):
    args = [a.format(tmp=tmp_path, model=tiny_model_dir) for a in args]
    proc = w4s(["compare", "--no-progress", "--set", "executor.api_base=http://127.0.0.1:9/v1",
                "--out", str(tmp_path / "out"), *args], timeout=120)
    assert proc.returncode != 0
    err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("w4s: error:"), proc.stderr[-2000:]
    assert msg in err[0]
    assert not (tmp_path / "out" / "samples.jsonl").exists()
