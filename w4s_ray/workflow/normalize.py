"""Workflow identity: when are two sampled workflows the same program? (no Ray)

A meta-agent that collapses onto one workflow writes it again and again with other comments,
blank lines or docstrings. `normalize_code` maps such copies to one text: the code is parsed and
unparsed (`ast.unparse`), which drops comments and formatting, and statements that are a bare
string constant (docstrings, and string "comments" anywhere) are removed first. Anything that
changes what runs - names, literals, the order of statements - stays, so two workflows that
differ only in a variable name count as two. Code that does not parse falls back to dropping
comments (a `#` outside the quotes of its line) and blank lines and collapsing whitespace, line
by line.

`workflow_key(code)` is a short hash of the normalised text: equal keys, same program.
"""

from __future__ import annotations

import ast
import hashlib

_BODIES = ("body", "orelse", "finalbody")


def _is_bare_string(stmt: ast.stmt) -> bool:
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str))


def normalize_code(code: str) -> str:
    """The code with comments, formatting, docstrings and bare string statements removed."""
    try:
        tree = ast.parse(code)
        for node in ast.walk(tree):
            for field in _BODIES:
                stmts = getattr(node, field, None)
                if not isinstance(stmts, list) or not stmts or not isinstance(stmts[0], ast.stmt):
                    continue
                kept = [s for s in stmts if not _is_bare_string(s)]
                if not kept and field == "body" and not isinstance(node, ast.Module):
                    kept = [ast.Pass()]  # a function that was only a docstring still parses
                setattr(node, field, kept)
        return ast.unparse(tree)
    except (SyntaxError, ValueError, RecursionError):  # untrusted text: NUL bytes, deep nesting
        return _normalize_unparsable(code)


def _strip_comment(line: str) -> str:
    """The line up to a `#` that is outside a quoted string (quotes tracked on this line only)."""
    quote, escaped = "", False
    for i, ch in enumerate(line):
        if escaped:
            escaped = False
        elif ch == "\\" and quote:
            escaped = True
        elif quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line


def _normalize_unparsable(code: str) -> str:
    lines = (" ".join(_strip_comment(line).split()) for line in code.splitlines())
    return "\n".join(line for line in lines if line)


def workflow_key(code: str) -> str:
    """16 hex digits identifying the normalised program."""
    return hashlib.sha256(normalize_code(code).encode("utf-8")).hexdigest()[:16]
