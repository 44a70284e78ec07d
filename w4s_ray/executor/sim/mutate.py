"""Plausible bugs for the simulator's wrong code answers: small AST mutations of a reference.

Each mutation is one a person makes: an off-by-one in a constant or a range bound, a flipped or
weakened comparison, `+` for `-`, `and` for `or`, or a dropped early-return edge case. The
mutant is not checked against the tests here (that would mean running code in the simulator);
most such mutants fail hidden tests, a few survive, as with real near-miss programs.
"""

from __future__ import annotations

import ast
import random

_CMP_SWAP = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
}


def _sites(tree: ast.AST) -> list[tuple[str, ast.AST]]:
    sites: list[tuple[str, ast.AST]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and type(node.ops[0]) in _CMP_SWAP:
            sites.append(("cmp", node))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
            sites.append(("arith", node))
        elif isinstance(node, ast.BoolOp):
            sites.append(("bool", node))
        elif (isinstance(node, ast.Constant) and type(node.value) is int
              and not isinstance(node.value, bool)):
            sites.append(("const", node))
        elif isinstance(node, ast.If) and any(isinstance(s, ast.Return) for s in node.body):
            sites.append(("drop_if", node))
    return sites


def _apply(kind: str, node: ast.AST, tree: ast.AST) -> bool:
    if kind == "cmp":
        node.ops[0] = _CMP_SWAP[type(node.ops[0])]()
    elif kind == "arith":
        node.op = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
    elif kind == "bool":
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif kind == "const":
        node.value = node.value + 1
    elif kind == "drop_if":
        for parent in ast.walk(tree):
            for fname in ("body", "orelse"):
                body = getattr(parent, fname, None)
                if isinstance(body, list) and node in body and len(body) > 1:
                    body.remove(node)
                    return True
        return False
    return True


def mutants(source: str, seed: int, count: int = 3) -> list[str]:
    """Up to `count` distinct buggy variants of `source` (deterministic for a seed)."""
    try:
        base = ast.unparse(ast.parse(source))
    except SyntaxError:
        return [source.replace("return ", "return not ", 1)] if "return " in source else []
    rng = random.Random(seed)
    out: list[str] = []
    n_sites = len(_sites(ast.parse(source)))
    order = list(range(n_sites))
    rng.shuffle(order)
    for pick in order:
        tree = ast.parse(source)
        kind, node = _sites(tree)[pick]
        if not _apply(kind, node, tree):
            continue
        try:
            text = ast.unparse(ast.fix_missing_locations(tree))
        except Exception:  # noqa: BLE001 - an unparsable mutant is simply skipped
            continue
        if text != base and text not in out:
            out.append(text)
        if len(out) >= count:
            break
    return out
