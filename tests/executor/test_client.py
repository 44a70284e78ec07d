"""ExecutorClient against the simulator over HTTP (litellm -> aiohttp server)."""

from __future__ import annotations

import asyncio
import logging
import statistics
import threading

import pytest

from tests.fixtures.sim import SYNTHETIC_ITEMS, answer_of
from w4s_ray.config import CacheConfig, ExecutorConfig
from w4s_ray.errors import BudgetExceeded, ExecutorError
from w4s_ray.executor.client import ExecutorClient

FAKE_KEY = "sk-test-FAKEKEY-0123456789"
Q = SYNTHETIC_ITEMS[0]["question"]


def make_cfg(url, tmp_path, **kw) -> ExecutorConfig:
    base = dict(api_base=url, cache=CacheConfig(path=str(tmp_path / "cache.sqlite")),
                retry_base_delay_s=0.01, retry_max_delay_s=0.05, max_retries=4, timeout_s=10)
    base.update(kw)
    return ExecutorConfig(**base)


def msgs(text=Q):
    return [{"role": "user", "content": text}]


async def test_completion_usage_and_cost_match_litellm_price_map(sim_server, tmp_path):
    import litellm

    client = ExecutorClient(make_cfg(sim_server.url, tmp_path))
    res = await client.chat(msgs(), tags={"benchmark": "gsm8k", "candidate": "c1"})
    assert res.texts[0].strip() and answer_of(res.texts[0]) is not None
    assert res.prompt_tokens > 10 and res.completion_tokens > 5 and res.cached == [False]
    p, c = litellm.cost_per_token(model="gpt-4o-mini", prompt_tokens=res.prompt_tokens,
                                  completion_tokens=res.completion_tokens)
    assert res.cost_usd == pytest.approx(p + c, rel=1e-12) and res.cost_usd > 0
    assert client.spend_by("candidate") == {"c1": pytest.approx(res.cost_usd)}
    s = client.stats()
    assert s["calls"] == 1 and s["cost_usd"] == pytest.approx(res.cost_usd)


async def test_cache_hit_makes_no_http_call(sim_server, tmp_path):
    cfg = make_cfg(sim_server.url, tmp_path)
    first = await ExecutorClient(cfg).chat(msgs(), n=3, temperature=0.9)
    before = sim_server.stats()["requests"]
    other = ExecutorClient(cfg)  # a new client (another worker) on the same node cache
    again = await other.chat(msgs(), n=3, temperature=0.9)
    assert sim_server.stats()["requests"] == before
    assert again.texts == first.texts and again.cached == [True] * 3 and again.cost_usd == 0.0
    s = other.stats()
    assert s["cache_hits"] == 3 and s["saved_usd"] == pytest.approx(first.cost_usd)
    # A second occurrence of the same question is a fresh request.
    await other.chat(msgs(), n=3, temperature=0.9, occurrence=1)
    assert sim_server.stats()["requests"] == before + 1


async def test_partial_cache_requests_all_n_and_keeps_cached_samples(sim_server, tmp_path):
    cfg = make_cfg(sim_server.url, tmp_path)
    two = await ExecutorClient(cfg).chat(msgs(), n=2, temperature=1.0)
    five = await ExecutorClient(cfg).chat(msgs(), n=5, temperature=1.0)
    assert five.texts[:2] == two.texts and five.cached == [True, True, False, False, False]


async def test_cache_disabled_calls_every_time(sim_server, tmp_path):
    cfg = make_cfg(sim_server.url, tmp_path, cache=CacheConfig(enabled=False))
    c = ExecutorClient(cfg)
    before = sim_server.stats()["requests"]
    await c.chat(msgs())
    await c.chat(msgs())
    assert sim_server.stats()["requests"] == before + 2


async def test_hot_samples_distinct_and_reproducible_with_same_seed(sim_server, tmp_path):
    hard = "Verify step by step: " + SYNTHETIC_ITEMS[2]["question"]
    runs = []
    for i in range(2):  # fresh caches: the server itself must reproduce the samples
        cfg = make_cfg(sim_server.url, tmp_path / f"run{i}", seed=11)
        runs.append((await ExecutorClient(cfg).chat(msgs(hard), n=8, temperature=1.0)).texts)
    assert runs[0] == runs[1]
    assert len(set(runs[0])) > 1
    cfg = make_cfg(sim_server.url, tmp_path / "other-seed", seed=12)
    assert (await ExecutorClient(cfg).chat(msgs(hard), n=8, temperature=1.0)).texts != runs[0]


async def test_json_mode_returns_requested_keys(sim_server, tmp_path):
    import json

    c = ExecutorClient(make_cfg(sim_server.url, tmp_path))
    res = await c.chat(msgs(Q + '\nReply in JSON with keys ["reasoning", "answer"].'),
                       response_format="json")
    assert set(json.loads(res.texts[0])) == {"reasoning", "answer"}


async def test_twenty_percent_faults_all_succeed_or_fail_loudly(sim_factory, tmp_path):
    h = sim_factory(rate_429=0.08, rate_500=0.06, rate_malformed=0.06, retry_after_s=0.01,
                    latency="none", seed=3)
    c = ExecutorClient(make_cfg(h.url, tmp_path, cache=CacheConfig(enabled=False), max_retries=6))
    results = await asyncio.gather(*[c.chat(msgs(f"question {i}")) for i in range(60)],
                                   return_exceptions=True)
    for r in results:
        assert isinstance(r, ExecutorError) or (r.texts and r.texts[0].strip())
    s, server = c.stats(), h.stats()
    assert s["retries"] > 0 and sum(1 for r in results if not isinstance(r, Exception)) >= 55
    # Every injected fault was seen by the client: retried, or the last straw of a failed call.
    assert server["fault_429"] + server["fault_500"] + server["fault_malformed"] == s["retries"] + s["errors"]


async def test_retry_limit_reached_raises_one_clear_line(sim_factory, tmp_path):
    h = sim_factory(rate_500=1.0, latency="none")
    c = ExecutorClient(make_cfg(h.url, tmp_path, max_retries=2))
    with pytest.raises(ExecutorError) as err:
        await c.chat(msgs())
    text = str(err.value)
    assert "HTTP 500" in text and "after 3 attempts" in text and "\n" not in text
    assert h.stats()["requests"] == 3


async def test_malformed_body_is_a_clear_error_after_retries(sim_factory, tmp_path):
    h = sim_factory(rate_malformed=1.0, latency="none")
    c = ExecutorClient(make_cfg(h.url, tmp_path, max_retries=2))
    with pytest.raises(ExecutorError, match="malformed response"):
        await c.chat(msgs())
    assert h.stats()["requests"] == 3


async def test_retry_after_is_honoured(sim_factory, tmp_path):
    import time

    h = sim_factory(rate_429=1.0, retry_after_s=0.3, latency="none")
    c = ExecutorClient(make_cfg(h.url, tmp_path, max_retries=2, retry_max_delay_s=5.0))
    t0 = time.monotonic()
    with pytest.raises(ExecutorError, match="HTTP 429"):
        await c.chat(msgs())
    assert time.monotonic() - t0 >= 0.55  # two waits of at least Retry-After each


async def test_hung_request_times_out_and_is_retried(sim_factory, tmp_path):
    h = sim_factory(rate_hang=1.0, hang_s=30.0, latency="none")
    c = ExecutorClient(make_cfg(h.url, tmp_path, max_retries=1, timeout_s=0.5))
    with pytest.raises(ExecutorError, match="timed out"):
        await c.chat(msgs())
    assert h.stats()["fault_hang"] == 2


async def test_unreachable_api_base(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    c = ExecutorClient(make_cfg(f"http://127.0.0.1:{port}/v1", tmp_path, max_retries=1))
    with pytest.raises(ExecutorError) as err:
        await c.chat(msgs())
    assert str(err.value).startswith(f"cannot reach executor at http://127.0.0.1:{port}/v1: connection refused")
    assert "\n" not in str(err.value)


def test_unknown_model_without_pricing_is_a_clear_error(tmp_path):
    cfg = make_cfg("http://127.0.0.1:9/v1", tmp_path, model="openai/my-private-model", pricing_model=None)
    with pytest.raises(ExecutorError, match="no price known for model openai/my-private-model: set executor.pricing_model"):
        ExecutorClient(cfg)
    with pytest.raises(ExecutorError, match="not in litellm's price map"):
        ExecutorClient(make_cfg("http://127.0.0.1:9/v1", tmp_path, pricing_model="no-such-model-xyz"))


def test_known_model_is_priced_as_itself(tmp_path):
    cfg = make_cfg("http://127.0.0.1:9/v1", tmp_path, model="openai/gpt-4o", pricing_model="gpt-4o-mini")
    assert ExecutorClient(cfg).price_model == "gpt-4o"


async def test_budget_stops_new_calls(sim_server, tmp_path):
    c = ExecutorClient(make_cfg(sim_server.url, tmp_path, budget_usd=0.0003, max_concurrency=4))
    done, stopped = [], 0
    for i in range(200):
        try:
            done.append(await c.chat(msgs(f"{Q} variant {i}")))
        except BudgetExceeded as exc:
            stopped += 1
            assert "budget" in str(exc)
            break
    assert stopped == 1
    spent = c.stats()["cost_usd"]
    assert 0.0003 <= spent <= 0.0003 + max(r.cost_usd for r in done)
    assert sum(row["cost_usd"] for row in c.ledger.values()) == pytest.approx(spent)
    # Concurrent calls: at most the calls already in flight overshoot.
    c2 = ExecutorClient(make_cfg(sim_server.url, tmp_path / "b", budget_usd=0.0003, max_concurrency=4))
    out = await asyncio.gather(*[c2.chat(msgs(f"{Q} again {i}")) for i in range(100)], return_exceptions=True)
    assert any(isinstance(r, BudgetExceeded) for r in out)
    ok = [r for r in out if not isinstance(r, Exception)]
    assert c2.stats()["cost_usd"] <= 0.0003 + 4 * max(r.cost_usd for r in ok) + 1e-12
    # Cached calls are free and still allowed once the budget is spent.
    assert (await c.chat(msgs(f"{Q} variant 0"))).cached == [True]


async def test_fake_key_never_leaks(sim_factory, tmp_path, monkeypatch, caplog, capfd):
    monkeypatch.setenv("W4S_TEST_KEY", FAKE_KEY)
    caplog.set_level(logging.DEBUG)
    h = sim_factory(rate_500=1.0, latency="none")
    good = sim_factory(latency="none")
    texts = []
    for url in (h.url, good.url, "http://127.0.0.1:1/v1"):
        c = ExecutorClient(make_cfg(url, tmp_path, api_key_env="W4S_TEST_KEY", max_retries=1))
        texts.append(repr(c) + str(c.stats()))
        try:
            await c.chat(msgs(f"leak check {url}"))
        except ExecutorError as exc:
            texts.append(str(exc) + repr(exc))
    out, err = capfd.readouterr()
    texts += [out, err, caplog.text]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            texts.append(path.read_bytes().decode("latin-1"))
    assert all(FAKE_KEY not in t for t in texts)
    assert any("cache.sqlite" in str(p) for p in tmp_path.rglob("*"))


def test_missing_key_for_remote_api_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    cfg = make_cfg("https://api.example.com/v1", tmp_path, api_key_env="NO_SUCH_KEY_VAR")
    with pytest.raises(ExecutorError, match=r"no API key .* set \$NO_SUCH_KEY_VAR"):
        ExecutorClient(cfg)


async def test_bad_messages_are_rejected(sim_server, tmp_path):
    c = ExecutorClient(make_cfg(sim_server.url, tmp_path))
    with pytest.raises(ExecutorError, match="messages"):
        await c.chat([{"content": "no role"}])
    with pytest.raises(ExecutorError, match="response_format"):
        await c.chat(msgs(), response_format="yaml")


def test_chat_sync_from_many_threads(sim_server, tmp_path):
    c = ExecutorClient(make_cfg(sim_server.url, tmp_path))
    results: dict[int, str] = {}

    def work(i: int) -> None:
        results[i] = c.chat_sync(msgs(f"{Q} thread {i}")).texts[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    c.close()
    assert len(results) == 16 and all(results.values())


async def test_real_gsm8k_accuracy_near_profile(sim_server, tmp_path, data_dir):
    from tests.fixtures.sim import gsm8k_valid_items

    items = gsm8k_valid_items(data_dir)
    c = ExecutorClient(make_cfg(sim_server.url, tmp_path))
    res = await asyncio.gather(*[c.chat(msgs(f"Solve this math problem.\n{it['question']}"))
                                 for it in items])
    acc = statistics.fmean(answer_of(r.texts[0]) == it["answer"] for r, it in zip(res, items, strict=True))
    assert abs(acc - 0.88) < 0.07, acc


class OneSamplePerRequest:
    """The client's transport as an endpoint without `n` (Anthropic, Ollama ...) sees it: one
    request per sample, sample j answered "seed <seed + j>"; records (n, seed) of each call.
    `fail_second_once`: the first fan-out's second request fails (`PartFailed`)."""

    def __init__(self, inner, tag, fail_second_once=False):
        self.inner, self.tag, self.sent, self.fail = inner, tag, [], fail_second_once

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def requests_for(self, n):
        return n

    async def complete(self, messages, *, n, seed, **kw):
        from w4s_ray.executor.transport import TRANSIENT, Completion, PartFailed, TransportError

        self.sent.append((n, seed))
        one = {j: Completion([f"seed {seed + j}"], 5, 2, self.tag) for j in range(n)}
        if n > 1 and self.fail:
            self.fail = False
            raise PartFailed({j: c for j, c in one.items() if j != 1}, [1],
                             TransportError("rate limited", TRANSIENT, reason="rate"))
        return Completion([one[j].texts[0] for j in range(n)], 5 * n, 2 * n, self.tag, n)


async def test_a_fan_out_wider_than_a_window_keeps_each_samples_seed(sim_server, tmp_path):
    """Split into window-sized parts, sample j of a call still gets seed + j, as in one
    fan-out, so splitting changes neither the samples nor what the cache stores under them;
    each part asks its own grant for its own requests."""

    class Grants:
        def __init__(self):
            self.asked = []

        async def acquire(self, ask):
            self.asked.append(ask.requests)
            return len(self.asked)

        def settle(self, grant, tokens, cost_usd=0.0, **kw):
            pass

        def release(self, grant):
            pass

    grants = Grants()
    cfg = make_cfg(sim_server.url, tmp_path, requests_per_minute=240, rate_limit_window_s=2.0,
                   cache=CacheConfig(enabled=False))  # 8 requests per window
    with ExecutorClient(cfg, rate_limiter=grants) as client:
        await client.chat(msgs(), n=1)  # identifies the server
        client.transport = fake = OneSamplePerRequest(client.transport, client.server.simulator)
        grants.asked.clear()
        done = await client.chat(msgs("twenty samples"), n=20)
    first = fake.sent[0][1]
    assert fake.sent == [(8, first), (8, first + 8), (4, first + 16)]
    assert done.texts == [f"seed {first + j}" for j in range(20)]
    assert grants.asked == [8, 8, 4]


async def test_a_fan_out_with_one_request_failed_asks_again_for_that_sample_only(sim_server,
                                                                                 tmp_path):
    """n = 3 one-sample requests, the second answered 429 once: the client keeps the two
    answers and sends one request again, with that sample's seed, not all three."""
    cfg = make_cfg(sim_server.url, tmp_path, cache=CacheConfig(enabled=False))
    with ExecutorClient(cfg) as client:
        await client.chat(msgs(), n=1)  # identifies the server
        client.transport = fake = OneSamplePerRequest(client.transport, client.server.simulator,
                                                       fail_second_once=True)
        done = await client.chat(msgs("three samples"), n=3)
    first = fake.sent[0][1]
    assert fake.sent == [(3, first), (1, first + 1)]
    assert done.texts == [f"seed {first + j}" for j in range(3)]
    assert (done.prompt_tokens, done.completion_tokens) == (15, 6)  # the answers, each once
