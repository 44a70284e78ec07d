"""Every provider litellm supports, against fake servers speaking each wire protocol on loopback.

OpenAI, Anthropic's messages API, an Azure OpenAI deployment, and OpenAI-compatible local
servers (vLLM, Ollama): requests reach them with the provider's own auth header and only the
parameters the provider takes, answers come back, dollars come from litellm's price map, and
failures are classified: fatal (401/403/404/rejected parameter) stops the run with a hint
naming the right key variable, per-item (context, content filter) fails one call.
"""

from __future__ import annotations

import time

import pytest

from tests.fixtures.providers import KEY, FakeProvider
from w4s_ray.config import CacheConfig, ExecutorConfig
from w4s_ray.errors import ExecutorError, ExecutorFatal
from w4s_ray.executor.client import ExecutorClient
from w4s_ray.executor.preflight import check_executor
from w4s_ray.executor.providers import provider_table, resolve_endpoint


def cfg_for(fake: FakeProvider, model: str, tmp_path, **kw) -> ExecutorConfig:
    base = dict(model=model, api_base=fake.url, pricing_model=None,
                cache=CacheConfig(path=str(tmp_path / "cache.sqlite")),
                retry_base_delay_s=0.01, retry_max_delay_s=0.02, max_retries=2, timeout_s=10)
    base.update(kw)
    return ExecutorConfig(**base)


def question(answers: dict[str, str]) -> tuple[str, str]:
    q = next(iter(answers))
    return q, answers[q]


def msgs(q: str) -> list[dict]:
    return [{"role": "system", "content": "You solve math problems."},
            {"role": "user", "content": q}]


def price(model: str, pt: int, ct: int) -> float:
    import litellm

    a, b = litellm.cost_per_token(model=model, prompt_tokens=pt, completion_tokens=ct)
    return a + b


# ---------------------------------------------------------------------- each protocol


async def test_anthropic_messages_api_through_litellm(fake_provider, gsm8k_answers, tmp_path,
                                                      monkeypatch):
    fake = fake_provider("anthropic")
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)  # taken from the provider: no api_key_env set
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = "anthropic/claude-haiku-4-5"
    client = ExecutorClient(cfg_for(fake, model, tmp_path))
    assert client.transport.name == "litellm" and client.endpoint.key_env == "ANTHROPIC_API_KEY"
    assert set(client.endpoint.dropped) == {"n", "seed"}
    q, gold = question(gsm8k_answers)
    res = await client.chat(msgs(q), n=3, temperature=0.7, max_tokens=64)
    assert res.texts == [f"The answer is {gold}."] * 3
    sent = fake.chat_requests()
    # n=3 on a provider without `n`: three requests, none carrying n or seed (which the real
    # API rejects), each with the key in x-api-key and the system prompt in `system`.
    assert len(sent) == 3
    for r in sent:
        assert r["path"] == "/v1/messages" and r["headers"]["x-api-key"] == KEY
        assert "seed" not in r["body"] and "n" not in r["body"]
        assert r["body"]["model"] == "claude-haiku-4-5"
        assert r["body"]["max_tokens"] == 64 and r["body"]["temperature"] == 0.7
    assert res.cost_usd == pytest.approx(price("claude-haiku-4-5", res.prompt_tokens,
                                               res.completion_tokens))
    assert res.cost_usd > 0


async def test_azure_deployment_through_litellm(fake_provider, gsm8k_answers, tmp_path,
                                                monkeypatch):
    fake = fake_provider("azure")
    monkeypatch.setenv("AZURE_API_KEY", KEY)
    client = ExecutorClient(cfg_for(fake, "azure/my-gpt4o-mini", tmp_path,
                                    pricing_model="azure/gpt-4o-mini"))
    q, gold = question(gsm8k_answers)
    res = await client.chat(msgs(q), n=2, temperature=0.5)
    assert res.texts == [f"The answer is {gold}."] * 2
    (r,) = fake.chat_requests()
    assert r["path"].startswith("/openai/deployments/my-gpt4o-mini/chat/completions?api-version=")
    assert r["headers"]["api-key"] == KEY and r["body"]["n"] == 2
    assert res.cost_usd == pytest.approx(price("azure/gpt-4o-mini", res.prompt_tokens,
                                               res.completion_tokens))


@pytest.mark.parametrize("transport", ["http", "litellm"])
async def test_openai_protocol_both_transports(fake_provider, gsm8k_answers, tmp_path,
                                               monkeypatch, transport):
    fake = fake_provider("openai", served=("gpt-4o-mini",))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    client = ExecutorClient(cfg_for(fake, "gpt-4o-mini", tmp_path, transport=transport))
    q, gold = question(gsm8k_answers)
    res = await client.chat(msgs(q), response_format="json")
    assert f'"answer": "{gold}"' in res.texts[0]
    r = fake.chat_requests()[-1]
    assert r["headers"]["Authorization"] == f"Bearer {KEY}" and "seed" in r["body"]
    assert res.cost_usd == pytest.approx(price("gpt-4o-mini", res.prompt_tokens,
                                               res.completion_tokens))
    assert client.simulated is False


async def test_vllm_server_with_a_bare_model_name(fake_provider, gsm8k_answers, tmp_path,
                                                  monkeypatch):
    """A name litellm cannot place plus an api_base: sent as is to the OpenAI-compatible server
    (no key needed, none sent), priced as the configured pricing model."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    fake = fake_provider("vllm", served=("Qwen2.5-7B-Instruct",))
    client = ExecutorClient(cfg_for(fake, "Qwen2.5-7B-Instruct", tmp_path,
                                    pricing_model="gpt-4o-mini"))
    assert client.transport.name == "http" and client.endpoint.provider == "openai"
    q, gold = question(gsm8k_answers)
    res = await client.chat(msgs(q), n=2)
    assert res.texts == [f"The answer is {gold}."] * 2
    r = fake.chat_requests()[-1]
    assert r["body"]["model"] == "Qwen2.5-7B-Instruct" and "Authorization" not in r["headers"]
    ident = client._identity
    assert "vllm /models/Qwen2.5-7B-Instruct" in ident  # what the server serves keys the cache


async def test_hosted_vllm_route_through_litellm(fake_provider, gsm8k_answers, tmp_path):
    fake = fake_provider("vllm", served=("Qwen2.5-7B-Instruct",))
    client = ExecutorClient(cfg_for(fake, "hosted_vllm/Qwen2.5-7B-Instruct", tmp_path,
                                    transport="litellm", pricing_model="gpt-4o-mini"))
    q, gold = question(gsm8k_answers)
    res = await client.chat(msgs(q))
    assert res.texts == [f"The answer is {gold}."]
    assert fake.chat_requests()[-1]["body"]["model"] == "Qwen2.5-7B-Instruct"


async def test_ollama_style_server_ignoring_n(fake_provider, gsm8k_answers, tmp_path):
    """Ollama's /v1 answers one choice whatever n asks: the rest are asked one by one."""
    fake = fake_provider("ollama", served=("llama3.1",))
    client = ExecutorClient(cfg_for(fake, "openai/llama3.1", tmp_path,
                                    pricing_model="gpt-4o-mini"))
    q, gold = question(gsm8k_answers)
    res = await client.chat(msgs(q), n=3, temperature=0.8)
    assert res.texts == [f"The answer is {gold}."] * 3
    seeds = [r["body"]["seed"] for r in fake.chat_requests()]
    assert len(seeds) == 3 and len(set(seeds)) == 3
    res = await client.chat(msgs(q + " "), n=2, temperature=0.8)  # learnt: one by one now
    assert len(res.texts) == 2 and len(fake.chat_requests()) == 5


# ---------------------------------------------------------------------- error classes


@pytest.mark.parametrize("protocol, model, key_var", [
    ("anthropic", "anthropic/claude-haiku-4-5", "ANTHROPIC_API_KEY"),
    ("azure", "azure/my-deployment", "AZURE_API_KEY"),
    ("openai", "gpt-4o-mini", "OPENAI_API_KEY"),
])
async def test_401_is_fatal_and_names_the_providers_key_variable(fake_provider, tmp_path,
                                                                 monkeypatch, protocol, model,
                                                                 key_var):
    fake = fake_provider(protocol, mode="401")
    monkeypatch.setenv(key_var, "sk-wrong-key-000000000000")
    client = ExecutorClient(cfg_for(fake, model, tmp_path, pricing_model="gpt-4o-mini"))
    t0 = time.monotonic()
    with pytest.raises(ExecutorFatal) as err:
        await client.chat(msgs("hello"))
    msg = str(err.value)
    assert "401" in msg and f"${key_var}" in msg and fake.url in msg and model in msg
    assert "\n" not in msg and "sk-wrong-key" not in msg
    assert len(fake.chat_requests()) == 1  # not retried
    # Every later call of the run fails at once, without another request.
    with pytest.raises(ExecutorFatal):
        await client.chat(msgs("again"))
    assert len(fake.chat_requests()) == 1 and time.monotonic() - t0 < 10


@pytest.mark.parametrize("protocol, model, mode, words", [
    ("openai", "gpt-4o-mini", "404", ["404", "--set executor.model"]),
    ("vllm", "hosted_vllm/fake-model", "404", ["404", "--set executor.model"]),
    ("azure", "azure/nope", "404", ["404", "deployment", "azure/<deployment>"]),
    ("anthropic", "anthropic/claude-haiku-4-5", "404", ["404"]),
    ("openai", "gpt-4o-mini", "403", ["403", "$OPENAI_API_KEY"]),
    ("openai", "gpt-4o-mini", "param", ["parameter rejected", "executor.transport=litellm"]),
])
async def test_fatal_statuses(fake_provider, tmp_path, monkeypatch, protocol, model, mode, words):
    fake = fake_provider(protocol, mode=mode)
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AZURE_API_KEY"):
        monkeypatch.setenv(var, KEY)
    client = ExecutorClient(cfg_for(fake, model, tmp_path, pricing_model="gpt-4o-mini"))
    with pytest.raises(ExecutorFatal) as err:
        await client.chat(msgs("hello"))
    for w in words:
        assert w in str(err.value), str(err.value)


@pytest.mark.parametrize("protocol, model", [
    ("openai", "gpt-4o-mini"), ("anthropic", "anthropic/claude-haiku-4-5")])
@pytest.mark.parametrize("mode, words", [("context", "context too long"),
                                         ("filter", "content filtered")])
async def test_per_item_errors_fail_one_call_only(fake_provider, tmp_path, monkeypatch,
                                                  protocol, model, mode, words):
    fake = fake_provider(protocol, mode=mode)
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.setenv(var, KEY)
    client = ExecutorClient(cfg_for(fake, model, tmp_path))
    with pytest.raises(ExecutorError) as err:
        await client.chat(msgs("a very long prompt"))
    assert not isinstance(err.value, ExecutorFatal) and words in str(err.value)
    assert len(fake.chat_requests()) == 1  # not retried
    fake.mode = "gold"  # the next item's call is made and answered: the run goes on
    assert (await client.chat(msgs("another item"))).texts == ["The answer is OK."]


async def test_server_errors_are_retried_then_fail_the_call(fake_provider, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    fake = fake_provider("openai", mode="500")
    client = ExecutorClient(cfg_for(fake, "gpt-4o-mini", tmp_path))
    with pytest.raises(ExecutorError) as err:
        await client.chat(msgs("x"))
    assert not isinstance(err.value, ExecutorFatal) and "after 3 attempts: HTTP 500" in str(err.value)


def test_unknown_provider_without_api_base_is_refused_before_any_call(monkeypatch):
    with pytest.raises(ExecutorFatal) as err:
        ExecutorClient(ExecutorConfig(model="claude-3-haiku-20240307", api_base=None))
    msg = str(err.value)
    assert "cannot tell which provider" in msg and "anthropic/claude-3-haiku-20240307" in msg
    assert "--set executor.api_base=URL" in msg and "\n" not in msg


def test_missing_key_names_the_providers_variable(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ExecutorFatal, match=r"no API key .* set \$ANTHROPIC_API_KEY"):
        ExecutorClient(ExecutorConfig(model="anthropic/claude-haiku-4-5", api_base=None))
    monkeypatch.setenv("MY_KEY", KEY)  # a variable the config names wins
    ep = resolve_endpoint(ExecutorConfig(model="anthropic/claude-haiku-4-5",
                                         api_base=None, api_key_env="MY_KEY"))
    assert ep.key_env == "MY_KEY" and ep.api_base is None


def test_api_base_from_the_providers_environment_variable(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_BASE", "http://127.0.0.1:9/")
    ep = resolve_endpoint(ExecutorConfig(model="anthropic/claude-haiku-4-5",
                                         api_base=None))
    assert ep.api_base == "http://127.0.0.1:9"  # what the cache identity and litellm both use


# ---------------------------------------------------------------------- preflight


def test_preflight_passes_and_says_what_the_endpoint_is(fake_provider, sim_server, tmp_path,
                                                        monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    fake = fake_provider("anthropic")
    info = check_executor(cfg_for(fake, "anthropic/claude-haiku-4-5", tmp_path))
    assert info["simulated"] is False and info["provider"] == "anthropic"
    assert info["dropped_params"] == ["n", "seed"] and len(fake.chat_requests()) == 1
    sim = check_executor(ExecutorConfig(api_base=sim_server.url))
    assert sim["simulated"] is True and sim["simulator"].startswith("w4s-sim/")


@pytest.mark.parametrize("mode", ["401", "404", "param"])
def test_preflight_stops_a_failing_endpoint_in_one_call(fake_provider, tmp_path, monkeypatch,
                                                        mode):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    fake = fake_provider("openai", mode=mode)
    t0 = time.monotonic()
    with pytest.raises(ExecutorFatal):
        check_executor(cfg_for(fake, "gpt-4o-mini", tmp_path))
    assert len(fake.chat_requests()) == 1 and time.monotonic() - t0 < 5


def test_preflight_refuses_a_request_the_endpoint_rejects(fake_provider, tmp_path, monkeypatch):
    """Our own minimal request failing with any client error means no workflow call can do
    better: fatal in the preflight, even though the same 400 mid-run fails one item only."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    fake = fake_provider("openai", mode="context")
    with pytest.raises(ExecutorFatal, match="preflight call failed"):
        check_executor(cfg_for(fake, "gpt-4o-mini", tmp_path))


# ---------------------------------------------------------------------- the docs table


def test_provider_table_in_the_docs_matches_litellm():
    """docs/EXECUTOR.md lists, per provider, the key variable and the parameters litellm does
    not take for it; the table is recomputed from litellm here, so the docs cannot drift."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "EXECUTOR.md").read_text()
    for row in provider_table():
        line = (f"| `{row['provider']}` | `{row['example']}` | `{row['key']}` | "
                f"{row['base']} | {row['dropped']} |").replace("`-`", "-")
        assert line in doc, line


async def test_an_endpoint_that_rejects_every_call_is_fatal_after_reject_limit(
        fake_provider, tmp_path, monkeypatch):
    """A per-item 400 on EVERY call (e.g. max_tokens beyond a small model's context) would
    score every item 0 in silence: after `reject_limit` rejections with no answer, a trivial
    request with the same max_tokens is tried; rejected too, the run stops."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    fake = fake_provider("openai", mode="context")
    client = ExecutorClient(cfg_for(fake, "gpt-4o-mini", tmp_path, reject_limit=3))
    for i in range(2):
        with pytest.raises(ExecutorError) as err:
            await client.chat(msgs(f"item {i}"), max_tokens=4096)
        assert not isinstance(err.value, ExecutorFatal)
    with pytest.raises(ExecutorFatal, match="rejected every call of this run") as err:
        await client.chat(msgs("item 2"), max_tokens=4096)
    assert "max_tokens=4096" in str(err.value) and len(fake.chat_requests()) == 4


async def test_an_endpoint_that_goes_down_mid_run_stops_the_run(fake_provider, tmp_path,
                                                                 monkeypatch):
    """Answers at first, then a 500 on every request (an outage that outlasts the retries):
    after `reject_limit` failed calls in a row and a failed minimal call, the run stops with a
    line that says what happened and how to go on, instead of scoring items 0 from then on."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    fake = fake_provider("openai", mode="gold", fail_after=2, fail_mode="500")
    client = ExecutorClient(cfg_for(fake, "gpt-4o-mini", tmp_path, reject_limit=3,
                                    cache=CacheConfig(enabled=False)))
    for i in range(2):
        assert (await client.chat(msgs(f"item {i}"))).texts
    for i in range(2):
        with pytest.raises(ExecutorError) as err:
            await client.chat(msgs(f"down {i}"))
        assert not isinstance(err.value, ExecutorFatal)
    with pytest.raises(ExecutorFatal, match="failed the last 3 calls in a row") as err:
        await client.chat(msgs("down 2"))
    assert "--resume" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ExecutorFatal):  # and every later call stops at once
        await client.chat(msgs("after"))


async def test_failures_between_answers_never_stop_the_run(fake_provider, tmp_path,
                                                            monkeypatch):
    """A flaky endpoint (every other call fails after its retries) is not an outage: the
    count of failures in a row starts again at each answer."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    fake = fake_provider("openai", mode="gold")
    client = ExecutorClient(cfg_for(fake, "gpt-4o-mini", tmp_path, reject_limit=2,
                                    cache=CacheConfig(enabled=False)))
    original = fake._error
    fake._error = lambda: (500, "server_error", "boom") \
        if "flaky" in str((fake.requests[-1]["body"] or {}).get("messages")) else original()
    for i in range(4):
        with pytest.raises(ExecutorError) as err:
            await client.chat(msgs(f"flaky {i}"))
        assert not isinstance(err.value, ExecutorFatal)
        assert (await client.chat(msgs(f"fine {i}"))).texts


async def test_a_workflow_sending_bad_requests_cannot_stop_the_run(fake_provider, tmp_path,
                                                                   monkeypatch):
    """Untrusted workflow code whose every call is rejected (here: the server refuses its
    requests, but answers a trivial one) only fails its own items; nothing becomes fatal."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    fake = fake_provider("openai", mode="gold")
    client = ExecutorClient(cfg_for(fake, "gpt-4o-mini", tmp_path, reject_limit=2))
    original = fake._error

    def reject_long_prompts():
        body = fake.requests[-1]["body"] or {}
        prompt = str(body.get("messages"))
        return (400, "context_length_exceeded", "maximum context length exceeded") \
            if "huge" in prompt else original()

    fake._error = reject_long_prompts
    for i in range(5):
        with pytest.raises(ExecutorError) as err:
            await client.chat(msgs(f"huge prompt {i}"))
        assert not isinstance(err.value, ExecutorFatal)
    assert (await client.chat(msgs("normal"))).texts == ["The answer is OK."]
