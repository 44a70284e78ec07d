"""The W4S `execute_code` guard (`eval.execute_code_guard`, on under `rlao.protocol: w4s`).

Upstream (fannie1208/W4S `src/agent/executor_agent.py` `Agent.execute_code`, and
`src/utils/sanitize.py` `has_probable_infinite_loop`) refuses a snippet before running it when
its text contains any of a list of substrings, or when an AST check finds a probable infinite or
blocking loop. This module reproduces both checks, with upstream's plain substring semantics
(so `evaluate` is refused for containing "eval", as upstream refuses it): a refused snippet
never starts a process, and the workflow gets an error it can catch.

It is a behavioural rule of the method, not the security boundary: the nested sandbox
(`nested.py`, audit hook, rlimits, namespaces) is what contains code that passes it.
"""

from __future__ import annotations

import ast

# Upstream's list, in its order.
UNSAFE_PATTERNS = (
    "import os", "import sys", "import subprocess",
    "eval", "exec", "open", "__import__",
    "system", "popen", "spawn", "while", "input()",
    "matplotlib", "plt", "figure", "plot",
)
_BLOCKING_CALLS = {"input", "raw_input", "stdin.read", "stdin.readline"}
_BLOCKING_METHODS = {"read", "readline", "accept"}


class _LoopCheck(ast.NodeVisitor):
    def __init__(self) -> None:
        self.found = False

    def visit_While(self, node: ast.While) -> None:
        if isinstance(node.test, ast.Constant) and node.test.value is True \
                and not any(isinstance(n, ast.Break) for n in ast.walk(node)):
            self.found = True
        if not any(isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
                   for n in ast.walk(node)):
            self.found = True
        self.generic_visit(node)

    def visit_For(self, node: ast.For) -> None:
        if isinstance(node.iter, ast.Constant):
            self.found = True
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id in _BLOCKING_CALLS:
            self.found = True
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name) and node.attr in _BLOCKING_METHODS:
            self.found = True
        self.generic_visit(node)


def probable_infinite_loop(code: str) -> bool:
    """Upstream's AST heuristic: `while True` without break, a while loop that assigns nothing,
    a for loop over a constant, or a blocking call (input, .read, .readline, .accept). Code
    that does not parse is not flagged (running it reports the SyntaxError)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    check = _LoopCheck()
    check.visit(tree)
    return check.found


def refusal(code: str) -> str | None:
    """Why the guard refuses `code`, or None when it may run."""
    for pattern in UNSAFE_PATTERNS:
        if pattern in code:
            return (f"unsafe operation detected in code: it contains {pattern!r} (execute_code "
                    "refuses while loops, eval/exec, open, os/sys/subprocess, input and "
                    "plotting)")
    if probable_infinite_loop(code):
        return ("potential infinite loop detected in code (a loop that may never end, or a "
                "blocking read)")
    return None
