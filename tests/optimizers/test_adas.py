"""ADAS search loop with scripted meta models and a fake evaluator (no Ray, no executor)."""

from __future__ import annotations

import json
import re

import pytest

from tests.optimizers.fakes import FakeEvaluate, FnMeta, drop_timing, workflow
from w4s_ray.errors import BudgetExceeded, ConfigError, DataError
from w4s_ray.optimizers import adas_prompts as P
from w4s_ray.optimizers.adas import (
    AdasSearch,
    AdasSettings,
    AdasTask,
    best_entry,
    parse_solution,
    state_after,
)

FITNESS = re.compile(r"^95% Bootstrap Confidence Interval: \(\d+\.\d%, \d+\.\d%\), "
                     r"Median: \d+\.\d%$")


def task(n_initial: int = 2) -> AdasTask:
    initial = tuple({"name": f"Seed {i}", "thought": f"seed {i}",
                     "code": workflow(0.2 + 0.1 * i, name=f"seed{i}")}
                    for i in range(n_initial))
    return AdasTask("gsm8k", "math", "Grade-school math.", "A number.", initial)


def settings(**kw) -> AdasSettings:
    return AdasSettings(**{"generations": 3, "bootstrap_samples": 500, **kw})


def reply(name: str, code: str, thought: str = "idea") -> str:
    return json.dumps({"thought": thought, "name": name, "code": code})


def step_of(messages) -> str:
    n = len(messages)
    return {2: "propose", 4: "reflect1", 6: "reflect2"}.get(n, "repair")


def archive_size(messages) -> int:
    m = re.search(r"# Archive of discovered systems\n(\[.*?\])\n\n", messages[1]["content"],
                  re.DOTALL)
    return len(json.loads(m.group(1)))


def seeded_meta() -> FnMeta:
    """Proposals whose accuracy depends on the seed and the archive size (so a resumed run
    must reproduce both to produce the same records)."""
    def fn(messages, seed):
        acc = round(0.3 + (seed % 5) / 10 + archive_size(messages) / 100, 2)
        return reply(f"Agent {archive_size(messages)} {step_of(messages)}",
                     workflow(acc, name=step_of(messages)))
    return FnMeta(fn)


def run(search: AdasSearch, records=()) -> list[dict]:
    out: list[dict] = []
    search.run(list(records), out.append)
    return out


def test_initial_archive_is_evaluated_once_with_fitness_strings():
    ev = FakeEvaluate()
    search = AdasSearch(task(3), settings(generations=0), seeded_meta(), ev)
    records = run(search)
    assert [r["type"] for r in records] == ["initial"] * 3
    assert len(ev.calls) == 1 and len(ev.calls[0]["codes"]) == 3  # one concurrent call
    assert ev.calls[0]["split"] == "valid"
    for r in records:
        assert FITNESS.match(r["fitness"]), r["fitness"]
        assert r["generation"] == "initial"
    state = state_after(search.task, records)
    assert [e["name"] for e in state.archive] == ["Seed 0", "Seed 1", "Seed 2"]


def test_archive_grows_by_one_entry_per_successful_generation():
    ev = FakeEvaluate()
    search = AdasSearch(task(2), settings(generations=3), seeded_meta(), ev)
    records = run(search)
    gens = [r for r in records if r["type"] == "generation"]
    assert [g["generation"] for g in gens] == [1, 2, 3]
    assert all(g["status"] == "added" for g in gens)
    state = state_after(search.task, records)
    assert len(state.archive) == 5 and state.next_generation == 4
    assert [e["generation"] for e in state.archive] == ["initial", "initial", 1, 2, 3]
    for e in state.archive:
        assert FITNESS.match(e["fitness"])
    # Every proposal was evaluated on validation only, and the fitness is its accuracy's CI.
    assert {c["split"] for c in ev.calls} == {"valid"}
    g1 = gens[0]
    assert g1["fitness_stats"]["low"] <= g1["accuracy"] <= g1["fitness_stats"]["high"]
    # Archive entry k+1's prompt showed entries 0..k: the archive grows in the prompt too.
    prompts = [msgs for msgs, _ in search.meta.requests if len(msgs) == 2]
    assert [archive_size(m) for m in prompts] == [2, 3, 4]
    assert best_entry(state)["accuracy"] == max(e["accuracy"] for e in state.archive)


def test_generate_reflect_revise_message_sequence():
    meta = seeded_meta()
    search = AdasSearch(task(2), settings(generations=2), meta, FakeEvaluate())
    records = run(search)
    calls = meta.requests
    assert len(calls) == 6  # 3 per generation: propose, reflect 1, reflect 2
    m1, m2, m3 = (c[0] for c in calls[:3])
    assert [m["role"] for m in m1] == ["system", "user"]
    assert m1[0]["content"] == P.SYSTEM_PROMPT
    assert "# Archive of discovered systems" in m1[1]["content"]
    assert "Think outside the box" in m1[1]["content"]
    assert m2[:2] == m1 and [m["role"] for m in m2[2:]] == ["assistant", "user"]
    assert m2[2]["content"] == records[2]["steps"][0]["reply"]  # the proposal, verbatim
    assert m2[3]["content"] == P.reflexion_prompt_1(None)       # generation 1: no previous
    assert m3[:4] == m2 and m3[5]["content"] == P.REFLEXION_PROMPT_2
    assert m3[4]["content"] == records[2]["steps"][1]["reply"]
    # The archived solution is the one after the second reflexion.
    assert records[2]["solution"]["name"] == "Agent 2 reflect2"
    # From generation 2 on, reflexion 1 shows the previous archive entry.
    g2_reflect = calls[4][0][3]["content"]
    assert g2_reflect.startswith("The previous system you tried:\n")
    assert '"name": "Agent 2 reflect2"' in g2_reflect
    # Seeds differ per step and per generation.
    assert len({seed for _, seed in calls}) == 6


def test_failing_code_is_repaired_with_the_error():
    def fn(messages, seed):
        step = step_of(messages)
        if step == "repair":
            assert "load_error: NameError" in messages[-1]["content"]
            return reply("Fixed", workflow(0.7, name="fixed"))
        return reply("Broken", workflow(0.5, "broken", name=step))

    meta, ev = FnMeta(fn), FakeEvaluate()
    search = AdasSearch(task(1), settings(generations=1), meta, ev)
    records = run(search)
    gen = records[-1]
    assert gen["status"] == "added"
    assert [s["step"] for s in gen["steps"]] == ["propose", "reflect1", "reflect2", "repair1"]
    assert gen["solution"]["name"] == "Fixed"
    assert len(gen["evaluations"]) == 2 and gen["evaluations"][0]["error"]
    repair_msg = gen["messages"][-1]["content"]
    assert repair_msg == P.repair_prompt("load_error: NameError: name 'x' is not defined")
    assert '"debug_thought"' in repair_msg


def test_code_that_never_runs_is_dropped_after_debug_max_evaluations():
    meta = FnMeta(lambda messages, seed: reply("Broken", workflow(0.5, "broken")))
    ev = FakeEvaluate()
    search = AdasSearch(task(1), settings(generations=1, debug_max=3), meta, ev)
    records = run(search)
    gen = records[-1]
    assert gen["status"] == "failed" and "no clean evaluation after 3" in gen["reason"]
    assert len(gen["evaluations"]) == 3
    # 3 design calls + 2 repairs: no meta call after the last failed evaluation.
    assert [s["step"] for s in gen["steps"]] == ["propose", "reflect1", "reflect2", "repair1",
                                                 "repair2"]
    state = state_after(search.task, records)
    assert len(state.archive) == 1 and state.failed_generations == 1
    assert state.next_generation == 2  # the generation is spent, as in ADAS


def test_all_zero_accuracy_and_invalid_code_are_repaired_like_errors():
    answers = iter([
        reply("Zero", workflow(0.0)),
        reply("NoSolver", "def helper(agent, task):\n    return {}\n"),
        reply("Good", workflow(0.6)),
    ])

    def fn(messages, seed):
        if step_of(messages) in ("propose", "reflect1"):
            return reply("Draft", workflow(0.4))
        return next(answers)

    search = AdasSearch(task(1), settings(generations=1), FnMeta(fn), FakeEvaluate())
    gen = run(search)[-1]
    assert gen["status"] == "added" and gen["solution"]["name"] == "Good"
    repairs = [m["content"] for m in gen["messages"] if m["role"] == "user"][-2:]
    assert repairs[0].startswith("Evaluating your system failed:\nAll 0 accuracy")
    assert "not a valid workflow: no function named solver" in repairs[1]
    assert len(gen["evaluations"]) == 2  # the invalid code never reached the evaluator


def test_unparseable_proposal_fails_the_generation():
    search = AdasSearch(task(1), settings(generations=1),
                        FnMeta(lambda m, s: "I would rather not."), FakeEvaluate())
    gen = run(search)[-1]
    assert gen["status"] == "failed" and gen["reason"].startswith("unparseable reply at propose")
    assert len(gen["steps"]) == 1


def test_resume_after_a_kill_equals_the_uninterrupted_run():
    full = run(AdasSearch(task(2), settings(generations=4), seeded_meta(), FakeEvaluate()))
    for kill_after in (1, 2, 3, 5):
        persisted: list[dict] = []

        def on_record(rec, persisted=persisted, kill_after=kill_after):
            if len(persisted) == kill_after:
                raise KeyboardInterrupt  # the process dies before writing this record
            persisted.append(rec)

        search = AdasSearch(task(2), settings(generations=4), seeded_meta(), FakeEvaluate())
        with pytest.raises(KeyboardInterrupt):
            search.run([], on_record)
        # A fresh process: new meta model, new evaluator, only the persisted records.
        resumed = AdasSearch(task(2), settings(generations=4), seeded_meta(), FakeEvaluate())
        rest = run(resumed, persisted)
        assert drop_timing(persisted + rest) == drop_timing(full), kill_after


def test_budget_stop_keeps_finished_generations_and_resume_continues():
    ev = FakeEvaluate(budget_calls=3)  # 2 initial + generation 1; generation 2 cannot pay
    persisted: list[dict] = []
    search = AdasSearch(task(2), settings(generations=3), seeded_meta(), ev)
    with pytest.raises(BudgetExceeded):
        search.run([], persisted.append)
    assert [r.get("generation") for r in persisted] == ["initial", "initial", 1]
    rest = run(AdasSearch(task(2), settings(generations=3), seeded_meta(), FakeEvaluate()),
               persisted)
    assert [r["generation"] for r in rest] == [2, 3]


def test_state_after_rejects_inconsistent_records():
    records = run(AdasSearch(task(2), settings(generations=2), seeded_meta(), FakeEvaluate()))
    with pytest.raises(DataError, match="jump from 1 to 2"):
        state_after(task(2), records[:2] + records[3:])
    other = AdasTask("gsm8k", "math", "", "", ({"name": "Other", "thought": "", "code": ""},
                                               {"name": "Seed 1", "thought": "", "code": ""}))
    with pytest.raises(DataError, match="does not match"):
        state_after(other, records)
    with pytest.raises(DataError, match="precedes"):
        state_after(task(2), records[2:3])


def test_prompt_shows_only_validation_fields_of_the_archive():
    archive = [{"thought": "t", "name": "n", "code": "c", "fitness": "f", "generation": 1,
                "accuracy": 0.5, "test_accuracy": 0.99, "test_fitness": "LEAK"}]
    text = P.proposal_prompt(kind="math", task_description="d", answer_format="a",
                             archive=archive)
    assert "LEAK" not in text and "0.99" not in text and "test_" not in text
    assert '"fitness": "f"' in text


@pytest.mark.parametrize("text", [
    json.dumps({"thought": "t", "name": "N", "code": "def solver(agent, task):\n    pass\n"}),
    "Here it is:\n```json\n" + json.dumps({"thought": "t", "name": "N",
                                           "code": "def solver(agent, task): pass"}) + "\n```",
    "prose before " + json.dumps({"name": "N", "code": "def solver(agent, task): pass"})
    + " and after",
    "My idea.\n```python\ndef solver(agent, task):\n    return {'answer': 1}\n```",
])
def test_parse_solution_accepts_json_and_workflow_blocks(text):
    sol = parse_solution(text)
    assert "def solver" in sol["code"] and isinstance(sol["thought"], str)
    assert sol["name"] in ("N", "unnamed")


@pytest.mark.parametrize("text", ["", "no json here", json.dumps({"name": "x", "code": ""}),
                                  json.dumps(["code"])])
def test_parse_solution_rejects_replies_without_code(text):
    with pytest.raises(ValueError):
        parse_solution(text)


def test_from_benchmark_uses_the_seven_baselines(gsm8k):
    t = AdasTask.from_benchmark(gsm8k)
    assert [e["name"] for e in t.initial] == [
        "Chain-of-Thought", "Self-Consistency (CoT-SC)", "Self-Refine (Reflexion)",
        "LLM Debate", "Step-back Abstraction", "Quality-Diversity", "Dynamic Role Assignment"]
    assert all("def solver(agent, task" in e["code"] for e in t.initial)


def test_settings_are_validated():
    with pytest.raises(ConfigError, match="debug_max"):
        AdasSettings(debug_max=0)
    with pytest.raises(ConfigError, match="reflexion_rounds"):
        AdasSettings(reflexion_rounds=3)
