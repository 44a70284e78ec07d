"""Calling a served meta-agent through litellm (what `meta_agent.backend=litellm` does).

litellm speaks to the server as to any OpenAI endpoint (`model="openai/<name>"`,
`api_base="http://HOST:PORT/v1"`); only its cost code needs help: a served checkpoint is not in
litellm's price map, and `completion_cost` raises `ModelNotMappedError` for it (docs/PLATFORM.md).
`register_served_model` adds a zero-cost entry. No Ray, no network.
"""

from __future__ import annotations

from w4s_ray.executor.providers import import_litellm


def litellm_model_id(served_name: str) -> str:
    """`openai/<name>`: litellm's provider prefix for an OpenAI-compatible server."""
    return served_name if served_name.startswith("openai/") else f"openai/{served_name}"


def register_served_model(served_name: str, *, context_window: int | None = None) -> str:
    """Register `openai/<name>` in litellm's price map at zero cost; returns the model id."""
    litellm = import_litellm()

    model_id = litellm_model_id(served_name)
    entry = {
        "input_cost_per_token": 0.0,
        "output_cost_per_token": 0.0,
        "litellm_provider": "openai",
        "mode": "chat",
    }
    if context_window:
        entry["max_input_tokens"] = context_window
        entry["max_tokens"] = context_window
    litellm.register_model({model_id: entry})
    return model_id
