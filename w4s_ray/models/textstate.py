"""Per-sequence text bookkeeping while tokens arrive one at a time (no torch).

- `IncrementalText`: turns token ids into text deltas without re-decoding the whole sequence
  each step. A delta is held back while the tail decodes to U+FFFD (a multi-byte character
  split across tokens), so streamed deltas concatenate to the final text.
- `StopScan`: finds the first stop string as text grows, and how much text is safe to stream
  (a tail that might still become a stop string is held back, as the OpenAI API does).
- `JsonObjectScan`: tracks brace depth outside JSON strings and reports where the first
  top-level object closes, so a JSON-mode reply ends there instead of running on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class IncrementalText:
    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.text = ""
        self._prefix = 0  # ids[_prefix:_read] is the context decoded again for the next delta
        self._read = 0

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def push(self, token: int) -> str:
        """Append one token; returns the new text it completes ("" while a character is split)."""
        self.ids.append(int(token))
        before = self._decode(self.ids[self._prefix:self._read])
        after = self._decode(self.ids[self._prefix:])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            delta = after[len(before):]
            self._prefix, self._read = self._read, len(self.ids)
            self.text += delta
            return delta
        return ""

    def flush(self) -> str:
        """Whatever is still held back (at the end of the sequence)."""
        before = self._decode(self.ids[self._prefix:self._read])
        after = self._decode(self.ids[self._prefix:])
        delta = after[len(before):] if len(after) > len(before) else ""
        self._prefix = self._read = len(self.ids)
        self.text += delta
        return delta


class StopScan:
    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.longest = max((len(s) for s in self.stops), default=0)

    def find(self, text: str, new_from: int) -> int | None:
        """Index of the earliest stop string that ends at or after `new_from`, else None."""
        if not self.stops:
            return None
        start = max(0, new_from - self.longest + 1)
        hits = [i for i in (text.find(s, start) for s in self.stops) if i >= 0]
        return min(hits) if hits else None

    def safe_len(self, text: str) -> int:
        """Length of the prefix of `text` that can be streamed (no pending partial stop)."""
        for k in range(min(self.longest - 1, len(text)), 0, -1):
            tail = text[-k:]
            if any(s.startswith(tail) for s in self.stops):
                return len(text) - k
        return len(text)


class JsonObjectScan:
    """Where the first top-level JSON object of a reply closes (string- and escape-aware)."""

    def __init__(self) -> None:
        self.depth = 0
        self.started = False
        self.in_string = False
        self.escape = False
        self.broken = False  # the reply did not start with '{': nothing to end early
        self.pos = 0

    def feed(self, chunk: str) -> int | None:
        """Consume `chunk`; the index (in the whole text) just past the closing brace, or None."""
        for ch in chunk:
            self.pos += 1
            if self.broken:
                continue
            if not self.started:
                if ch.isspace():
                    continue
                if ch != "{":
                    self.broken = True
                    continue
                self.started = True
                self.depth = 1
                continue
            if self.in_string:
                if self.escape:
                    self.escape = False
                elif ch == "\\":
                    self.escape = True
                elif ch == '"':
                    self.in_string = False
            elif ch == '"':
                self.in_string = True
            elif ch in "{[":
                self.depth += 1
            elif ch in "}]":
                self.depth -= 1
                if self.depth == 0:
                    return self.pos
        return None
