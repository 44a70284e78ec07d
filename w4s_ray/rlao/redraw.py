"""Drawing a turn's m candidates so that they are m different programs (`rlao.redraw_repeats`).

A meta-agent that writes a workflow already evaluated - a seed it was shown, an earlier turn's
choice, or another candidate of the same draw - spends a full validation evaluation to learn
nothing, and a turn whose m candidates are copies cannot beat what it copied. With
`rlao.redraw_repeats = k > 0`, every reply whose workflow (`workflow.normalize.workflow_key`:
comments, formatting and docstrings ignored) repeats a known one is drawn again, up to k rounds,
each round one `generate` call for all the repeats with its own derived seed; a repeat is
replaced only by a reply holding a new program. A first-draw reply with no extractable
workflow is not a repeat (it is left to repair). Whatever still repeats after k rounds is kept
as drawn: the turn still has m candidates.

Upstream samples once and evaluates every copy; the default (0) does the same. This module is
plain code (no Ray): `generate` is any callable `(messages, n, seed) -> replies`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from w4s_ray.rlao.candidates import derive_seed, texts
from w4s_ray.workflow.normalize import workflow_key


@dataclass
class Draw:
    replies: list[str]   # m replies, repeats replaced where a redraw found a new program
    seeds: list[int]     # the seed of the draw each reply came from, + its index in it
    redrawn: int = 0     # replies replaced by a redraw
    repeats_left: int = 0  # replies that still repeat a known workflow


def known_codes(state) -> list[str]:
    """Workflows the state has already evaluated: its seeds and every turn's choice
    (`mdp.State`: examples + history; `w4s.State`: examples + generated)."""
    codes = [e.code for e in getattr(state, "examples", ())]
    codes += [s.entry.code for s in getattr(state, "history", ())]
    codes += [e.code for e in getattr(state, "generated", ())]
    return [c for c in codes if c]


def _key(reply: str, extract: Callable[[str], tuple]) -> str | None:
    code = extract(reply)[0] if reply else None
    return workflow_key(code) if code else None


def draw_distinct(generate: Callable[..., Sequence], messages: list[dict], m: int, seed: int,
                  known: Iterable[str], rounds: int,
                  extract: Callable[[str], tuple]) -> Draw:
    """m replies on `messages`; with `rounds` > 0, repeats of `known` code or of an earlier
    reply are drawn again (module docstring)."""
    replies = texts(generate(messages, m, seed=seed))
    replies += [""] * (m - len(replies))
    replies = replies[:m]
    draw = Draw(replies, [seed + i for i in range(m)])
    if rounds <= 0:
        return draw
    seen = {workflow_key(c) for c in known}
    repeats = []
    for i, reply in enumerate(replies):
        key = _key(reply, extract)
        if key is None:
            continue
        if key in seen:
            repeats.append(i)
        else:
            seen.add(key)
    for r in range(rounds):
        if not repeats:
            break
        rseed = derive_seed(seed, "redraw", r)
        fresh = texts(generate(messages, len(repeats), seed=rseed))
        still = []
        for j, i in enumerate(repeats):
            reply = fresh[j] if j < len(fresh) else ""
            key = _key(reply, extract)
            if key is None or key in seen:  # a repeat again, or no program: keep the repeat
                still.append(i)
                continue
            seen.add(key)
            draw.replies[i], draw.seeds[i] = reply, rseed + j
            draw.redrawn += 1
        repeats = still
    draw.repeats_left = len(repeats)
    return draw
