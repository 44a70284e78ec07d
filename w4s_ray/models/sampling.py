"""Sampling settings shared by the local meta-agent backend and `w4s serve` (no torch here).

One place for the defaults, so a request means the same thing in-process and over HTTP:

| setting | default | meaning |
| --- | --- | --- |
| temperature | 1.0 | 0 = greedy; the OpenAI API's default (the meta-agent config sets 0.5, the paper's) |
| top_p | 1.0 | nucleus cut (1 = off) |
| top_k | 0 | keep the k most likely tokens (0 = off: the OpenAI API has no top-k) |
| repetition_penalty | 1.0 | > 1 divides positive / multiplies negative logits of every token already in the prompt or reply (the transformers/vLLM rule; 1 = off) |
| frequency_penalty | 0.0 | minus `c * count` for tokens already generated (OpenAI rule, -2..2) |
| presence_penalty | 0.0 | minus `p` for tokens already generated at least once (OpenAI rule, -2..2) |

A model's own `generation_config` sampling values (transformers defaults to top_k 50) are never
applied: only these. The torch code that applies them is `w4s_ray.models.logits`.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 1.0
DEFAULT_TOP_K = 0
DEFAULT_REPETITION_PENALTY = 1.0
DEFAULT_FREQUENCY_PENALTY = 0.0
DEFAULT_PRESENCE_PENALTY = 0.0
DEFAULT_MAX_TOKENS = 256


@dataclass(frozen=True)
class SamplingParams:
    """What one request asks for; choice i of a seeded request is drawn with seed + i."""

    n: int = 1
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    top_k: int = DEFAULT_TOP_K
    max_tokens: int = DEFAULT_MAX_TOKENS
    seed: int | None = None
    stop: tuple[str, ...] = ()
    repetition_penalty: float = DEFAULT_REPETITION_PENALTY
    frequency_penalty: float = DEFAULT_FREQUENCY_PENALTY
    presence_penalty: float = DEFAULT_PRESENCE_PENALTY

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1 (got {self.n})")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1 (got {self.max_tokens})")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (got {self.temperature})")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] (got {self.top_p})")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (got {self.top_k})")
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0 (got {self.repetition_penalty})")
        for name in ("frequency_penalty", "presence_penalty"):
            if not -2.0 <= getattr(self, name) <= 2.0:
                raise ValueError(f"{name} must be in [-2, 2] (got {getattr(self, name)})")
        if any(not s for s in self.stop):
            raise ValueError("stop sequences must be non-empty")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def penalised(self) -> bool:
        return (self.repetition_penalty != 1.0 or self.frequency_penalty != 0.0
                or self.presence_penalty != 0.0)
