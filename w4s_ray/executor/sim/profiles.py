"""Profiles of the simulated executor: how accurate and how slow each simulated model is.

These numbers are assumptions chosen to resemble published scores of the named models on the
benchmarks W4S uses (roughly: gpt-4o > gpt-4o-mini > gpt-3.5-turbo, hard sets well below easy
ones). They are not measurements of any real model; the simulator is a simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KIND_DEFAULTS = ("math", "multiple_choice", "reading", "code")


@dataclass(frozen=True)
class Profile:
    name: str
    # Mean probability of a correct answer to a plain (no chain-of-thought) prompt, per kind.
    kind_accuracy: dict[str, float]
    # Overrides per benchmark name (e.g. MATH level 5 is much harder than GSM8K).
    benchmark_accuracy: dict[str, float] = field(default_factory=dict)
    # Probability that a verifier prompt judges a given candidate answer correctly.
    judge_accuracy: float = 0.8
    # Log-normal latency: median in ms and sigma of the underlying normal.
    latency_median_ms: float = 600.0
    latency_sigma: float = 0.4
    # Extra latency per completion token (decode speed).
    ms_per_token: float = 8.0
    # Share of JSON-mode replies whose code field is wrapped in a ```python fence (real models
    # in JSON mode mostly put bare code there; some fence it, and `execute_code` then fails on
    # the fence as it would with a real model).
    json_code_fence_rate: float = 0.1

    def accuracy(self, benchmark: str | None, kind: str | None) -> float:
        if benchmark and benchmark in self.benchmark_accuracy:
            return self.benchmark_accuracy[benchmark]
        return self.kind_accuracy.get(kind or "", 0.6)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="sim-gpt-4o-mini",
            kind_accuracy={"math": 0.80, "multiple_choice": 0.60, "reading": 0.75, "code": 0.80},
            benchmark_accuracy={
                "gsm8k": 0.88, "svamp": 0.88, "mgsm": 0.80, "gsm_plus": 0.72,
                "gsm_hard": 0.45, "math": 0.42, "aime": 0.10, "drop": 0.76,
                "mmlu_pro": 0.60, "mmlu": 0.78, "gpqa": 0.38, "humaneval": 0.85, "mbpp": 0.72,
            },
            judge_accuracy=0.78, latency_median_ms=600.0, ms_per_token=6.0,
        ),
        Profile(
            name="sim-gpt-3.5-turbo",
            kind_accuracy={"math": 0.65, "multiple_choice": 0.50, "reading": 0.65, "code": 0.65},
            benchmark_accuracy={
                "gsm8k": 0.75, "svamp": 0.80, "mgsm": 0.55, "gsm_plus": 0.58,
                "gsm_hard": 0.30, "math": 0.22, "aime": 0.03, "drop": 0.68,
                "mmlu_pro": 0.40, "mmlu": 0.68, "gpqa": 0.30, "humaneval": 0.68, "mbpp": 0.62,
            },
            judge_accuracy=0.70, latency_median_ms=450.0, ms_per_token=5.0,
        ),
        Profile(
            name="sim-gpt-4o",
            kind_accuracy={"math": 0.88, "multiple_choice": 0.72, "reading": 0.82, "code": 0.88},
            benchmark_accuracy={
                "gsm8k": 0.93, "svamp": 0.92, "mgsm": 0.88, "gsm_plus": 0.80,
                "gsm_hard": 0.55, "math": 0.55, "aime": 0.13, "drop": 0.81,
                "mmlu_pro": 0.72, "mmlu": 0.86, "gpqa": 0.50, "humaneval": 0.91, "mbpp": 0.78,
            },
            judge_accuracy=0.86, latency_median_ms=900.0, ms_per_token=12.0,
        ),
    )
}


def get_profile(name: str) -> Profile:
    """A profile by name; an `openai/` (or any provider/) prefix is ignored."""
    key = name.rsplit("/", 1)[-1]
    if key not in PROFILES:
        raise KeyError(f"unknown sim profile {name!r} (known: {', '.join(sorted(PROFILES))})")
    return PROFILES[key]
