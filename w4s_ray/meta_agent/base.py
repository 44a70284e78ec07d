"""The meta-agent interface every backend implements.

`MetaAgent.generate(messages, n, seed=None) -> list[str]` returns n sampled assistant replies to
one chat (a list of {"role", "content"} dicts). Seeding contract: with a seed, sample i is drawn
with seed + i, so a candidate's text depends only on (messages, its own seed) and a resumed run
reproduces it; backends that cannot honour a seed (remote APIs) pass it on as a hint.
`usage` accumulates prompt/completion tokens over the backend's life (for reports).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from w4s_ray.errors import W4SError


@dataclass
class Usage:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


class MetaAgent(ABC):
    """A policy that writes workflows: chat messages in, n sampled replies out."""

    name: str = "meta-agent"

    def __init__(self) -> None:
        self.usage = Usage()

    @abstractmethod
    def generate(
        self, messages: list[dict[str, str]], n: int, *, seed: int | None = None
    ) -> list[str]:
        """n replies to `messages`; sample i uses seed + i when a seed is given."""

    def close(self) -> None:
        """Release models, actors or connections (idempotent); nothing to do by default."""
        return None


def check_messages(messages: list[dict[str, str]]) -> None:
    """Reject malformed chats early with a message that says what is wrong."""

    if not messages:
        raise W4SError("meta-agent: empty message list")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("system", "user", "assistant"):
            raise W4SError(f"meta-agent: message {i} needs role system|user|assistant")
        if not isinstance(msg.get("content"), str):
            raise W4SError(f"meta-agent: message {i} content must be a string")
