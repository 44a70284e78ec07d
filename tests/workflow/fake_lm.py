"""A deterministic fake executor for workflow tests: no network, no randomness.

`FakeLM(reply)` answers each request with `reply(messages, temperature, sample_index,
occurrence)`; by default it echoes a JSON object whose "answer" is `answer_for(question)`.
It records every request, so tests can check what actually reached the executor.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from w4s_ray.errors import BudgetExceeded, ExecutorError


@dataclass
class FakeResult:
    texts: list[str]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    cached: list[bool] = field(default_factory=list)


class FakeLM:
    def __init__(self, reply: Callable[..., str] | None = None, *, fail: str | None = None,
                 budget_after: int | None = None) -> None:
        self.reply = reply or (lambda msgs, t, j, occ: json.dumps(
            {"reasoning": "fake", "answer": "0"}))
        self.fail = fail
        self.budget_after = budget_after
        self.requests: list[dict[str, Any]] = []

    async def chat(self, messages, temperature=None, n=1, response_format=None,
                   max_tokens=None, occurrence=0, tags=None) -> FakeResult:
        self.requests.append({"messages": messages, "temperature": temperature, "n": n,
                              "response_format": response_format, "max_tokens": max_tokens,
                              "occurrence": occurrence, "tags": tags})
        if self.budget_after is not None and len(self.requests) > self.budget_after:
            raise BudgetExceeded("fake budget spent")
        if self.fail:
            raise ExecutorError(self.fail)
        texts = [self.reply(messages, temperature, j, occurrence) for j in range(n)]
        return FakeResult(texts, prompt_tokens=10 * n, completion_tokens=5 * n,
                          cost_usd=0.001 * n, cached=[False] * n)


def question_of(messages: list[dict]) -> str:
    return messages[-1]["content"]
