"""Fitting a meta-agent chat into a token budget (no Ray, no torch): one rule for sampling and
training.

A W4S chat is: system prompt(s), the first user message (the task: benchmark, API, current
workflow), then history turns (assistant reply, user feedback), ending with the latest user
message. When the chat's tokens exceed a budget:

1. whole history messages are dropped, oldest first (`drop_history`): everything between the
   task and the last message may go, never the system prompt, the task or the last message
   (and not the last reply when the chat template refuses two user messages side by side);
2. if that is still too long, the token sequence keeps its head (system prompt + task) and as
   much of its end as fits, dropping tokens from the middle (`head_tail`); the end keeps at least
   `min_tail` tokens (the generation prompt / latest feedback) even when that means cutting
   into the task;
3. a budget smaller than `min_tail` keeps only the last tokens (plain left truncation).

`fit_chat` applies the whole rule; every place that shortens a meta-agent prompt calls it: the
local meta-agent backend (`meta_agent.local_backend`), `w4s serve` with `truncate_prompt`
(`serve.generation`, `serve.vllm_engine`), RWR training (`train.rwr`, on the prompt before the
candidate) and the tiny model's warm start and parse rate (`train.warmstart`). So a model is
trained on prompts shaped like the ones it samples from. Callers tokenise (they pass their chat
encoder); this module only decides what to keep.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

MIN_TAIL = 64

# (messages, add_generation_prompt) -> token ids: the caller's chat-template encoder.
Encoder = Callable[[list[dict[str, str]], bool], list[int]]


@dataclass(frozen=True)
class Fitted:
    """What `fit_chat` kept: `messages` (history dropped), their full encoding `ids` (generation
    prompt included, not yet cut), the head length in tokens (system prompt + task) and how
    many tokens of `ids` to keep at the front and back (`cut`)."""

    messages: list[dict[str, str]]
    ids: list[int]
    head: int
    keep_head: int
    keep_tail: int
    dropped: int

    @property
    def truncated(self) -> bool:
        return self.dropped > 0 or self.keep_head + self.keep_tail < len(self.ids)

    def fitted_ids(self) -> list[int]:
        return cut(self.ids, self.keep_head, self.keep_tail)


def fit_chat(messages: Sequence[dict[str, str]], encode: Encoder, budget: int,
             min_tail: int = MIN_TAIL) -> Fitted:
    """The module's rule applied to `messages` for a `budget`-token prompt."""
    msgs = list(messages)
    ids = encode(msgs, True)
    if len(ids) <= budget:
        return Fitted(msgs, ids, len(ids), len(ids), 0, 0)
    msgs, dropped = drop_history(msgs, lambda m: len(encode(m, True)) <= budget)
    if dropped:
        ids = encode(msgs, True)
    head = common_prefix(ids, encode(msgs[:head_count(msgs)], False))
    keep_head, keep_tail = head_tail(len(ids), head, budget, min_tail)
    return Fitted(msgs, ids, head, keep_head, keep_tail, dropped)


def head_count(messages: Sequence[dict[str, str]]) -> int:
    """Messages that are never dropped at the front: leading system messages + the first user
    message (the task)."""
    k = 0
    while k < len(messages) and messages[k]["role"] == "system":
        k += 1
    if k < len(messages) and messages[k]["role"] == "user":
        k += 1
    return k


def drop_history(messages: list[dict[str, str]], fits: Callable[[list[dict[str, str]]], bool]
                 ) -> tuple[list[dict[str, str]], int]:
    """`messages` with the oldest history messages removed until `fits(messages)` (or nothing
    is left to remove): (kept messages, number dropped). Assistant reply + following user
    feedback go together, so the chat keeps alternating where it did. The last reply alone
    between the task and the latest feedback goes too (user, user is what most templates,
    ChatML among them, accept), unless the encoder refuses the chat without it (`fits` raises
    `ValueError`, as `models.chat.encode_chat` does for a template that requires alternating
    roles): then it stays and `head_tail` cuts into it."""
    head = head_count(messages)
    msgs = list(messages)
    dropped = 0
    ok = fits(msgs)
    while not ok and len(msgs) - 1 > head:
        # History lives in msgs[head:-1]; drop its oldest turn (a reply and its feedback).
        n = 2 if len(msgs) - 1 - head >= 2 and msgs[head]["role"] == "assistant" else 1
        trial = msgs[:head] + msgs[head + n:]
        try:
            ok = fits(trial)
        except ValueError:
            break
        msgs = trial
        dropped += n
    return msgs, dropped


def head_tail(length: int, head: int, budget: int, min_tail: int = MIN_TAIL) -> tuple[int, int]:
    """How many tokens to keep from the front and from the back of a `length`-token sequence
    whose first `head` tokens are the system prompt + task, to fit `budget` tokens."""
    if length <= budget:
        return length, 0
    if budget <= min_tail:
        return 0, budget
    keep_head = min(head, budget - min_tail)
    return keep_head, budget - keep_head


def cut(seq: Sequence, keep_head: int, keep_tail: int) -> list:
    """`seq` with the middle removed: its first `keep_head` and last `keep_tail` items."""
    if keep_head + keep_tail >= len(seq):
        return list(seq)
    return list(seq[:keep_head]) + (list(seq[len(seq) - keep_tail:]) if keep_tail else [])


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
