"""Dollars per call: a fixed per-token price, $0, or litellm's own price map (bundled copy;
LITELLM_LOCAL_MODEL_COST_MAP).

`resolve_pricing` decides once, at client construction, in this order:
1. `executor.price_per_mtok_in/out` given: those two rates (a self-hosted or negotiated price);
2. `executor.pricing_model: free`: every call costs $0 (a self-hosted executor);
3. the model is in litellm's map: priced as itself;
4. `executor.pricing_model` names a map entry: priced as that entry (the simulator is priced
   as the model it imitates this way);
5. otherwise construction fails with one line saying what to set. An unknown model is never
   silently priced at $0: free is only ever what the config says.
No prices are hard-coded here.
"""

from __future__ import annotations

from dataclasses import dataclass

from w4s_ray.errors import ExecutorError
from w4s_ray.executor import price_map
from w4s_ray.executor.providers import import_litellm

FREE = "free"


@dataclass(frozen=True)
class Pricing:
    """How calls are priced. `label` is what reports print ("priced as ..."): a price-map entry,
    "free", or the two custom rates. `rates` (dollars per prompt token, per completion token)
    is set for fixed prices; otherwise `map_entry` is asked (see `client._Prices`)."""

    label: str
    rates: tuple[float, float] | None = None
    map_entry: str | None = None


def _in_map(name: str, lazy: bool = False) -> bool:
    # lazy (executor.lazy_litellm): litellm's bundled map read as JSON where that is the map
    # litellm would use (executor.price_map), else litellm itself.
    known = price_map.in_map(name) if lazy else None
    if known is not None:
        return known
    litellm = import_litellm()
    return name in litellm.model_cost


def resolve_price_model(model: str, pricing_model: str | None, lazy: bool = False) -> str:
    """The price-map entry that prices `model` (steps 3-5 of the module docstring)."""
    candidates = [model]
    if "/" in model:
        candidates.append(model.split("/", 1)[1])
    for name in candidates:
        if _in_map(name, lazy):
            return name
    if pricing_model:
        for name in (pricing_model, pricing_model.split("/", 1)[-1]):
            if _in_map(name, lazy):
                return name
        raise ExecutorError(
            f"executor.pricing_model {pricing_model!r} is not in litellm's price map "
            f"(pick a listed model, e.g. gpt-4o-mini; or `free` for a self-hosted executor)"
        )
    raise ExecutorError(
        f"no price known for model {model}: set executor.pricing_model to a model in "
        f"litellm's price map (e.g. gpt-4o-mini), executor.pricing_model=free for a "
        f"self-hosted executor, or executor.price_per_mtok_in/out"
    )


def resolve_pricing(model: str, pricing_model: str | None, price_per_mtok_in: float | None,
                    price_per_mtok_out: float | None, lazy: bool = False) -> Pricing:
    """The `Pricing` of `model` under the config (module docstring); ExecutorError if none."""
    if price_per_mtok_in is not None and price_per_mtok_out is not None:
        rate_in, rate_out = float(price_per_mtok_in) / 1e6, float(price_per_mtok_out) / 1e6
        label = FREE if rate_in == rate_out == 0 else \
            f"${price_per_mtok_in:g}/${price_per_mtok_out:g} per Mtok (in/out)"
        return Pricing(label, (rate_in, rate_out))
    if pricing_model is not None and pricing_model.strip().lower() == FREE:
        return Pricing(FREE, (0.0, 0.0))
    entry = resolve_price_model(model, pricing_model, lazy)
    return Pricing(entry, None, entry)


def cost_usd(price_model: str, prompt_tokens: int, completion_tokens: int) -> float:
    litellm = import_litellm()
    prompt_cost, completion_cost = litellm.cost_per_token(
        model=price_model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
    )
    return float(prompt_cost) + float(completion_cost)
