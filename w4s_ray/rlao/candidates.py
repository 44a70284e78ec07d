"""What both turn loops share (no Ray): sampling seeds, a candidate's bookkeeping, extraction of
its workflow, the task spec and the trajectory row of one candidate.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from w4s_ray.rlao.evaluation import EvalResult
from w4s_ray.workflow.errors import WorkflowError
from w4s_ray.workflow.extract import extract_workflow

NO_CODE = "no code"


def derive_seed(base: int, *parts: object) -> int:
    """A stable 62-bit seed for (base, parts...): same inputs, same seed, in any process."""
    key = json.dumps([int(base), *[str(p) for p in parts]]).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") >> 2


@dataclass(frozen=True)
class TaskSpec:
    """What an episode needs to know about its benchmark."""

    name: str
    kind: str
    task_description: str
    answer_format: str
    seed_workflows: dict[str, str]

    @classmethod
    def from_benchmark(cls, bm, protocol: str = "w4s") -> TaskSpec:
        """The benchmark's spec; its seed workflows in the style of `protocol` (w4s: the
        authors' seeds, CoT at temperature 0.8 and code generation answering 0 on failure)."""
        return cls(bm.name, bm.kind, bm.task_description, bm.answer_format,
                   dict(bm.seed_workflows(style=protocol)))


@dataclass
class Cand:
    """Mutable per-candidate bookkeeping during one turn."""

    index: int
    seed: int
    action: str
    attempt: int = 0
    code: str | None = None
    error: str | None = None
    failure: dict | str | None = None  # the structured failure, for the repair prompt
    repairable: bool = False
    checked: bool = False
    repairs: int = 0
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cached_usd: float = 0.0
    outcome: EvalResult | None = None
    stopped: bool = False
    calls_saved: float = 0.0
    dropped: bool = False
    redrawn: bool = False  # drawn again: the first draw repeated a known workflow
    text: str = ""  # w4s: the reply being tried (the original, then each repair reply)
    chat: list[dict] = field(default_factory=list)  # w4s: the repair conversation

    def add_cost(self, out: EvalResult) -> None:
        self.calls += out.calls
        self.prompt_tokens += out.prompt_tokens
        self.completion_tokens += out.completion_tokens
        self.cost_usd += out.cost_usd
        self.cached_usd += out.cached_usd


def extract(text: str) -> tuple[str | None, str | None, bool]:
    """(code, error, repairable). No code block at all is final under w4s-ray; the w4s loop
    repairs every extraction failure, as upstream does."""
    try:
        return extract_workflow(text), None, False
    except WorkflowError as exc:
        msg = str(exc)
        if msg.startswith("no python code block"):
            return None, f"{NO_CODE}: {msg}", False
        return None, msg, True


def texts(replies) -> list[str]:
    """A backend's replies as strings: None or non-text (a broken backend) counts as no reply."""
    return [r if isinstance(r, str) else "" for r in list(replies or [])]


def seed_record(name: str, code: str, out: EvalResult) -> dict:
    return {
        "name": name, "code": code,
        "val_accuracy": out.accuracy_or_none or 0.0,
        "error": out.error, "feedback": out.feedback or (out.error or ""),
        "calls": out.calls, "prompt_tokens": out.prompt_tokens,
        "completion_tokens": out.completion_tokens, "cost_usd": out.cost_usd,
        "cached_usd": out.cached_usd,
    }
