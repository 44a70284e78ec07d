"""litellm's bundled price map, read without importing litellm (`executor.lazy_litellm`).

Importing litellm costs about 2.3 CPU-seconds in every process that builds an `ExecutorClient`
(each evaluator actor of a run), yet a client on the plain HTTP transport needs only three
answers from it: whether a name is in the price map, the two per-token rates of an entry, and
whether an OpenAI model is a reasoning model (the transport choice). litellm answers them from
the JSON file it ships (`model_prices_and_context_window_backup.json`) whenever
LITELLM_LOCAL_MODEL_COST_MAP=true (w4s's offline default, `env.apply_offline_defaults`); this
module reads the same file (~35 ms) and answers the same way.

It answers only where the answer is litellm's for certain, and returns None otherwise, so the
caller imports litellm as before:
- the map comes from the network (LITELLM_LOCAL_MODEL_COST_MAP is not true), or the file is
  missing or unreadable;
- litellm is already imported in this process (entries registered at run time, e.g. a served
  meta-agent's zero-cost model, live only in `litellm.model_cost`);
- an entry whose price is not two per-token rates (tiers above N tokens, per-character or
  per-second prices, non-chat modes), or not an OpenAI entry: `linear_rates` says None;
- a name that is not a key of the map (`supports_reasoning`: litellm may still place it).
tests/executor/test_price_map.py checks every answer against litellm itself, entry by entry.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

MAP_FILE = "model_prices_and_context_window_backup.json"
NOT_A_MODEL = ("fallback_generalizations",)  # litellm pops these when it loads the file
# Cost fields that cannot change the price of a text call priced by prompt and completion
# tokens alone (cached, batch, priority, flex and web-search prices apply to other calls).
_TEXT_CALL_SAFE = frozenset({
    "input_cost_per_token", "output_cost_per_token",
    "cache_read_input_token_cost", "cache_creation_input_token_cost",
    "cache_read_input_token_cost_batches", "cache_creation_input_token_cost_batches",
    "cache_read_input_token_cost_priority", "cache_creation_input_token_cost_priority",
    "cache_read_input_token_cost_flex",
    "input_cost_per_token_batches", "output_cost_per_token_batches",
    "input_cost_per_token_priority", "output_cost_per_token_priority",
    "input_cost_per_token_flex", "output_cost_per_token_flex",
    "search_context_cost_per_query",
})
_CHAT_MODES = frozenset({"chat", "completion", "responses"})


def _usable() -> bool:
    return "litellm" not in sys.modules and \
        os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP", "").lower() == "true"


@functools.lru_cache(maxsize=1)
def _load() -> dict[str, Any] | None:
    try:
        spec = importlib.util.find_spec("litellm")  # finds the package, does not run it
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(list(spec.submodule_search_locations)[0]) / MAP_FILE
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, ImportError):
        return None
    if not isinstance(data, dict):
        return None
    return {k: v for k, v in data.items() if k not in NOT_A_MODEL and isinstance(v, dict)}


def bundled_map() -> dict[str, Any] | None:
    """The price map litellm would load in this process, or None (see the module docstring)."""
    return _load() if _usable() else None


def in_map(name: str) -> bool | None:
    """Whether `name` is a key of litellm's price map; None: ask litellm."""
    m = bundled_map()
    return None if m is None else name in m


def linear_rates(name: str) -> tuple[float, float] | None:
    """(dollars per prompt token, per completion token) of a map entry priced linearly for a
    text call; None: ask litellm (not in the map, tiered or otherwise priced, map unusable)."""
    m = bundled_map()
    entry = m.get(name) if m is not None else None
    if entry is None or entry.get("mode", "chat") not in _CHAT_MODES:
        return None
    # Other providers' entries: litellm cannot place some of them (and then refuses to price
    # them); "ft:" names resolve to their base model. Both are left to litellm.
    if entry.get("litellm_provider") != "openai" or ":" in name:
        return None
    costs = {k for k in entry if "cost" in k}
    if not costs <= _TEXT_CALL_SAFE:
        return None
    rin, rout = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
    if not all(isinstance(r, (int, float)) and not isinstance(r, bool) for r in (rin, rout)):
        return None
    return float(rin), float(rout)


def _capability_patterns() -> list[tuple[str, bool]]:
    """(regex, fills exact entries) of litellm's capability fallback rules: they change what
    litellm reports for names they match (docs in litellm's fallback_generalizations)."""
    try:
        spec = importlib.util.find_spec("litellm")
        path = Path(list(spec.submodule_search_locations)[0]) / MAP_FILE  # type: ignore[union-attr]
        rules = json.loads(path.read_bytes()).get("fallback_generalizations", {}).get("rules")
    except (OSError, ValueError, ImportError, AttributeError, TypeError):
        return [(".", True)]  # unreadable: every name may match, so nothing is certain
    out = []
    for rule in rules if isinstance(rules, list) else []:
        info = rule.get("model_info") if isinstance(rule, dict) else None
        if not isinstance(info, dict) or set(info) <= {"litellm_provider"}:
            continue  # a routing rule: it picks a provider, never a capability
        out.append((str(rule.get("pattern", ".")), bool(rule.get("fill_missing_for_providers"))))
    return out


_PATTERNS: list[tuple[str, bool]] | None = None


def _rule_matches(name: str, exact: bool) -> bool:
    global _PATTERNS
    import re

    if _PATTERNS is None:
        _PATTERNS = _capability_patterns()
    for pattern, fills in _PATTERNS:
        if exact and not fills:
            continue  # only flagged rules touch names that are in the map
        try:
            if re.search(pattern, name, re.IGNORECASE):
                return True
        except re.error:
            return True
    return False


def supports_reasoning(model: str) -> bool | None:
    """litellm's `supports_reasoning(model=...)` for an OpenAI wire model name, where certain:
    the name is a key of the map (as is or as `openai/<name>`) that no fallback rule amends, or
    it is nowhere in the map (any case) and no fallback rule matches it (litellm: False).
    None: ask litellm."""
    m = bundled_map()
    if m is None or ":" in model:  # "ft:<base>:..." names resolve to their base model
        return None
    names = (model, f"openai/{model}")
    for name in names:
        entry = m.get(name)
        if entry is not None:
            if entry.get("litellm_provider") != "openai" or _rule_matches(name, exact=True):
                return None
            return bool(entry.get("supports_reasoning", False))
    lower = {n.lower() for n in names}
    if any(k.lower() in lower for k in m) or any(_rule_matches(n, exact=False) for n in names):
        return None
    return False
