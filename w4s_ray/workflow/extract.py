"""Take the workflow out of a meta-agent's reply and check it is a usable `solver(agent, task)`.

Pure text and `ast` work: nothing is executed. The meta-agent writes prose around one or more
fenced blocks; the workflow is the LAST fenced block (```python or a bare ```) that defines a
function `solver`. A missing closing fence at the very end (the model ran out of tokens after
the code, or stopped at the fence) is tolerated; CRLF line ends are normalised.

Errors are `WorkflowError` with one precise line, because they are shown to the meta-agent as
repair feedback: "no python code block", "syntax error at line N: ...", "no function named
solver", "solver must take exactly (agent, task)".
"""

from __future__ import annotations

import ast
import re

from w4s_ray.workflow.errors import WorkflowError

# An opening fence: ``` followed by an optional language tag and the end of the line.
_OPEN = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+.-]*)[ \t]*$")
_CLOSE = re.compile(r"^[ \t]*```[ \t]*$")
_PY_TAGS = {"", "python", "py", "python3"}


def code_blocks(text: str) -> list[str]:
    """All fenced blocks tagged python/py or untagged, in order; an unclosed last block counts."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    blocks: list[str] = []
    i = 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        tag = m.group(1).lower()
        body: list[str] = []
        i += 1
        while i < len(lines) and not _CLOSE.match(lines[i]):
            body.append(lines[i])
            i += 1
        i += 1  # past the closing fence (or past the end when it is missing)
        if tag in _PY_TAGS:
            blocks.append("\n".join(body).strip("\n") + "\n")
    return blocks


def _solver_def(tree: ast.Module) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    found = None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "solver":
            found = node  # the last definition wins, as at run time
    return found


def _defines_solver(code: str) -> bool:
    try:
        return _solver_def(ast.parse(code)) is not None
    except SyntaxError:
        return bool(re.search(r"^\s*(async\s+)?def\s+solver\s*\(", code, re.M))


def check_workflow(code: str) -> str:
    """Parse `code` and check its `solver` signature; return the code or raise WorkflowError."""
    try:
        tree = ast.parse(code, filename="<workflow>")
    except SyntaxError as exc:
        msg = exc.msg or "invalid syntax"
        raise WorkflowError(f"syntax error at line {exc.lineno}: {msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        raise WorkflowError(f"syntax error at line 1: {type(exc).__name__}: {exc}") from None
    fn = _solver_def(tree)
    if fn is None:
        raise WorkflowError("no function named solver")
    a = fn.args
    positional = [arg.arg for arg in a.posonlyargs + a.args]
    if (
        len(positional) != 2
        or a.vararg is not None
        or a.kwarg is not None
        or a.kwonlyargs
        or a.defaults
    ):
        got = ", ".join(positional + ([f"*{a.vararg.arg}"] if a.vararg else [])
                        + [k.arg for k in a.kwonlyargs]
                        + ([f"**{a.kwarg.arg}"] if a.kwarg else []))
        raise WorkflowError(f"solver must take exactly (agent, task); got ({got})")
    return code


def extract_workflow(text: str) -> str:
    """The workflow code in a meta-agent reply (see module docstring). Raises WorkflowError."""
    if not isinstance(text, str):
        raise WorkflowError(f"meta-agent output must be text, got {type(text).__name__}")
    blocks = code_blocks(text)
    if not blocks or not any(b.strip() for b in blocks):
        raise WorkflowError("no python code block")
    with_solver = [b for b in blocks if _defines_solver(b)]
    # Fall back to the last block so its own problem (syntax, missing solver) is what we report.
    return check_workflow(with_solver[-1] if with_solver else blocks[-1])
