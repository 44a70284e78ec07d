"""The W4S prompt: structure, per-kind agent API, history window, failure note, no test numbers."""

from __future__ import annotations

import json

from w4s_ray.rlao import mdp
from w4s_ray.rlao.prompts import PromptSpec, build_messages, render_entry

TEST_ACC = 0.8137  # a distinctive number that must never reach a prompt


def _state(with_history: int = 0, test_acc: float | None = TEST_ACC):
    examples = [
        mdp.ArchiveEntry("CoT", "def solver(agent, task):\n    return {'answer': 1}\n", 0.41,
                         "Accuracy 0.41. Wrong: q7", test_accuracy=test_acc),
        mdp.ArchiveEntry("SC", "def solver(agent, task):\n    return {'answer': 2}\n", 0.52,
                         "Accuracy 0.52.", test_accuracy=test_acc),
    ]
    s = mdp.initial_state("gsm8k", "Grade-school math word problems.", examples)
    for t in range(with_history):
        cand = mdp.Candidate(0, f"ACTION-{t}\n```python\ndef solver(agent, task): pass\n```",
                             "def solver(agent, task): pass", 0.5 + t / 10, f"FEEDBACK-{t}")
        s, _ = mdp.advance(s, [cand])
    return s


def _text(messages):
    return "\n".join(m["content"] for m in messages)


def test_structure_and_output_format():
    msgs = build_messages(_state(), PromptSpec("math", "a number", 2))
    assert [m["role"] for m in msgs] == ["system", "user"]
    user = msgs[1]["content"]
    for part in ("solver(agent, task)", "Grade-school math word problems.", "```python",
                 "analysis", "ONE", "a number", "call_json_format_llm", "call_llm"):
        assert part in user
    start = user.index("## Archive")
    archive = json.loads(user[user.index("\n", start) + 1: user.index("\n\n## Answer format")])
    assert [e["name"] for e in archive] == ["CoT", "SC"]
    assert archive[0]["validation_accuracy"] == 0.41 and "q7" in archive[0]["feedback"]


def test_agent_api_depends_on_benchmark_kind():
    reading = _text(build_messages(_state(), PromptSpec("reading")))
    math = _text(build_messages(_state(), PromptSpec("math")))
    code = _text(build_messages(_state(), PromptSpec("code")))
    assert "execute_code" not in reading and "test_on_public_test" not in reading
    assert "execute_code" in math and "test_on_public_test" not in math
    assert "execute_code" in code and "test_on_public_test" in code


def test_prompt_never_contains_test_numbers():
    state = _state(with_history=2)
    assert state.examples[0].test_accuracy == TEST_ACC  # the state does hold one
    text = _text(build_messages(state, PromptSpec("math")))
    for form in ("0.8137", "0.81", "81.37", "81.4", "test_acc"):
        assert form not in text
    assert set(render_entry(state.examples[0])) == {"name", "code", "validation_accuracy",
                                                    "feedback"}


def test_history_window_shows_last_k_actions_with_feedback():
    msgs = build_messages(_state(with_history=3), PromptSpec("math", history_window=2))
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant",
                                         "user"]
    assert msgs[2]["content"].startswith("ACTION-1") and "FEEDBACK-1" in msgs[3]["content"]
    assert msgs[4]["content"].startswith("ACTION-2") and "FEEDBACK-2" in msgs[5]["content"]
    assert "ACTION-0" not in _text(msgs)
    assert "improved over the best so far: 0.60 -> 0.70" in msgs[5]["content"]
    none = build_messages(_state(with_history=3), PromptSpec("math", history_window=0))
    assert len(none) == 2


def test_failed_turn_prompt_repeats_state_and_adds_note():
    s1 = _state(with_history=1)
    before = build_messages(s1, PromptSpec("math"))
    s2, pos = mdp.advance(s1, [mdp.Candidate(0, "prose only", error="no code: no python code block")])
    assert pos is None
    after = build_messages(s2, PromptSpec("math"))
    assert len(after) == len(before)
    assert after[:-1] == before[:-1]
    assert after[-1]["content"].startswith(before[-1]["content"])
    assert "none of your workflows could be evaluated" in after[-1]["content"]
    assert "no python code block" in after[-1]["content"]
    # No history yet: the note goes on the first user message.
    s0 = _state()
    f0, _ = mdp.advance(s0, [mdp.Candidate(0, "x", error="no code: no python code block")])
    first = build_messages(f0, PromptSpec("math"))
    assert len(first) == 2 and "could be evaluated" in first[1]["content"]
