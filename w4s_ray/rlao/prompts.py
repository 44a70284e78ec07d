"""What the meta-agent reads under `rlao.protocol: w4s-ray`: the turn prompt, the validation
feedback, the repair prompt (no Ray, no I/O). The default protocol's text (the authors'
instructions in this project's words) is `rlao.prompts_w4s`, whose `feedback_text` picks the
feedback of either by `eval.feedback`.

Turn prompt (`build_messages`, from an `mdp.State`):
Layout (the w4s-ray prompt: W4S-like structure, shorter instructions): a system message with the role; a first user message
with the workflow interface, the `agent` API the workflow may call (code-execution helpers only
for benchmarks that need them), guidelines, the task description, the archive of example
workflows with their validation feedback (a JSON list, as in W4S) and the required answer
format; then, for each step in the history window, the chosen action as an assistant message
and its validation feedback as a user message.

Only validation results reach the prompt: entries are rendered from an explicit list of fields
(name, code, validation accuracy, feedback), so a test-split number stored on an entry for the
report can never leak into it.

Feedback (`format_feedback`, from a validation `EvalResult`): accuracy, the change against a
previous accuracy, the error histogram and up to k failure cases (question, the workflow's
answer or error, the correct answer, and the scoring note when the value was right but the
official rule rejected its form) sampled reproducibly. The evaluator calls it where the
benchmark lives; the result carries the failed items' questions and answers (`cases`), so it is
a pure function of the result. A test-split result raises `TestSplitLeak`.

Repair prompt (`repair_messages`, from a self-check failure): the error, the failing workflow
line and the traceback from the workflow's own frames on, then a request for the complete
corrected workflow. The repair loop itself (ask, extract, self-check again, up to
`rlao.max_repairs` times) is `loop.Episode`'s.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from w4s_ray.rlao.mdp import ArchiveEntry, State, Step
from w4s_ray.workflow.errors import TestSplitLeak
from w4s_ray.workflow.evaluate import EvalResult

# Long feedback (many failure samples) would crowd out the workflows in small contexts.
MAX_FEEDBACK_CHARS = 3000
MAX_FAILURE_CHARS = 1500
# A meta-agent reply shown again in the history; longer ones are cut (the code is kept whole).
MAX_ACTION_CHARS = 20_000
# A workflow answer shown in a failure case.
MAX_CASE_ANSWER_CHARS = 2000
# Repair prompt: the traceback tail and the failed workflow.
MAX_TRACEBACK_CHARS = 3000
MAX_REPAIR_CODE_CHARS = 12000

SYSTEM_PROMPT = """You design agentic workflows: short Python programs that solve a task by \
calling a strong language model through an `agent` object. You improve them turn by turn.

Each turn, study the workflows tried so far and the feedback they got on the validation set: \
what they did, which questions they got wrong and why. Then propose one better workflow. \
Build on what worked, drop what did not, and try something new when progress stalls \
(more samples with voting, role-specialised calls, decomposition, verification and \
self-refinement, writing and running code). The workflow will finally be judged on held-out \
questions, so improve the method; never special-case the validation questions."""

_API_COMMON = """- `agent.call_llm(messages, temperature=1.0, num_of_response=1, response_format="text", \
max_completion_tokens=4096, agent_role="task solver", instructions="")` -> list
  One call to the strong model. `messages` is a list of {"role": "user"|"assistant", "content": str}.
  Returns `num_of_response` strings (or dicts when `response_format="json"`). A system message
  is built from `agent_role` and `instructions`; do not put one in `messages`.
- `agent.call_json_format_llm(messages, temperature=1.0, num_of_response=1, \
agent_role="task solver", return_dict_keys=[...], instructions="", max_completion_tokens=4096)` \
-> list[dict]
  Like `call_llm`, but every reply is a dict with the keys in `return_dict_keys` (e.g.
  ["reasoning", "answer"]); a key the model left out holds "NO <key> IN DICTIONARY".
  State the expected type or format of each key in `instructions`.
- `agent.extract_answer_str(text)` -> str: the final answer written in a free-text reply."""

_API_CODE_EXEC = """- `agent.execute_code(code, timeout=5)` -> value
  Runs Python source in a separate, time-limited process and returns the value of
  `solution()` when the code defines it, else the value of its last line. Raises on error or
  timeout, so wrap it in try/except and fall back to another method."""

_API_PUBLIC_TESTS = """- `agent.test_on_public_test(task, solution, entry_point, test_loop=3)` -> dict
  Runs the task's PUBLIC tests on `solution` (source of the function `entry_point`); on failure
  asks the model to repair it, up to `test_loop` times. Returns {"result": bool,
  "solution": str, "feedback": ..., "count": int}.
- `agent.extract_code_block(text, entry_point)` -> str: the function source in a reply."""

_GUIDELINES = """- Start your reply with an analysis: what the feedback shows (look at the failed \
validation samples), and what you will change and why.
- Keep the signature `solver(agent, task)` and return a dict whose "answer" holds the final \
answer in the required format.
- Put helper functions and imports inside `solver`.
- Several calls, several rounds and `num_of_response` > 1 with voting are all allowed; each \
call costs money, so spend calls where they help.
- Every call can fail or return something malformed: handle it and still return an answer."""

_FORMAT = """Reply with:
1. Your analysis.
2. Exactly ONE complete Python code block with the new workflow:
```python
def solver(agent, task):
    ...
    return {"answer": answer}
```"""


@dataclass(frozen=True)
class PromptSpec:
    """What the prompt needs about the benchmark beyond the state."""

    kind: str  # "math" | "multiple_choice" | "reading" | "code"
    answer_format: str = ""
    history_window: int = 2


def agent_api(kind: str) -> str:
    parts = [_API_COMMON]
    if kind in ("math", "code"):
        parts.append(_API_CODE_EXEC)
    if kind == "code":
        parts.append(_API_PUBLIC_TESTS)
    return "\n".join(parts)


def _action_text(step: Step) -> str:
    """A past reply as the history shows it; a huge one keeps its analysis head and the code."""
    if len(step.action) <= MAX_ACTION_CHARS:
        return step.action
    return (_clip(step.action, MAX_FAILURE_CHARS) + "\n\nThe workflow of this reply:\n"
            f"```python\n{step.entry.code}\n```")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "\n[... truncated]"


def render_entry(entry: ArchiveEntry) -> dict:
    """The fields of an archive entry a prompt may show (never a test number)."""
    return {
        "name": entry.name,
        "code": entry.code,
        "validation_accuracy": round(float(entry.val_accuracy), 4),
        "feedback": _clip(entry.feedback, MAX_FEEDBACK_CHARS),
    }


def first_user_message(state: State, spec: PromptSpec) -> str:
    archive = json.dumps([render_entry(e) for e in state.examples], indent=1, ensure_ascii=False)
    answer_format = f"\nRequired answer format: {spec.answer_format}" if spec.answer_format else ""
    return (
        "## Workflow interface\n"
        "Write `solver(agent, task) -> dict`. `task` is one question as a string; the returned "
        "dict MUST have the key \"answer\"." + answer_format + "\n\n"
        "## What `agent` offers (keyword arguments)\n" + agent_api(spec.kind) + "\n\n"
        "## Guidelines\n" + _GUIDELINES + "\n\n"
        "## Task\n" + state.task_description.strip() + "\n\n"
        "## Archive: example workflows and their validation feedback\n" + archive + "\n\n"
        "## Answer format\n" + _FORMAT
    )


def observation(step: Step) -> str:
    """The user message after a chosen action: its validation feedback and the change."""
    acc, ref = step.entry.val_accuracy, step.best_before
    if acc > ref:
        change = f"Validation accuracy improved over the best so far: {ref:.2f} -> {acc:.2f}."
    elif acc < ref:
        change = f"Validation accuracy is below the best so far: {acc:.2f} vs {ref:.2f}."
    else:
        change = f"Validation accuracy equals the best so far ({acc:.2f})."
    return (
        "Validation feedback for your workflow:\n\n"
        + _clip(step.entry.feedback, MAX_FEEDBACK_CHARS)
        + f"\n\n{change}\n\nImprove the workflow to raise validation accuracy. "
        "Answer with an analysis and ONE python block."
    )


def failure_note(reason: str) -> str:
    return (
        "Note: in the last turn none of your workflows could be evaluated. First failure:\n"
        + _clip(reason, MAX_FAILURE_CHARS)
        + "\nReply with an analysis and ONE complete python block defining solver(agent, task)."
    )


def build_messages(state: State, spec: PromptSpec) -> list[dict[str, str]]:
    """The exact messages the meta-agent sees for the state's next turn."""
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": first_user_message(state, spec)},
    ]
    for step in state.window(spec.history_window):
        messages.append({"role": "assistant", "content": _action_text(step)})
        messages.append({"role": "user", "content": observation(step)})
    if state.last_failure:
        messages[-1] = {
            "role": "user",
            "content": messages[-1]["content"] + "\n\n" + failure_note(state.last_failure),
        }
    return messages


# ------------------------------------------------------------------------------ feedback


def format_feedback(result: EvalResult, k: int, prev_accuracy: float | None = None, *,
                    seed: int = 0) -> str:
    """w4s-ray feedback (failed cases only) from a VALIDATION result (module docstring)."""
    if result.split == "test":
        raise TestSplitLeak(
            f"format_feedback got a {result.split!r}-split result; feedback is validation-only")
    lines = []
    if result.error:
        lines.append(f"The workflow failed to run: {result.error}")
    lines.append(f"Accuracy on the validation set: {result.accuracy * 100:.1f}% "
                 f"({sum(1 for s in result.scores if s >= 1.0)}/{result.n} fully correct).")
    if prev_accuracy is not None:
        delta = (result.accuracy - prev_accuracy) * 100
        trend = "improved" if delta > 0 else "dropped" if delta < 0 else "did not change"
        lines.append(f"Compared with the previous workflow ({prev_accuracy * 100:.1f}%), "
                     f"accuracy {trend} by {abs(delta):.1f} points.")
    if result.errors:
        hist = ", ".join(f"{kind}: {cnt}" for kind, cnt in sorted(result.errors.items()))
        lines.append(f"Items that raised errors instead of answering: {hist}.")
    cases = {c["index"]: c for c in result.cases}
    failed = [j for j, s in enumerate(result.scores) if s < 1.0 and j in cases]
    picked = sorted(random.Random(seed).sample(failed, min(max(0, k), len(failed))))
    if picked:
        lines.append(f"\nHere are {len(picked)} cases where the workflow was wrong:")
    for num, j in enumerate(picked, 1):
        got = result.answers[j] if result.answers[j] is not None \
            else f"(no answer) {result.item_errors[j]}"
        lines.append(f"\n### Case {num}\n#### Question\n{cases[j]['question']}\n"
                     f"#### Workflow's answer\n{str(got)[:MAX_CASE_ANSWER_CHARS]}")
        if cases[j].get("executor_reply"):  # JSON was asked for; the reply had none usable
            lines.append("#### Executor reply (no usable JSON; excerpt)\n"
                         f"{str(cases[j]['executor_reply'])[:MAX_CASE_ANSWER_CHARS]}")
        lines.append(f"#### Correct answer\n{cases[j]['answer']}")
        hint = result.format_hints[j] if j < len(result.format_hints) else None
        if hint:  # the value was right but the official rule rejected its form
            lines.append(f"#### Scoring note\n{hint}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ repair

_FAILURE_HINTS = {
    "bad_return": "solver must return a dict with the key \"answer\".",
    "timeout": "The workflow took too long on one task; make fewer or cheaper calls.",
    "memory": "The workflow ran out of memory.",
    "crashed": "The process running the workflow died (exit, signal or resource limit).",
    "executor": "A call to the executor model failed; check the arguments of agent calls.",
}


def _field(failure: Any, name: str) -> Any:
    if isinstance(failure, Mapping):
        return failure.get(name)
    return getattr(failure, name, None)


def describe_failure(failure: Any) -> str:
    """One block of text describing what went wrong.

    `failure` is the structured failure of a self-check (`EvalResult.first_failure`, or a
    `workflow.evaluate.SelfCheck`), an exception (e.g. the `WorkflowError` of extraction) or a
    plain string."""
    if isinstance(failure, (str, BaseException)):
        return f"Error: {failure}"
    kind = _field(failure, "kind") or "error"
    error = _field(failure, "error") or kind
    parts = [f"Error ({kind}): {error}"]
    line, text = _field(failure, "line"), _field(failure, "line_text")
    if line is not None and text:
        parts.append(f"Failing line {line} of your workflow: `{text}`")
    tb = (_field(failure, "traceback") or "").strip()
    if tb:
        if len(tb) > MAX_TRACEBACK_CHARS:
            tb = "...\n" + tb[-MAX_TRACEBACK_CHARS:]
        parts.append(f"Traceback:\n```\n{tb}\n```")
    if kind in _FAILURE_HINTS:
        parts.append(_FAILURE_HINTS[kind])
    return "\n".join(parts)


def repair_messages(code: str, failure: Any) -> list[dict[str, str]]:
    """The user message(s) asking the meta-agent to fix `code` after `failure`."""
    shown = code if len(code) <= MAX_REPAIR_CODE_CHARS \
        else code[:MAX_REPAIR_CODE_CHARS] + "\n# ... (cut)"
    content = (
        "Your workflow failed when it was run on a validation task.\n\n"
        f"{describe_failure(failure)}\n\n"
        f"The workflow that failed:\n```python\n{shown}\n```\n\n"
        "Carefully consider where it went wrong, fix the error, and reply with the complete "
        "corrected workflow in a single ```python code block that defines "
        "`solver(agent, task)` and returns a dict with the key \"answer\"."
    )
    return [{"role": "user", "content": content}]
