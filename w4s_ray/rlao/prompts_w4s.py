"""What the meta-agent reads under `rlao.protocol: w4s` (no Ray, no I/O): the trajectory chat,
the validation feedback, the observation after a chosen reply and the repair message.

Every instruction of the authors' GSM-Hard prompt (fannie1208/W4S `src/tasks/gsmhard/prompt.py`,
`SYSTEM` and `USER`) is here in this project's own words; `tests/rlao/test_prompts_w4s.py`
renders each benchmark's first-turn prompt and checks each one is present:

- system: the role (improve agentic workflows from their feedback; analyse what worked and
  what did not; build on successes, explore new approaches, keep the system stable);
- the workflow interface `solver(agent, task: str) -> dict` with the final answer under
  "answer", and the required answer format;
- the agent API upstream offers (`call_json_format_llm` and `execute_code` on GSM-Hard; the
  public-test helpers on code benchmarks);
- the guidelines: analyse first, with case studies of LOW-SCORE validation cases; do not
  overfit (a held-out test set decides); keep the input/output contract; no unnecessary
  changes; message roles user/assistant only and no system message; several calls and rounds;
  `num_of_response` for several outputs; ALWAYS set `agent_role` and `instructions`; state the
  format (int, float, enum, list) of every key in the instructions; improve prompts from the
  task description, the inputs/outputs in the cases, roles and techniques; explore other
  methods when performance stalls; change `return_dict_keys` to get other outputs;
- the execute-code fallback recipe (more generations and executions, self-consistency, fall
  back to direct reasoning when execution fails, several fallbacks);
- the techniques: Chain-of-Thought, self-consistency, LLM debate, dynamic role assignment, task
  decomposition, reflective evaluation, iterative refinement, code generation, combinations;
- the task description with an example (GSM-Hard: with an example solution);
- the archive (examples + the last generated workflow; feedback on the last entry only) and
  the output format (analysis, then the whole `solver` in one python block, helpers and imports
  inside it).

Feedback (`format_feedback`): the validation accuracy and `eval.failure_samples` (10) cases
drawn at random from ALL evaluated items, correct ones included, each with its question, the
workflow's answer, the correct answer and whether it was right (plus the scoring note when the
value was right but the official rule rejected its form). The draw is seeded by the workflow
and its items (`feedback_seed`), so a resumed run shows the same cases; upstream draws with an
unseeded RNG. Only validation (or collection-split) results: a test result raises.

Repair (`repair_message`): the error of the failed evaluation (kind, message, traceback,
failing line) and upstream's instruction to fix the root cause with no try/except blocks.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any

from w4s_ray.rlao import prompts as rolling
from w4s_ray.rlao.mdp import ArchiveEntry
from w4s_ray.rlao.prompts import MAX_CASE_ANSWER_CHARS, MAX_TRACEBACK_CHARS, describe_failure
from w4s_ray.rlao.w4s import State, Step
from w4s_ray.workflow.errors import TestSplitLeak
from w4s_ray.workflow.evaluate import EvalResult

MAX_CASE_QUESTION_CHARS = 3000

SYSTEM_PROMPT = """You are an expert in improving agentic systems built on large language \
models: prompting techniques and current agent architectures. Your job is to evolve and \
optimise an agentic system, written as Python code, through better prompts, strategies and \
structure, so that it performs better turn after turn.

Work from evidence. Study the earlier systems and the feedback they received on the \
validation set, and work out what helped, what did not, and why. Turn those insights into \
targeted changes while keeping the system stable. Explore new architectures and techniques \
with good reason: each version should build on what has already worked and try promising new \
directions, drawing on research on LLM agents and related fields."""

_API_JSON = """  + `agent.call_json_format_llm(messages, temperature, num_of_response, agent_role, \
return_dict_keys, instructions)`: one call to the strong model; returns a list of \
`num_of_response` dictionaries, each holding the keys listed in `return_dict_keys`."""

_API_EXEC = """  + `agent.execute_code(code)`: runs a string of Python code and returns the value \
that its `solution()` function returns. The code MUST define `solution()`. When the code fails \
(or uses a refused construct such as `while`, file or OS access, or plotting), it raises an \
exception instead."""

_API_CODE = """  + `agent.test_on_public_test(task, solution, entry_point, test_loop=3)`: runs the \
task's PUBLIC tests on `solution` (the source of the function `entry_point`) and, when they \
fail, asks the strong model to repair it, up to `test_loop` times; returns \
{"result": bool, "solution": str, "feedback": ..., "count": int}.
  + `agent.extract_code_block(text, entry_point)`: the source of function `entry_point` in a \
reply ("" when absent)."""

GUIDELINES = """### **Guidelines**:

+ **Analyse before you change anything**:
    + Always begin with an analysis before you modify the code of `solver`.
    + The analysis can cover a plan for raising performance, **case studies of the LOW-SCORE \
validation cases in the evaluation feedback**, and other ways to solve the task.
    + The final system is judged on a held-out test set, so do NOT overfit to the validation \
cases shown in the feedback.
+ **How to improve `solver`**:
    + Keep the input and the output of the function exactly as they are.
    + Make no unnecessary changes.
    + In `messages`, a `role` may only be `user` or `assistant`. Never put a system prompt in \
`messages`: the system prompt is built from `agent_role` and `instructions` when \
`call_json_format_llm` is called.
    + You may call `call_json_format_llm` several times, over several rounds, inside `solver`.
    + When you need several outputs, set `num_of_response` to the number you need.
    + You may use several LLMs in different roles; you MUST always set `agent_role` and \
`instructions` in every call.
    + When a key needs a particular format (int, float, an enum value, a list, ...), the \
`instructions` must state that format for that key.
    + Improve the prompts using the task description, the task inputs and outputs shown in the \
validation cases, the LLM roles and the techniques below.
    + Change `return_dict_keys` to get different outputs, e.g. \
`return_dict_keys=["reasoning", "answer"]` for reasoning plus an answer, or \
`return_dict_keys=["reasoning", "code"]` for reasoning plus code.
    + If performance does not improve, explore other methods.
    + Use `agent.execute_code(code)` to run code that the LLM wrote. When execution fails, \
handle it gracefully; a good recipe:
        1. generate and execute code more than once;
        2. combine code execution with self-consistency (vote over several runs);
        3. when execution fails, fall back to answering by direct LLM reasoning with \
`call_json_format_llm`;
        4. optionally chain several fallbacks that use different prompting techniques.
    + Techniques worth exploring:
        + **Chain-of-Thought**: reason through the problem step by step; add `reasoning` to \
`return_dict_keys` to get the model's reasoning.
        + **Self-consistency**: sample several answers (raise `num_of_response`) and keep the \
most consistent one, e.g. by majority vote.
        + **LLM Debate**: several models or roles critique and refine each other's answers \
over rounds.
        + **Dynamic Assignment of Roles**: choose and adjust the roles of the LLM calls to fit \
the task and its sub-steps.
        + **Task Decomposition**: split the task into smaller subtasks, solve each, and combine \
their solutions.
        + **Reflective Evaluation**: review an answer after producing it, find what is right \
and wrong, and use that to improve.
        + **Iterative Refinement**: revise the answer repeatedly using feedback on the previous \
version.
        + **Code Generation**: have the LLM write executable Python code (calculations, \
algorithms) and run it; useful for exact computation and algorithmic problems.
    + Techniques can be combined."""

OUTPUT_FORMAT = """### Output Format
Reply with:
1. Your analysis.

2. The complete new `solver` in ONE Python code block, exactly in this form:
```python
def solver(agent, task: str):
    \"\"\"
    Solve the task with `agent` (call the strong model with `agent.call_json_format_llm`).
    Put every helper function and import inside this function.
    \"\"\"
    return return_dict
```"""

_REPAIR = """The workflow raised an error while it was evaluated on the validation tasks:
{error}

IMPORTANT: do NOT add any try/except blocks. Fix the root cause of the error instead of \
catching it.

What to do:
1. Read the error message closely.
2. Explain exactly what has to change to remove its cause.
3. Write a clean implementation that solves the problem directly.
4. Include no error handling and no try/except blocks.

Reply strictly in this format:

[your analysis]

Code:
```python
def solver(agent, task: str):
    \"\"\"
    Your implementation.
    \"\"\"
    return return_dict
```"""


@dataclass(frozen=True)
class PromptSpec:
    """What the w4s prompt needs about the benchmark beyond the state."""

    kind: str  # "math" | "multiple_choice" | "reading" | "code"
    answer_format: str = ""


def agent_api(kind: str) -> str:
    """The agent methods the prompt offers for a kind of benchmark (upstream's GSM-Hard set:
    call_json_format_llm and execute_code; code benchmarks add the public-test helpers)."""
    parts = [_API_JSON, _API_EXEC]
    if kind == "code":
        parts.append(_API_CODE)
    return "\n".join(parts)


def render_entry(entry: ArchiveEntry, with_feedback: bool) -> dict:
    """An archive entry as the prompt shows it (never a test number)."""
    out = {"name": entry.name, "validation_accuracy": round(float(entry.val_accuracy), 4),
           "code": entry.code}
    if with_feedback:
        out["feedback"] = entry.feedback
    return out


def archive_json(archive: tuple[ArchiveEntry, ...]) -> str:
    """The archive as a JSON list, one entry per line; only the LAST entry carries feedback."""
    lines = [json.dumps(render_entry(e, with_feedback=i == len(archive) - 1), ensure_ascii=False)
             for i, e in enumerate(archive)]
    return "[\n" + ",\n".join(lines) + "\n]"


def first_user_message(state: State, spec: PromptSpec) -> str:
    answer_format = (f"\n- Required answer format: {spec.answer_format}"
                     if spec.answer_format else "")
    return (
        "### **Agentic System Interface**:\n"
        "The function to optimise: `solver(agent, task: str) -> dict`\n"
        "- What it does: solves one task of the target benchmark with the given agent.\n"
        "- Input: `task` (str), the question to solve.\n"
        "- Output: a dictionary; the final answer MUST be under the key \"answer\"."
        + answer_format + "\n"
        "- Agent API available to `solver`:\n" + agent_api(spec.kind) + "\n\n"
        + GUIDELINES + "\n\n"
        "### Task Description\nThe agentic system you design must solve this task:\n\n"
        + state.task_description.strip() + "\n\n"
        "### Archive of Agentic Systems\n"
        "The systems tried so far with their validation accuracy ('code' is the source of "
        "their `solver`); the last one also carries its evaluation feedback: the accuracy and "
        "randomly drawn validation cases.\n\n" + archive_json(state.archive) + "\n\n"
        + OUTPUT_FORMAT
    )


def observation(feedback: str, accuracy: float, reference_best: float) -> str:
    """The user message after a chosen reply: its feedback and the change against the
    trajectory's reference best (upstream `_construct_feedback`)."""
    if accuracy > reference_best:
        change = f"Validation accuracy increased from {reference_best:.2f} to {accuracy:.2f}."
    elif accuracy < reference_best:
        change = f"Validation accuracy decreased from {reference_best:.2f} to {accuracy:.2f}."
    else:
        change = f"Validation accuracy is unchanged at {accuracy:.2f}."
    return ("The evaluation feedback of the agentic system you proposed:\n\n" + feedback
            + f"\n\n{change}\n\nImprove the agentic system to raise its validation accuracy.\n")


def step_observation(step: Step) -> str:
    return observation(step.entry.feedback, step.entry.val_accuracy, step.reference_best)


def build_messages(state: State, spec: PromptSpec) -> list[dict[str, str]]:
    """The exact chat of the state's next turn: the trajectory's reset messages, then the
    chosen reply and its observation for each turn completed in this trajectory."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": first_user_message(state, spec)}]
    for step in state.steps:
        messages.append({"role": "assistant", "content": step.action})
        messages.append({"role": "user", "content": step_observation(step)})
    return messages


# ------------------------------------------------------------------------------ feedback


def feedback_seed(code: str, item_ids: list[str]) -> int:
    """The case-sampling seed of an evaluation: a function of the workflow and its items."""
    key = json.dumps([code, list(item_ids)]).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


def format_feedback(result: EvalResult, k: int, *, seed: int = 0) -> str:
    """Upstream-style feedback from a validation (or collection-split) result (module doc)."""
    if result.split == "test":
        raise TestSplitLeak("format_feedback got a 'test'-split result; feedback is "
                            "validation-only")
    correct = sum(1 for s in result.scores if s >= 1.0)
    lines = [f"Validation accuracy: {result.accuracy:.4f} ({correct} of {result.n} items "
             "correct)"]
    if result.error:
        lines.insert(0, f"The workflow failed to run: {result.error}")
    cases = {c["index"]: c for c in result.cases}
    pool = [j for j in range(len(result.scores)) if j in cases]
    picked = sorted(random.Random(seed).sample(pool, min(max(0, k), len(pool))))
    if picked:
        lines.append(f"Evaluation cases ({len(picked)} drawn at random from the {result.n} "
                     "evaluated items):")
    for num, j in enumerate(picked, 1):
        got = result.answers[j] if result.answers[j] is not None \
            else f"(no answer) {result.item_errors[j]}"
        ok = "yes" if result.scores[j] >= 1.0 else (
            "no" if result.scores[j] <= 0.0 else f"partly (score {result.scores[j]:.2f})")
        reply = cases[j].get("executor_reply")  # JSON was asked for; the reply had none usable
        seen = (f"Executor reply (no usable JSON; excerpt): "
                f"{str(reply)[:MAX_CASE_ANSWER_CHARS]}\n" if reply else "")
        lines.append(f"\n### Case {num}\nQuestion:\n{_clip(str(cases[j]['question']))}\n"
                     f"Workflow's answer: {str(got)[:MAX_CASE_ANSWER_CHARS]}\n"
                     f"{seen}Correct answer: {cases[j]['answer']}\nCorrect: {ok}")
        hint = result.format_hints[j] if j < len(result.format_hints) else None
        if hint:  # the value was right but the official rule rejected its form
            lines.append(f"Scoring note: {hint}")
    return "\n".join(lines)


def feedback_text(result: EvalResult, style: str, k: int, *, code: str = "") -> str:
    """The feedback of `eval.feedback` style: "w4s" (this module's `format_feedback`, seeded by
    the workflow and its items) or "w4s-ray" (failed cases, `prompts.format_feedback`)."""
    if style == "w4s":
        return format_feedback(result, k, seed=feedback_seed(code, result.item_ids))
    return rolling.format_feedback(result, k)


def _clip(text: str) -> str:
    if len(text) <= MAX_CASE_QUESTION_CHARS:
        return text
    return text[:MAX_CASE_QUESTION_CHARS] + " [... truncated]"


# ------------------------------------------------------------------------------ repair


def error_text(failure: Any) -> str:
    """The error of a failed attempt as the repair message shows it: kind, message, the
    failing workflow line and the traceback (upstream: the traceback plus the failing line)."""
    text = describe_failure(failure)
    return text if len(text) <= 2 * MAX_TRACEBACK_CHARS else text[-2 * MAX_TRACEBACK_CHARS:]


def repair_message(failure: Any) -> dict[str, str]:
    """The user message that asks for a repair (upstream's no-try/except instruction)."""
    return {"role": "user", "content": _REPAIR.format(error=error_text(failure))}


def splice(original: str, code: str) -> str:
    """The stored action: the ORIGINAL reply with its last python block replaced by `code` (the
    workflow that was finally evaluated, possibly repaired), as upstream stores it. A reply
    without a python block gets the code appended in one (upstream appends a placeholder)."""
    start = original.rfind("```python")
    end = original.find("```", start + len("```python")) if start != -1 else -1
    if start == -1 or end == -1:
        return f"{original}\n```python\n{code.rstrip()}\n```"
    return original[:start + len("```python")] + "\n" + code.strip("\n") + "\n" + original[end:]
