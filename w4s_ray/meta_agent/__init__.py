"""Meta-agent backends (litellm, local transformers, scripted) and the tiny offline model.

`make_meta_agent(cfg)` builds the backend named by `cfg.meta_agent.backend` in this process.
In Ray jobs, host the local backend in an actor instead:
`w4s_ray.runtime.meta_agent_actor.make_hosted_meta_agent(cfg)`.

Backends are imported when chosen (inside `make_meta_agent`): the local one imports torch and
transformers (seconds), the litellm one litellm (which also touches the network on import, see
docs/PLATFORM.md); every importer of `meta_agent.base` (the RLAO loop) would pay for both.
"""

from __future__ import annotations

from pathlib import Path

from w4s_ray.errors import ConfigError
from w4s_ray.meta_agent.base import MetaAgent, Usage


def make_meta_agent(cfg) -> MetaAgent:
    """The configured meta-agent, loaded in this process. `cfg`: the ExperimentConfig."""
    mcfg = cfg.meta_agent
    if mcfg.backend == "litellm":
        from w4s_ray.meta_agent.litellm_backend import LiteLLMMetaAgent

        return LiteLLMMetaAgent(mcfg)
    if mcfg.backend == "local":
        from w4s_ray.meta_agent.local_backend import LocalMetaAgent

        return LocalMetaAgent(mcfg)
    from w4s_ray.meta_agent.scripted import (
        SEED_VARIANTS,
        ScriptedMetaAgent,
        SeedVariantsMetaAgent,
        load_replies,
    )

    if mcfg.model == SEED_VARIANTS:
        return SeedVariantsMetaAgent()
    return ScriptedMetaAgent(load_replies(mcfg.model), name=f"scripted:{mcfg.model}")


def check_meta_agent(cfg) -> None:
    """The configured meta-agent can be built: one error line otherwise, before Ray starts.

    local: `meta_agent.model` is a model directory (config.json) or a hub name in the local
    Hugging Face cache; litellm: a key is at hand (or an api_base); scripted: the replies exist.
    Loads nothing."""
    mcfg = cfg.meta_agent
    if mcfg.backend == "litellm":
        from w4s_ray.meta_agent.litellm_backend import meta_agent_key

        meta_agent_key(mcfg)
        return
    if mcfg.backend == "scripted":
        from w4s_ray.meta_agent.scripted import SEED_VARIANTS

        if mcfg.model != SEED_VARIANTS and not Path(mcfg.model).expanduser().exists():
            raise ConfigError(f"meta_agent.model: scripted replies not found: {mcfg.model}")
        return
    path = Path(mcfg.model).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ConfigError(f"meta_agent.model {mcfg.model}: no config.json (not a Hugging "
                              "Face model directory)")
        return
    if _in_hf_cache(mcfg.model):
        return
    raise ConfigError(
        f"meta_agent.model {mcfg.model}: no such model directory; `make demo` builds one "
        f"(--set meta_agent.model=runs/demo/train/model), `w4s meta-agent init-tiny` builds "
        f"runs/tiny-meta-agent/model, or use an API model: --set meta_agent.backend=litellm "
        f"--set meta_agent.model=gpt-4o-mini")


def _in_hf_cache(name: str) -> bool:
    if name.count("/") != 1 or name.startswith((".", "/", "~")):
        return False
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        found = try_to_load_from_cache(name, "config.json")
    except Exception:  # noqa: BLE001 - not a valid repo id
        return False
    return isinstance(found, str)


__all__ = ["MetaAgent", "Usage", "check_meta_agent", "make_meta_agent"]
