"""Policy evaluation as plain functions: sampling, scoring failures as 0, pairing, reports."""

from __future__ import annotations

import pytest

from tests.rlao.fakes import FakeEvaluator, reply, workflow
from w4s_ray.config import RLAOConfig
from w4s_ray.meta_agent.base import MetaAgent
from w4s_ray.rlao import policy_eval as pe
from w4s_ray.rlao.loop import Episode, TaskSpec

SPEC = TaskSpec("gsm8k", "math", "Grade-school math.", "a number",
                {"CoT": workflow(0.4), "SC": workflow(0.5, calls=5)})


class IndexedPolicy(MetaAgent):
    """Reply i of a call is `by_index(i)`; records the messages and seed it was given."""

    def __init__(self, by_index):
        super().__init__()
        self.by_index = by_index
        self.seen: list[tuple[list[dict], int, int | None]] = []

    def generate(self, messages, n, *, seed=None):
        self.seen.append((messages, n, seed))
        return [self.by_index(i) for i in range(n)]


def _seed_records(ev):
    ep = Episode(SPEC, RLAOConfig(), "seeds", ev, None)
    return ep.evaluate_seeds()


def test_w4s_samples_are_scored_as_drawn_and_any_exception_scores_zero():
    ev = FakeEvaluator()
    replies = [reply(0.6), "no code here", reply(0.9, "crash"), reply(0.02)]
    agent = IndexedPolicy(lambda i: replies[i])
    got = pe.sample_policy("m", agent, SPEC, _seed_records(ev), ev, samples=4, seed=100)
    assert [s.valid for s in got] == [True, False, False, True]
    assert got[2].accuracy == 0.0 and "ZeroDivisionError" in got[2].error
    assert 0 < got[3].accuracy <= 0.05  # at the drop threshold yet not dropped: scored as drawn
    assert len(agent.seen) == 1  # no repairs, no re-sampling
    assert "### Archive of Agentic Systems" in agent.seen[0][0][1]["content"]
    assert all(not j.extra_items for call in ev.evaluate_calls for j in call)


def test_failed_samples_score_zero_and_valid_ones_their_accuracy():
    ev = FakeEvaluator()
    replies = [reply(0.6), "no code here", reply(0.9, "crash"), reply(0.2)]
    agent = IndexedPolicy(lambda i: replies[i])
    got = pe.sample_policy("m", agent, SPEC, _seed_records(ev), ev, samples=4, seed=100,
                           protocol="w4s-ray")
    assert [s.index for s in got] == [0, 1, 2, 3]
    assert [s.valid for s in got] == [True, False, False, True]
    assert [s.code is None for s in got] == [False, True, False, False]
    assert got[1].accuracy == 0.0 and got[2].accuracy == 0.0
    assert got[0].accuracy == pytest.approx(0.6, abs=0.05)
    assert got[3].accuracy == pytest.approx(0.2, abs=0.05)
    assert got[2].error and "self-check" in got[2].error  # no repair was attempted
    assert len(agent.seen) == 1  # one call for all samples, none for repairs


def test_two_models_see_the_same_prompt_and_seeds():
    ev = FakeEvaluator()
    seeds = _seed_records(ev)
    a = IndexedPolicy(lambda i: reply(0.5))
    b = IndexedPolicy(lambda i: reply(0.7))
    pe.sample_policy("a", a, SPEC, seeds, ev, samples=3, seed=7)
    pe.sample_policy("b", b, SPEC, seeds, ev, samples=3, seed=7)
    assert a.seen[0][0] == b.seen[0][0]  # identical first-turn messages
    assert a.seen[0][2] == b.seen[0][2]
    prompt = a.seen[0][0][-1]["content"]
    assert "CoT" in prompt and "SC" in prompt  # the seed workflows are in the state


def _s(model, seed, bench, acc, valid=True):
    return pe.Sample(model, bench, seed, 0, valid, acc if valid else 0.0, None, 0.01)


def test_summary_means_and_paired_differences():
    samples = []
    for seed in (0, 1):
        for bench, base in (("x", 0.2), ("y", 0.4)):
            samples += [_s("warm", seed, bench, base), _s("warm", seed, bench, 0, valid=False)]
            samples += [_s("trained", seed, bench, base + 0.1 * (seed + 1)),
                        _s("trained", seed, bench, base)]
    out = pe.summarize(samples)
    assert out["baseline"] == "warm"
    assert out["per_model"]["warm"]["mean_accuracy"] == pytest.approx(0.15)
    assert out["per_model"]["warm"]["valid_rate"] == pytest.approx(0.5)
    assert out["per_model"]["warm"]["mean_accuracy_valid"] == pytest.approx(0.3)
    d = out["paired"]["trained"]
    # cell diff = trained mean - warm mean = (2 * base + 0.1 * (seed + 1)) / 2 - base / 2
    diffs = {seed: [(2 * base + 0.1 * (seed + 1)) / 2 - base / 2 for base in (0.2, 0.4)]
             for seed in (0, 1)}
    flat = diffs[0] + diffs[1]
    assert d["mean_diff"] == pytest.approx(sum(flat) / 4)
    assert d["cells"] == 4 and d["cells_better"] == 4 and d["cells_worse"] == 0
    assert d["per_seed_diff"][1] == pytest.approx(sum(diffs[1]) / 2)
    assert d["min_seed_diff"] == pytest.approx(sum(diffs[0]) / 2)
    assert d["stderr"] > 0
    assert d["vs"] == "warm"


def test_summary_names_a_worse_model_as_worse():
    samples = [_s("a", 0, "x", 0.5), _s("b", 0, "x", 0.3)]
    d = pe.summarize(samples)["paired"]["b"]
    assert d["mean_diff"] == pytest.approx(-0.2)
    assert d["cells_worse"] == 1 and d["cells_better"] == 0


def test_markdown_and_plot(tmp_path):
    samples = [_s("warm", sd, b, 0.3) for sd in (0, 1) for b in ("x", "y")]
    samples += [_s("trained", sd, b, 0.5) for sd in (0, 1) for b in ("x", "y")]
    out = pe.summarize(samples)
    md = pe.render_markdown(out, samples_per_cell=1)
    assert "| warm | 4 | 30.0 |" in md and "| trained | 4 | 50.0 |" in md
    assert "| trained | +20.0 |" in md
    pe.plot(out, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_empty_summary():
    assert pe.summarize([])["models"] == []


def _variant(acc: float, stmt: str, doc: str = "") -> str:
    """A reply whose workflow differs from the seeds' program by one statement (the fake
    evaluator scores by the `# acc=` comment, which normalisation ignores)."""
    code = workflow(acc).replace("    return", f"{doc}    {stmt}\n    return")
    return f"Analysis.\n```python\n{code}```"


def test_diversity_counts_distinct_programs_seed_copies_and_samples_beating_the_best_seed():
    ev = FakeEvaluator()
    seeds = _seed_records(ev)  # CoT 0.4, SC 0.5: one program apart from their comments
    replies = [
        _variant(0.9, "n = 1"),                                   # program A, beats 0.5
        _variant(0.8, "n = 1", doc='    """Same, documented."""\n\n'),  # A again, beats
        reply(0.2),                                               # a seed again
        "no code here",                                           # no workflow
        _variant(0.3, "n = 2"),                                   # program B, below the seeds
    ]
    got = pe.sample_policy("m", IndexedPolicy(lambda i: replies[i]), SPEC, seeds, ev,
                           samples=5, seed=3)
    assert got[0].code_key == got[1].code_key != got[4].code_key
    assert got[3].code_key is None
    # the code is kept, so a user can read what each sample was
    assert got[3].code is None and "n = 2" in got[4].code and "def solver" in got[0].code
    assert [s.is_seed_copy for s in got] == [False, False, True, False, False]
    assert [s.beats_best_seed for s in got] == [True, True, False, False, False]
    d = pe.diversity(got)
    assert (d["distinct_mean"], d["distinct_min"], d["distinct_max"]) == (3, 3, 3)
    assert [s.valid for s in got] == [True, True, True, False, True]
    assert (d["distinct_valid_mean"], d["distinct_valid_new_mean"]) == (3, 2)  # A, B not seeds
    assert (d["with_code"], d["seed_copies"], d["beat_best_seed"], d["samples"]) == (4, 1, 2, 5)
    summary = pe.summarize(got)
    assert summary["per_model"]["m"]["diversity"] == d
    md = pe.render_markdown(summary, samples_per_cell=5)
    assert "| m | 3.0 of 5 (3-3) | 3.0 (3-3) | 2.0 | 1 / 5 | 2 / 5 |" in md


def test_diversity_is_per_cell_and_na_for_samples_without_the_fields():
    def s(seed, key, valid=True, seed_copy=False):
        return pe.Sample("m", "x", seed, 0, valid, 0.5 if valid else 0.0, None, 0.0,
                         code_key=key, is_seed_copy=seed_copy, beats_best_seed=False)

    d = pe.diversity([s(0, "a"), s(0, "a"), s(1, "a"), s(1, "b")])
    assert (d["distinct_min"], d["distinct_max"], d["distinct_mean"]) == (1, 2, 1.5)
    # Broken programs are distinct but not valid; a seed copy is valid but not new.
    d = pe.diversity([s(0, "a", valid=False), s(0, "b", valid=False), s(0, "c", seed_copy=True),
                      s(1, "d"), s(1, "e"), s(1, None, valid=False)])
    assert (d["distinct_min"], d["distinct_max"]) == (2, 3)
    assert (d["distinct_valid_min"], d["distinct_valid_max"], d["distinct_valid_mean"]) == (1, 2, 1.5)
    assert d["distinct_valid_new_mean"] == 1.0  # cell 0: none; cell 1: d and e
    old = [_s("m", 0, "x", 0.5)]  # a samples.jsonl line from before the diversity fields
    assert pe.diversity(old) is None
    assert "| m | n/a | n/a | n/a | n/a | n/a |" in pe.render_markdown(pe.summarize(old),
                                                                      samples_per_cell=1)
