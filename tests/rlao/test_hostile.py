"""Hostile inputs to RLAO: junk meta-agent replies, test numbers, torn resumes, bad configs."""

from __future__ import annotations

import json
from dataclasses import replace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.rlao.fakes import FakeEvaluator, reply, workflow
from w4s_ray.config import RLAOConfig, load_config
from w4s_ray.errors import ConfigError, DataError
from w4s_ray.meta_agent.base import MetaAgent
from w4s_ray.rlao import runs
from w4s_ray.rlao.loop import Episode, TaskSpec
from w4s_ray.rlao.optimize import optimize
from w4s_ray.rlao.prompts import MAX_ACTION_CHARS
from w4s_ray.rlao.trajectories import COLUMNS, read_rows, to_table

SPEC = TaskSpec("gsm8k", "math", "Grade-school math.", "a number",
                {"CoT": workflow(0.4), "SC": workflow(0.5, calls=3)})
REPLIES = [reply(a) for a in (0.2, 0.55, 0.7, 0.9, 0.35, 0.6, 0.65)]
TEST_MARK = "TESTSPLIT-FEEDBACK-7731"
TEST_ACC = 0.123457


class Recorder(MetaAgent):
    """Cycles through fixed replies; keeps every prompt it was shown."""

    name = "recorder"

    def __init__(self, replies):
        super().__init__()
        self.replies = list(replies)
        self.k = 0
        self.prompts: list[str] = []

    def generate(self, messages, n, *, seed=None):
        self.prompts.append(json.dumps(messages))
        out = []
        for _ in range(n):
            out.append(self.replies[self.k % len(self.replies)])
            self.k += 1
        return out


class SplitMarkingEvaluator(FakeEvaluator):
    """Test-split outcomes carry a recognisable accuracy and feedback."""

    def evaluate(self, jobs):
        outs = super().evaluate(jobs)
        return [replace(o, accuracy=TEST_ACC, feedback=f"{TEST_MARK} accuracy {TEST_ACC}")
                if job.split == "test" else o for job, o in zip(jobs, outs, strict=True)]


def _cfg(**over):
    sets = [f"{k}={v}" for k, v in {"rlao.candidates": 3, "rlao.turns": 2, **over}.items()]
    return load_config(None, sets)


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "created_at"} for r in rows]


def test_junk_replies_never_crash_a_turn():
    junk = [None, 5, "", "x" * 2_000_000,
            "```python\ndef solver(agent, task):\n    return 1\ndef solver(agent, task):\n"
            "    return {'answer': '1'}\n```",
            "```python\nif False:\n    def solver(agent, task):\n        return 1\n```",
            reply(0.6)]

    class Junk(MetaAgent):
        name = "junk"

        def generate(self, messages, n, *, seed=None):
            return list(junk)[:n]

    ep = Episode(SPEC, RLAOConfig(candidates=len(junk), max_repairs=1), "gsm8k-e00",
                 FakeEvaluator(), Junk())
    ep.start(ep.evaluate_seeds())
    res = ep.run_turn()
    assert [r["valid"] for r in res.rows][:4] == [False] * 4
    assert res.rows[-1]["valid"] and res.rows[-1]["chosen"]
    assert all(isinstance(r["action"], str) for r in res.rows)
    to_table(res.rows)


def test_huge_chosen_reply_is_cut_in_the_next_prompt_but_keeps_its_code():
    big = reply(0.9, analysis="A" * (MAX_ACTION_CHARS * 5))
    agent = Recorder([big])
    # w4s-ray cuts a huge reply in its rolling history; the w4s chat keeps replies whole, as
    # upstream's does.
    ep = Episode(SPEC, RLAOConfig(protocol="w4s-ray", candidates=1), "gsm8k-e00",
                 FakeEvaluator(), agent)
    ep.start(ep.evaluate_seeds())
    ep.run_turn()
    ep.run_turn()
    last = json.loads(agent.prompts[-1])
    shown = [m["content"] for m in last if m["role"] == "assistant"][-1]
    assert len(shown) < MAX_ACTION_CHARS and "# acc=0.9" in shown


def test_no_test_number_reaches_any_prompt_across_final_resume_and_report(tmp_path):
    d = tmp_path / "run"
    agents = []
    for turns, resume in ((2, False), (2, True), (4, True)):  # done, no-op resume, extension
        agents.append(Recorder(REPLIES))
        final = optimize(_cfg(), SPEC, d, SplitMarkingEvaluator(), agents[-1], turns=turns,
                              resume=resume, progress=False)
        assert final["test_accuracy"] == TEST_ACC
    prompts = [p for a in agents for p in a.prompts]
    assert len(prompts) >= 4
    assert not any(TEST_MARK in p or str(TEST_ACC) in p or "0.1235" in p for p in prompts)
    rows = read_rows(d / "trajectories")
    assert not any(TEST_MARK in (r["feedback"] or "") + r["prompt_messages"] for r in rows)
    assert TEST_MARK not in (d / "seeds" / "gsm8k.json").read_text()


def test_kill_between_parquet_and_metrics_resumes_to_the_same_rows(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    optimize(_cfg(), SPEC, full, FakeEvaluator(), Recorder(REPLIES), progress=False)
    optimize(_cfg(), SPEC, part, FakeEvaluator(), Recorder(REPLIES), turns=1,
                  progress=False)
    # The state a kill -9 right after the turn-1 Parquet rename leaves: stale metrics (a torn
    # line), no cost/final, and a stray temp file of the next part.
    (part / "metrics.jsonl").write_text('{"episode_id": "gsm8k-e00", "tu')
    for name in ("cost.json", "final.json"):
        (part / name).unlink(missing_ok=True)
    (part / "trajectories" / ".part-gsm8k-e00-0001.parquet.abc.tmp").write_bytes(b"PAR1")
    agent = Recorder(REPLIES)
    agent.k = 3  # the scripted agent continues where the killed process stopped
    optimize(_cfg(), SPEC, part, FakeEvaluator(), agent, resume=True, progress=False)
    assert _strip(read_rows(part / "trajectories")) == _strip(read_rows(full / "trajectories"))
    metrics = [json.loads(x) for x in (part / "metrics.jsonl").read_text().splitlines()]
    assert [m["turn"] for m in metrics] == [1, 2]  # seeds are turn 0


def test_parquet_with_another_schema_is_a_data_error_naming_it(tmp_path):
    d = tmp_path / "run"
    optimize(_cfg(**{"rlao.turns": 1}), SPEC, d, FakeEvaluator(), Recorder(REPLIES),
                  progress=False)
    foreign = d / "trajectories" / "part-gsm8k-e00-0001.parquet"
    pq.write_table(pa.table({c: ["text"] for c in COLUMNS}), foreign)
    with pytest.raises(DataError, match="part-gsm8k-e00-0001.parquet.*schema"):
        optimize(_cfg(), SPEC, d, FakeEvaluator(), Recorder(REPLIES), resume=True,
                      progress=False)
    assert foreign.exists()


def test_empty_existing_dir_is_a_fresh_run_and_a_second_run_is_refused(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    optimize(_cfg(**{"rlao.turns": 1}), SPEC, d, FakeEvaluator(), Recorder(REPLIES),
                  progress=False)
    with pytest.raises(ConfigError, match="already holds a run"):
        runs.preflight(d, _cfg(), resume=False)
    with pytest.raises(ConfigError, match="rlao.run_id"):
        runs.preflight(d, _cfg(**{"rlao.run_id": "other"}), resume=True)


@pytest.mark.parametrize("key,value", [
    ("rlao.candidates", 0), ("rlao.turns", -1), ("rlao.history_window", -1),
    ("rlao.max_repairs", -2), ("rlao.episodes_per_benchmark", 0), ("rlao.test_limit", 0),
    ("rlao.racing.slices", "[0, 1]"), ("rlao.racing.confidence", 1),
])
def test_bad_rlao_settings_are_config_errors(key, value):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [f"{key}={value}"])


def test_w4s_needs_trajectories_of_one_turn_or_more():
    with pytest.raises(ConfigError, match="history_window"):
        load_config(None, ["rlao.history_window=0"])


def test_history_window_zero_shows_no_history():
    agent = Recorder(REPLIES)
    ep = Episode(SPEC, RLAOConfig(protocol="w4s-ray", candidates=1, history_window=0),
                 "gsm8k-e00", FakeEvaluator(), agent)
    ep.start(ep.evaluate_seeds())
    ep.run_turn()
    ep.run_turn()
    assert not any(m["role"] == "assistant" for m in json.loads(agent.prompts[-1]))


def test_torn_derived_files_are_recomputed_and_bad_seed_results_named(tmp_path):
    from w4s_ray.rlao.report import write_report

    d = tmp_path / "run"
    first = optimize(_cfg(), SPEC, d, FakeEvaluator(), Recorder(REPLIES), progress=False)
    (d / "final.json").write_text('{"benchmark": "gsm8')
    (d / "cost.json").write_text("[1, 2")
    again = optimize(_cfg(), SPEC, d, FakeEvaluator(), Recorder(REPLIES), resume=True,
                          progress=False)
    assert {k: v for k, v in again.items() if k != "wall_s"} == {
        k: v for k, v in first.items() if k != "wall_s"}
    assert json.loads((d / "cost.json").read_text())["total_usd"] > 0
    seeds = d / "seeds" / "gsm8k.json"
    seeds.write_text('{"name": "not a list"}')
    with pytest.raises(DataError, match="gsm8k.json: corrupt seed results"):
        write_report(d)
    with pytest.raises(DataError, match="gsm8k.json: corrupt seed results"):
        optimize(_cfg(), SPEC, d, FakeEvaluator(), Recorder(REPLIES), resume=True,
                      progress=False)
    assert seeds.read_text() == '{"name": "not a list"}'
