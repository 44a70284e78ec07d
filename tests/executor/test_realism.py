"""Executor settings for real, self-hosted executors (issue #17): `executor.max_tokens_cap` bounds
what any call sends, on the plain-HTTP, litellm and simulator paths alike; `pricing_model: free`
and `price_per_mtok_in/out` price a self-hosted executor, and the budget follows those dollars;
an unknown model with no price is refused, never silently free."""

from __future__ import annotations

import pytest

from tests.fixtures.providers import FakeProvider
from w4s_ray.config import CacheConfig, ExecutorConfig, load_config
from w4s_ray.errors import BudgetExceeded, ConfigError, ExecutorError
from w4s_ray.executor.client import ExecutorClient

SERVED = "Qwen2.5-7B-Instruct"


def cfg_for(url: str, model: str, tmp_path, **kw) -> ExecutorConfig:
    base = dict(model=model, api_base=url, pricing_model="free",
                cache=CacheConfig(path=str(tmp_path / "cache.sqlite")),
                retry_base_delay_s=0.01, retry_max_delay_s=0.02, max_retries=1, timeout_s=10)
    base.update(kw)
    return ExecutorConfig(**base)


def ask(q: str) -> list[dict]:
    return [{"role": "user", "content": q}]


def first_question(gsm8k_answers) -> str:
    return next(iter(gsm8k_answers))


# ---------------------------------------------------------------------- max_tokens_cap


@pytest.mark.parametrize("model, transport", [
    (SERVED, "http"),                         # plain aiohttp POST
    (f"hosted_vllm/{SERVED}", "litellm"),     # litellm.acompletion
])
async def test_a_workflow_asking_too_many_tokens_is_sent_the_cap(
        fake_provider: type[FakeProvider], gsm8k_answers, tmp_path, model, transport):
    fake = fake_provider("vllm", served=(SERVED,))
    client = ExecutorClient(cfg_for(fake.url, model, tmp_path, transport=transport,
                                    max_tokens_cap=256))
    assert client.transport.name == transport
    q = first_question(gsm8k_answers)
    res = await client.chat(ask(q), max_tokens=100_000, tags={"candidate": "c1"})
    assert res.texts and res.texts[0].strip()  # answered, not refused
    assert fake.chat_requests()[-1]["body"]["max_tokens"] == 256
    await client.chat(ask(q + " again"), max_tokens=100)  # below the cap: sent as asked
    assert fake.chat_requests()[-1]["body"]["max_tokens"] == 100
    s = client.stats()
    assert s["capped"] == 1 and s["calls"] == 2 and s["max_tokens_cap"] == 256
    assert client.ledger[(("candidate", "c1"),)]["capped"] == 1
    assert client.describe()["max_tokens_cap"] == 256


async def test_the_cap_applies_on_the_simulator_and_keys_the_cache(sim_server, tmp_path):
    """Two asks above the cap are the same request as sent: the second is a cache hit."""
    cfg = cfg_for(sim_server.url, "openai/sim-gpt-4o-mini", tmp_path, pricing_model="gpt-4o-mini",
                  max_tokens_cap=64)
    client = ExecutorClient(cfg)
    from tests.fixtures.sim import SYNTHETIC_ITEMS

    q = SYNTHETIC_ITEMS[0]["question"]
    first = await client.chat(ask(q), max_tokens=50_000)
    before = sim_server.stats()["requests"]
    again = await client.chat(ask(q), max_tokens=9_999)
    assert again.cached == [True] and again.texts == first.texts
    assert sim_server.stats()["requests"] == before
    assert first.completion_tokens <= 64
    assert client.stats()["capped"] == 2


async def test_no_cap_sends_what_the_workflow_asked(fake_provider, gsm8k_answers, tmp_path):
    fake = fake_provider("vllm", served=(SERVED,))
    client = ExecutorClient(cfg_for(fake.url, SERVED, tmp_path, max_tokens_cap=None))
    await client.chat(ask(first_question(gsm8k_answers)), max_tokens=20_000)
    assert fake.chat_requests()[-1]["body"]["max_tokens"] == 20_000
    assert client.stats()["capped"] == 0


def test_the_default_cap_is_the_agent_apis_default():
    # 4096 = W4S's `max_completion_tokens` default: an API-hosted run sends what it always did.
    assert ExecutorConfig().max_tokens_cap == 4096
    assert load_config(None, ["executor.max_tokens_cap=null"]).executor.max_tokens_cap is None
    with pytest.raises(ConfigError, match="max_tokens_cap"):
        load_config(None, ["executor.max_tokens_cap=0"])


# ---------------------------------------------------------------------- pricing


async def test_free_pricing_costs_nothing_and_never_spends_the_budget(
        fake_provider, gsm8k_answers, tmp_path):
    fake = fake_provider("vllm", served=(SERVED,))
    client = ExecutorClient(cfg_for(fake.url, SERVED, tmp_path, pricing_model="free",
                                    budget_usd=0.000001, cache=CacheConfig(enabled=False)))
    assert client.price_model == "free" and client.describe()["price_model"] == "free"
    for j in range(3):
        res = await client.chat(ask(f"{first_question(gsm8k_answers)} #{j}"))
        assert res.cost_usd == 0.0 and res.prompt_tokens > 0 and res.completion_tokens > 0
    s = client.stats()
    assert s["cost_usd"] == 0.0 and s["run_spent_usd"] == 0.0 and s["calls"] == 3


async def test_per_token_prices_bill_exactly_and_stop_at_the_budget(
        fake_provider, gsm8k_answers, tmp_path):
    fake = fake_provider("vllm", served=(SERVED,))
    client = ExecutorClient(cfg_for(fake.url, SERVED, tmp_path, pricing_model=None,
                                    price_per_mtok_in=2.0, price_per_mtok_out=10.0,
                                    budget_usd=1e-9, cache=CacheConfig(enabled=False)))
    res = await client.chat(ask(first_question(gsm8k_answers)))
    want = res.prompt_tokens * 2.0 / 1e6 + res.completion_tokens * 10.0 / 1e6
    assert res.cost_usd == pytest.approx(want, rel=1e-12) and res.cost_usd > 1e-9
    assert client.stats()["cost_usd"] == pytest.approx(want)
    assert "$2/$10 per Mtok" in client.price_model
    with pytest.raises(BudgetExceeded):  # the budget follows the configured price
        await client.chat(ask("another question"))


async def test_explicit_prices_win_over_the_price_map(fake_provider, gsm8k_answers, tmp_path):
    """A self-hosted server may serve a model under a listed name: the config's price counts."""
    fake = fake_provider("openai", served=("gpt-4o-mini",))
    client = ExecutorClient(cfg_for(fake.url, "openai/gpt-4o-mini", tmp_path, api_key_env=None,
                                    pricing_model=None, price_per_mtok_in=0,
                                    price_per_mtok_out=0))
    assert client.price_model == "free"
    free = ExecutorClient(cfg_for(fake.url, "openai/gpt-4o-mini", tmp_path,
                                  pricing_model="free"))
    assert free.price_model == "free"


def test_an_unknown_model_without_a_price_is_refused_not_free(tmp_path):
    cfg = cfg_for("http://127.0.0.1:9/v1", "openai/my-self-hosted-model", tmp_path,
                  pricing_model=None)
    with pytest.raises(ExecutorError) as err:
        ExecutorClient(cfg)
    line = str(err.value)
    assert "\n" not in line and "no price known for model openai/my-self-hosted-model" in line
    assert "executor.pricing_model=free" in line and "price_per_mtok_in/out" in line


@pytest.mark.parametrize("sets, needle", [
    (["executor.price_per_mtok_in=1"], "set together"),
    (["executor.price_per_mtok_out=1"], "set together"),
    (["executor.pricing_model=free", "executor.price_per_mtok_in=1",
      "executor.price_per_mtok_out=2"], "choose one"),
    (["executor.price_per_mtok_in=-1", "executor.price_per_mtok_out=1"], "price_per_mtok_in"),
])
def test_contradictory_price_settings_are_refused(sets, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config(None, sets)
