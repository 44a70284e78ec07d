"""The simulator's provider-style RPM/TPM limit, and one process's client kept under it.

The limit holds over any window of `limit_window_s`; the tests use 2 s windows with limits
that are the per-minute figures scaled the same way (rate x window / 60). The rule is
invariant under a change of time unit: a run under R requests per 2 s window is the same run
as one under R per 60 s window with every duration 30 times longer, so what holds here holds
for per-minute limits (docs/EXECUTOR.md "Rate limits").
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import pytest

from w4s_ray.config import CacheConfig, ExecutorConfig
from w4s_ray.executor.sim.limits import SimLimits


def _post(url: str, content: str, key: str | None = None) -> int:
    body = json.dumps({"model": "sim-gpt-4o-mini", "max_tokens": 32,
                       "messages": [{"role": "user", "content": content}]}).encode()
    req = urllib.request.Request(url + "/chat/completions", data=body,
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {key}"} if key else {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        assert exc.status != 429 or float(exc.headers["retry-after-ms"]) > 0
        return exc.status


def test_sim_limits_count_per_key_and_model_with_an_injected_clock():
    t = [0.0]
    lim = SimLimits(rpm=60, tpm=None, window_s=2.0, clock=lambda: t[0])  # 2 per 2 s
    assert lim.check("a", "m", 10) == 0.0
    assert lim.check("a", "m", 10) == 0.0
    assert lim.check("a", "m", 10) == pytest.approx(2.0)  # rejected, told when
    assert lim.check("b", "m", 10) == 0.0  # another key has its own window
    assert lim.check("a", "other", 10) == 0.0  # and another model
    t[0] = 2.0
    assert lim.check("a", "m", 10) == 0.0
    rep = {(r["key"], r["model"]): r for r in lim.report()["keys"]}
    assert rep[("a", "m")]["rejected"] == 1 and rep[("a", "m")]["admitted"] == 3
    assert rep[("a", "m")]["offered_peak_requests"] == 3  # the rejected one was offered


def test_sim_limits_time_the_first_and_last_admitted_request_on_the_wall_clock():
    # A benchmark splits a run's wall at these (start-up / limited span / tail), comparing
    # them with its own time.time(): a rejected request must not move them.
    t = [0.0]
    lim = SimLimits(rpm=30, tpm=None, window_s=2.0, clock=lambda: t[0])  # 1 per 2 s
    before = time.time()
    assert lim.check("a", "m", 1) == 0.0
    first = lim.report()["keys"][0]["first_admitted_at"]
    time.sleep(0.02)
    assert lim.check("a", "m", 1) > 0  # rejected
    assert lim.report()["keys"][0]["last_admitted_at"] == first
    t[0] = 2.0
    assert lim.check("a", "m", 1) == 0.0
    rep = lim.report()["keys"][0]
    assert before <= rep["first_admitted_at"] == first < rep["last_admitted_at"] <= time.time()
    assert rep["first_window_admitted_at"] == [first]  # one window's worth: R = 1 here


def test_simulator_answers_429_past_its_window_and_counts_apart_from_faults(sim_factory):
    sim = sim_factory(rpm_limit=150, limit_window_s=2.0)  # 5 requests per 2 s window
    codes = [_post(sim.url, f"q{i}") for i in range(8)]
    assert codes[:5] == [200] * 5 and codes[5:] == [429] * 3
    assert _post(sim.url, "other key", key="sk-other") == 200
    stats, limits = sim.stats(), sim.get("/limits")
    assert stats["limit_429"] == 3 and stats.get("fault_429", 0) == 0
    assert limits["max_requests_per_window"] == 5
    assert {k["key"] for k in limits["keys"]} >= {"-"} and len(limits["keys"]) == 2


def _burst(url: str, limited: bool, calls: int) -> None:
    from w4s_ray.executor.client import ExecutorClient

    cfg = ExecutorConfig(api_base=url, cache=CacheConfig(enabled=False),
                         max_retries=8 if limited else 0,
                         retry_max_delay_s=5.0, max_tokens=64,
                         requests_per_minute=240 if limited else None,
                         tokens_per_minute=60_000 if limited else None,
                         rate_limit_window_s=2.0, rate_limit_guard_s=0.1)

    async def run() -> None:
        with ExecutorClient(cfg) as client:
            await asyncio.gather(*[client.chat([{"role": "user", "content": f"item {i}"}])
                                   for i in range(calls)], return_exceptions=not limited)

    asyncio.run(run())


@pytest.mark.timeout(120)
def test_client_limiter_keeps_a_burst_inside_every_window(sim_factory):
    """24 calls against 8 per 2 s window: the limited client gets no 429 and offers at most
    8 requests in any window; the same burst unlimited draws 429s (the check can fail)."""
    sim = sim_factory(rpm_limit=240, tpm_limit=60_000, limit_window_s=2.0)
    _burst(sim.url, limited=True, calls=24)
    limits = sim.get("/limits")
    k = limits["keys"][0]
    assert sim.stats().get("limit_429", 0) == 0
    assert k["admitted"] == 24
    assert k["offered_peak_requests"] <= limits["max_requests_per_window"] == 8
    assert k["offered_peak_tokens"] <= limits["max_tokens_per_window"]
    assert k["offered_peak_requests"] == 8  # and the limit was used, not avoided

    other = sim_factory(rpm_limit=240, tpm_limit=60_000, limit_window_s=2.0)
    _burst(other.url, limited=False, calls=24)
    assert other.stats()["limit_429"] > 0


def _chat(url: str, *, n: int, max_tokens: int, key: str) -> dict:
    body = json.dumps({"model": "sim-gpt-4o-mini", "n": n, "max_tokens": max_tokens,
                       "messages": [{"role": "user", "content": "what is 2 + 2?"}]}).encode()
    req = urllib.request.Request(url + "/chat/completions", data=body,
                                 headers={"Content-Type": "application/json",
                                          "Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_sim_tpm_charge_requested_counts_n_times_max_tokens_as_openai_does(sim_factory):
    """`sim.tpm_charge=requested` charges prompt + n x max_tokens whatever the reply used;
    the default charges what the reply used."""
    for charge in ("requested", "used"):
        sim = sim_factory(tpm_limit=6_000_000, limit_window_s=60.0, tpm_charge=charge)
        usage = _chat(sim.url, n=3, max_tokens=700, key="sk-a")["usage"]
        assert usage["completion_tokens"] < 3 * 700  # a short reply: the two charges differ
        charged = sim.get("/limits")["keys"][0]["tokens"]
        want = usage["prompt_tokens"] + (3 * 700 if charge == "requested"
                                         else usage["completion_tokens"])
        assert charged == want, charge


def _client_burst(url: str, mode: str, calls: int) -> None:
    from w4s_ray.executor.client import ExecutorClient

    # 1,000 tokens per 2 s window; a call asks max_tokens=200 and gets a short reply
    cfg = ExecutorConfig(api_base=url, cache=CacheConfig(enabled=False), max_retries=10,
                         retry_max_delay_s=2.0, max_tokens=200, requests_per_minute=600,
                         tokens_per_minute=30_000, rate_limit_window_s=2.0,
                         rate_limit_guard_s=0.1, rate_limit_tokens=mode)

    async def run() -> None:
        with ExecutorClient(cfg) as client:
            await asyncio.gather(*[client.chat([{"role": "user", "content": f"item {i}"}])
                                   for i in range(calls)])

    asyncio.run(run())


@pytest.mark.timeout(180)
def test_requested_token_accounting_keeps_an_openai_style_provider_free_of_429s(sim_factory):
    """Against a provider that counts n x max_tokens at admission (OpenAI, Anthropic), the
    default `executor.rate_limit_tokens=requested` sends a burst with no 429 from the limit and
    fills the token budget; reserving only what replies use (`used`) overruns it."""
    sim = sim_factory(rpm_limit=600, tpm_limit=30_000, limit_window_s=2.0,
                      tpm_charge="requested")
    assert ExecutorConfig().rate_limit_tokens == "requested"
    _client_burst(sim.url, "requested", calls=16)
    k, limits = sim.get("/limits")["keys"][0], sim.get("/limits")
    assert sim.stats().get("limit_429", 0) == 0 and k["admitted"] == 16
    assert k["offered_peak_tokens"] <= limits["max_tokens_per_window"] == 1000
    assert k["offered_peak_tokens"] >= 800  # the budget was used, not avoided

    other = sim_factory(rpm_limit=600, tpm_limit=30_000, limit_window_s=2.0,
                        tpm_charge="requested")
    _client_burst(other.url, "used", calls=16)
    assert other.stats()["limit_429"] > 0  # the check can fail


def _one_choice_burst(url: str, calls: int, n: int, monkeypatch=None) -> list[list[str]]:
    from w4s_ray.executor.client import ExecutorClient

    # 8 requests per 2 s window; the endpoint answers one choice per request
    cfg = ExecutorConfig(api_base=url, cache=CacheConfig(enabled=False), max_retries=10,
                         retry_max_delay_s=2.0, max_tokens=64, temperature=1.0,
                         requests_per_minute=240, rate_limit_window_s=2.0,
                         rate_limit_guard_s=0.3)  # margin for a loaded box

    async def run() -> list[list[str]]:
        with ExecutorClient(cfg) as client:
            if monkeypatch is not None:  # the old limiter: one request per call, whatever n
                monkeypatch.setattr(client.transport, "requests_for", lambda n: 1)
            done = await asyncio.gather(*[client.chat(
                [{"role": "user", "content": f"item {i}"}], n=n) for i in range(calls)])
            assert client.transport.one_choice  # learnt from the first replies
            return [d.texts for d in done]

    return asyncio.run(run())


@pytest.mark.timeout(180)
def test_an_endpoint_without_n_gets_one_grant_per_request_and_no_429(sim_factory, monkeypatch):
    """A server that answers one choice whatever n asks (Ollama's /v1) gets n requests per
    call. The limiter counts each, the first wave's too (sent before the client knew), so a
    burst of n=4 calls under an RPM limit draws no 429; counting one per call overruns it."""
    sim = sim_factory(rpm_limit=240, limit_window_s=2.0, one_choice=True)
    texts = _one_choice_burst(sim.url, calls=4, n=4)
    k = sim.get("/limits")["keys"][0]
    assert all(len(t) == 4 for t in texts)
    assert sim.stats().get("limit_429", 0) == 0 and k["admitted"] == 16
    assert k["offered_peak_requests"] <= sim.get("/limits")["max_requests_per_window"] == 8

    other = sim_factory(rpm_limit=240, limit_window_s=2.0, one_choice=True)
    _one_choice_burst(other.url, calls=4, n=4, monkeypatch=monkeypatch)
    assert other.stats()["limit_429"] > 0  # the check can fail


@pytest.mark.timeout(180)
def test_a_fan_out_wider_than_a_window_is_sent_a_window_at_a_time(sim_factory, monkeypatch):
    """n = 20 samples from a one-choice server under 8 requests per window: 20 requests no
    window can hold at once. They go out 8 at a time with the seeds one fan-out would give
    them; sent together, the provider answers part of them 429."""
    from w4s_ray.executor.client import ExecutorClient

    def run(url: str, chunked: bool, retries: int):
        cfg = ExecutorConfig(api_base=url, cache=CacheConfig(enabled=False),
                             max_retries=retries, retry_max_delay_s=2.0, max_tokens=64,
                             temperature=1.0, requests_per_minute=240,
                             rate_limit_window_s=2.0, rate_limit_guard_s=0.3)
        with ExecutorClient(cfg) as client:
            if not chunked:
                monkeypatch.setattr(client, "_fanout_chunk", lambda n: n)
            return asyncio.run(client.chat([{"role": "user", "content": "item 0"}], n=20))

    sim = sim_factory(rpm_limit=240, limit_window_s=2.0, one_choice=True)
    done = run(sim.url, chunked=True, retries=10)
    assert len(done.texts) == 20
    k = sim.get("/limits")["keys"][0]
    assert sim.stats().get("limit_429", 0) == 0 and k["admitted"] == 20
    assert k["offered_peak_requests"] <= 8

    other = sim_factory(rpm_limit=240, limit_window_s=2.0, one_choice=True)
    assert len(run(other.url, chunked=False, retries=10).texts) == 20  # the 429'd ones again
    assert other.stats()["limit_429"] > 0  # the check can fail
