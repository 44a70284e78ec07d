"""Dollars per call from litellm's own price map (bundled copy; LITELLM_LOCAL_MODEL_COST_MAP).

A model in the map is priced as itself. A model that is not (the simulator, a served
meta-agent) is priced as `executor.pricing_model`; with neither, construction fails with one
line saying what to set. No prices are hard-coded here.
"""

from __future__ import annotations

from w4s_ray.errors import ExecutorError
from w4s_ray.executor.providers import import_litellm


def _in_map(name: str) -> bool:
    litellm = import_litellm()
    return name in litellm.model_cost


def resolve_price_model(model: str, pricing_model: str | None) -> str:
    """The price-map entry that prices `model`."""
    candidates = [model]
    if "/" in model:
        candidates.append(model.split("/", 1)[1])
    for name in candidates:
        if _in_map(name):
            return name
    if pricing_model:
        for name in (pricing_model, pricing_model.split("/", 1)[-1]):
            if _in_map(name):
                return name
        raise ExecutorError(
            f"executor.pricing_model {pricing_model!r} is not in litellm's price map "
            f"(pick a listed model, e.g. gpt-4o-mini)"
        )
    raise ExecutorError(
        f"no price known for model {model}: set executor.pricing_model to a model in "
        f"litellm's price map (e.g. gpt-4o-mini)"
    )


def cost_usd(price_model: str, prompt_tokens: int, completion_tokens: int) -> float:
    litellm = import_litellm()
    prompt_cost, completion_cost = litellm.cost_per_token(
        model=price_model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
    )
    return float(prompt_cost) + float(completion_cost)
