"""The simulator's provider-style rate limit: RPM and TPM per API key and model.

A request is charged on arrival: one request and its prompt + completion tokens (the reply is
computed before the check, so the charge is exact: what `usage` reports), or with
`sim.tpm_charge=requested` its prompt + n x max_tokens, as OpenAI and Anthropic count (the
server computes the charge; this module only counts it). It is admitted when
the window of `sim.limit_window_s` seconds ending now, with it added, holds at most
`rpm_limit * window / 60` requests and `tpm_limit * window / 60` tokens (the same rule as the
client's `executor/ratelimit.py`, without the client's guard); otherwise it is answered 429
with the exact Retry-After and not charged. Injected faults (`rate_429` ...) are decided after
admission, so they are counted apart (`fault_429` vs `limit_429` in `/stats`).

Besides enforcing, the simulator measures what clients OFFERED: the largest number of
requests and tokens that arrived in any one window, rejected ones included (`/limits`). A client
that never exceeds the limit has offered peaks within it and zero `limit_429`. It also keeps
the wall-clock time (epoch seconds) of the last request it admitted per key and of the first
window's worth (R) of admitted requests, so a benchmark can split a run's wall into start-up,
the span the limit governs and the tail, and see how fast the first window was filled.
Keys are identified by a hash of the bearer token (never stored); no token: "-".
"""

from __future__ import annotations

import hashlib
import time
from collections import deque

from w4s_ray.executor.ratelimit import WindowLimit, per_window


def key_id(authorization: str | None) -> str:
    token = (authorization or "").removeprefix("Bearer ").strip()
    return hashlib.sha256(token.encode()).hexdigest()[:8] if token else "-"


class _Peak:
    """The largest request count and token sum seen in any window of `window_s` seconds."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.log: deque[tuple[float, float]] = deque()
        self.tokens = 0.0
        self.peak_requests = 0
        self.peak_tokens = 0.0

    def add(self, now: float, tokens: float) -> None:
        while self.log and self.log[0][0] <= now - self.window_s:
            self.tokens -= self.log.popleft()[1]
        self.log.append((now, tokens))
        self.tokens += tokens
        self.peak_requests = max(self.peak_requests, len(self.log))
        self.peak_tokens = max(self.peak_tokens, self.tokens)


class SimLimits:
    """Per (key, model): the enforced window, the offered peaks and counters."""

    def __init__(self, rpm: int | None, tpm: int | None, window_s: float = 60.0,
                 clock=time.monotonic) -> None:
        self.rpm, self.tpm, self.window_s = rpm, tpm, window_s
        self.clock = clock
        self._limits: dict[tuple[str, str], WindowLimit] = {}
        self._offered: dict[tuple[str, str], _Peak] = {}
        self._counts: dict[tuple[str, str], dict[str, float]] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.rpm or self.tpm)

    def check(self, key: str, model: str, tokens: int) -> float:
        """0.0: admitted and charged; else the Retry-After in seconds (not charged)."""
        if not self.enabled:
            return 0.0
        k = (key, model)
        if k not in self._limits:
            self._limits[k] = WindowLimit(self.rpm, self.tpm, self.window_s, 0.0, self.clock)
            self._offered[k] = _Peak(self.window_s)
            self._counts[k] = {"admitted": 0, "rejected": 0, "tokens": 0,
                               "first_admitted_at": None, "last_admitted_at": None,
                               "first_window_admitted_at": []}
        now = self.clock()
        self._offered[k].add(now, tokens)
        gid, wait = self._limits[k].reserve(tokens, now)
        c = self._counts[k]
        if gid is None:
            c["rejected"] += 1
            return wait
        c["admitted"] += 1
        c["tokens"] += tokens
        # wall clock, not self.clock: compared with the client's time.time() across processes
        c["last_admitted_at"] = time.time()
        if c["first_admitted_at"] is None:
            c["first_admitted_at"] = c["last_admitted_at"]
        if len(c["first_window_admitted_at"]) < (per_window(self.rpm, self.window_s) or 0):
            c["first_window_admitted_at"].append(c["last_admitted_at"])
        return 0.0

    def report(self) -> dict:
        return {
            "rpm_limit": self.rpm, "tpm_limit": self.tpm, "window_s": self.window_s,
            "max_requests_per_window": per_window(self.rpm, self.window_s),
            "max_tokens_per_window": per_window(self.tpm, self.window_s),
            "keys": [{"key": k, "model": m, **self._counts[(k, m)],
                      "offered_peak_requests": self._offered[(k, m)].peak_requests,
                      "offered_peak_tokens": self._offered[(k, m)].peak_tokens}
                     for (k, m) in self._limits],
        }
