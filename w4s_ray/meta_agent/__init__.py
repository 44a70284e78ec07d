"""Meta-agent backends (litellm, local transformers, scripted) and the tiny offline model.

`make_meta_agent(cfg)` builds the backend named by `cfg.meta_agent.backend` in this process.
In Ray jobs, host the local backend in an actor instead:
`w4s_ray.runtime.meta_agent_actor.make_hosted_meta_agent(cfg)`.
"""

from __future__ import annotations

from w4s_ray.meta_agent.base import MetaAgent, Usage


def make_meta_agent(cfg) -> MetaAgent:
    """The configured meta-agent, loaded in this process. `cfg`: the ExperimentConfig."""
    mcfg = cfg.meta_agent
    if mcfg.backend == "litellm":
        from w4s_ray.meta_agent.litellm_backend import LiteLLMMetaAgent

        return LiteLLMMetaAgent(mcfg)
    if mcfg.backend == "local":
        from w4s_ray.meta_agent.local_backend import LocalMetaAgent

        return LocalMetaAgent(mcfg, models_cfg=getattr(cfg, "models", None))
    from w4s_ray.meta_agent.scripted import (
        SEED_VARIANTS,
        ScriptedMetaAgent,
        SeedVariantsMetaAgent,
        load_replies,
    )

    if mcfg.model == SEED_VARIANTS:
        return SeedVariantsMetaAgent()
    return ScriptedMetaAgent(load_replies(mcfg.model), name=f"scripted:{mcfg.model}")


__all__ = ["MetaAgent", "Usage", "make_meta_agent"]
