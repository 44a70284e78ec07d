"""executor.price_map answers as litellm does, for every entry it answers for at all."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from w4s_ray.executor import price_map
from w4s_ray.executor.client import _Prices
from w4s_ray.executor.cost import resolve_pricing
from w4s_ray.executor.providers import import_litellm

PROBES = ((1, 1), (977, 313), (150_000, 40_000), (1_000_000, 250_000))


@pytest.fixture
def litellm(monkeypatch):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    mod = import_litellm()
    # In a process that imported litellm the module defers to it; here we compare the two.
    monkeypatch.setattr(price_map, "_usable", lambda: True)
    return mod


def _fresh_process(code: str, cwd) -> str:
    """`code` run in a new interpreter with litellm's offline map; returns its stdout."""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env=env, cwd=cwd)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_bundled_map_is_litellms_map(tmp_path):
    """In a fresh process (other tests register entries into this one's litellm)."""
    code = ("import json, sys\n"
            "from w4s_ray.executor import price_map\n"
            "mine = price_map.bundled_map()\n"
            "import litellm\n"
            "print(json.dumps(mine == litellm.model_cost))\n")
    assert _fresh_process(code, tmp_path).split()[-1] == "true"


def test_linear_rates_agree_with_litellm_for_every_entry(litellm):
    answered = 0
    for name in litellm.model_cost:
        rates = price_map.linear_rates(name)
        if rates is None:
            continue
        answered += 1
        for pt, ct in PROBES:
            want = sum(litellm.cost_per_token(model=name, prompt_tokens=pt,
                                              completion_tokens=ct))
            got = pt * rates[0] + ct * rates[1]
            assert got == pytest.approx(want, rel=1e-12, abs=1e-30), name
    assert answered > 50  # OpenAI's chat models are answered without litellm
    assert price_map.linear_rates("gpt-4o-mini") is not None
    assert price_map.linear_rates("no-such-model-xyz") is None


def test_tiered_prices_are_left_to_litellm(litellm):
    tiered = [k for k, e in litellm.model_cost.items()
              if any("above" in f for f in e if "cost" in f)]
    assert tiered and all(price_map.linear_rates(k) is None for k in tiered)


def test_supports_reasoning_agrees_with_litellm(litellm):
    openai = [k for k, e in litellm.model_cost.items() if e.get("litellm_provider") == "openai"]
    others = ["sim-gpt-4o-mini", "foo-model", "gpt-5-sim", "GPT-4O-MINI", "ft:gpt-4o-mini:x::y",
              "claude-sonnet-4-5", "sim-o3"]
    answered = 0
    for name in openai + others:
        mine = price_map.supports_reasoning(name)
        if mine is None:
            continue
        answered += 1
        try:
            want = bool(litellm.supports_reasoning(model=name))
        except Exception:  # noqa: BLE001 - what transport._openai_reasoning_model does
            want = False
        assert mine == want, name
    assert answered > 100
    assert price_map.supports_reasoning("sim-gpt-4o-mini") is False  # the simulator's default
    assert any(price_map.supports_reasoning(k) for k in openai)  # some answered True too


def test_pricing_is_the_same_with_and_without_litellm(litellm):
    for model, pricing_model in (("openai/sim-gpt-4o-mini", "gpt-4o-mini"),
                                 ("openai/gpt-4o", None), ("openai/sim-x", "gpt-4.1-nano")):
        lazy = _Prices(resolve_pricing(model, pricing_model, None, None, lazy=True), lazy=True)
        eager = _Prices(resolve_pricing(model, pricing_model, None, None))
        assert lazy.price_model == eager.price_model
        for pt, ct in PROBES:
            assert lazy.cost(pt, ct) == pytest.approx(eager.cost(pt, ct), rel=1e-12)


def test_unusable_when_litellm_would_fetch_the_map(monkeypatch):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "False")
    monkeypatch.delitem(sys.modules, "litellm", raising=False)
    assert price_map.bundled_map() is None
    assert price_map.in_map("gpt-4o-mini") is None and price_map.linear_rates("gpt-4o") is None


def test_a_lazy_client_never_imports_litellm(tmp_path):
    """The evaluator actors' case: an HTTP-transport client priced from the map."""
    code = ("import sys\n"
            "from w4s_ray.config import ExecutorConfig\n"
            "from w4s_ray.executor.client import ExecutorClient\n"
            "c = ExecutorClient(ExecutorConfig(api_base='http://127.0.0.1:9/v1'))\n"
            "assert type(c.transport).__name__ == 'OpenAIHTTPTransport'\n"
            "print(c.price_model, c._prices.cost(1000, 100), 'litellm' in sys.modules)\n")
    model, cost, imported = _fresh_process(code, tmp_path).split()
    assert model == "gpt-4o-mini" and imported == "False"
    assert float(cost) == pytest.approx(1000 * 1.5e-07 + 100 * 6e-07)
