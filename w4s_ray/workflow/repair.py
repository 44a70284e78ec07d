"""Turn a failed self-check into the message sent back to the meta-agent.

The repair loop itself (call the meta-agent, extract, self-check again, up to
`rlao.max_repairs` times) belongs to RLAO; this module only writes the text, so every caller
phrases failures the same way. Usage:

    check = await self_check(code, bm, executor, cfg.sandbox, cfg.eval)
    if not check.ok:
        messages = history + [{"role": "assistant", "content": reply},
                              *repair_messages(code, check)]

`failure` may be a `SelfCheck`, an exception (e.g. the `WorkflowError` from extraction) or a
plain string. The text names the error, the failing line of the workflow and the traceback from
the workflow's own frames on, and asks for the complete corrected workflow.
"""

from __future__ import annotations

from typing import Any

MAX_TRACEBACK_CHARS = 3000
MAX_CODE_CHARS = 12000


def describe_failure(failure: Any) -> str:
    """One block of text describing what went wrong."""
    if isinstance(failure, str):
        return f"Error: {failure}"
    if isinstance(failure, BaseException):
        return f"Error: {failure}"
    kind = getattr(failure, "kind", None) or "error"
    error = getattr(failure, "error", None) or kind
    parts = [f"Error ({kind}): {error}"]
    line, text = getattr(failure, "line", None), getattr(failure, "line_text", None)
    if line is not None and text:
        parts.append(f"Failing line {line} of your workflow: `{text}`")
    tb = (getattr(failure, "traceback", "") or "").strip()
    if tb:
        if len(tb) > MAX_TRACEBACK_CHARS:
            tb = "...\n" + tb[-MAX_TRACEBACK_CHARS:]
        parts.append(f"Traceback:\n```\n{tb}\n```")
    hints = {
        "bad_return": "solver must return a dict with the key \"answer\".",
        "timeout": "The workflow took too long on one task; make fewer or cheaper calls.",
        "memory": "The workflow ran out of memory.",
        "crashed": "The process running the workflow died (exit, signal or resource limit).",
        "executor": "A call to the executor model failed; check the arguments of agent calls.",
    }
    if kind in hints:
        parts.append(hints[kind])
    return "\n".join(parts)


def repair_messages(code: str, failure: Any) -> list[dict[str, str]]:
    """The user message(s) asking the meta-agent to fix `code` after `failure`."""
    shown = code if len(code) <= MAX_CODE_CHARS else code[:MAX_CODE_CHARS] + "\n# ... (cut)"
    content = (
        "Your workflow failed when it was run on a validation task.\n\n"
        f"{describe_failure(failure)}\n\n"
        f"The workflow that failed:\n```python\n{shown}\n```\n\n"
        "Carefully consider where it went wrong, fix the error, and reply with the complete "
        "corrected workflow in a single ```python code block that defines "
        "`solver(agent, task)` and returns a dict with the key \"answer\"."
    )
    return [{"role": "user", "content": content}]
