"""The local (transformers) meta-agent hosted in one Ray actor, and a MetaAgent proxy to it.

Loading a model once per process would copy it into every episode; one actor holds it and
serves `generate` calls from the optimize driver or from every collect episode. The actor asks
for `meta_agent.num_cpus` (fractional: it must not starve evaluators on a 2-core box) and
`meta_agent.num_gpus` (a GPU node on clusters), plus the `meta_agent` role resource when the
cluster declares roles (runtime.placement). Calls run one at a time (the model is not
re-entrant); a timeout (`meta_agent.timeout_s`) turns a hung actor into an error instead of a
hang. A lost actor (its node removed, its process killed) is started again by Ray on a node
that fits it, up to `meta_agent.max_restarts` times, and the call in flight is retried: a
seeded `generate` is a pure function of its arguments, so at-least-once delivery is safe. An
error raised while the model loads is not retried (Ray does not restart a failed constructor). `RemoteMetaAgent` pickles (it holds only the actor handle), so episodes running in other
actors can share it.
"""

from __future__ import annotations

from pathlib import Path

import ray

from w4s_ray.config import MetaAgentConfig, RayConfig
from w4s_ray.env import apply_offline_defaults
from w4s_ray.errors import ExecutorError
from w4s_ray.meta_agent import make_meta_agent
from w4s_ray.meta_agent.base import MetaAgent, Usage
from w4s_ray.meta_agent.local_backend import LocalMetaAgent
from w4s_ray.models.resolve import resolve_for
from w4s_ray.runtime.placement import meta_agent_options
from w4s_ray.runtime.ray_init import reraise_user_error


@ray.remote
class MetaAgentActor:
    def __init__(self, cfg: MetaAgentConfig, models_cfg=None) -> None:
        apply_offline_defaults()
        self.agent = LocalMetaAgent(cfg, models_cfg=models_cfg)

    def name(self) -> str:
        return self.agent.name

    def generate(self, messages, n, seed=None) -> list[str]:
        return self.agent.generate(messages, n, seed=seed)

    def usage(self) -> Usage:
        return self.agent.usage


class RemoteMetaAgent(MetaAgent):
    """MetaAgent interface over a MetaAgentActor handle."""

    def __init__(self, handle, name: str, timeout_s: float) -> None:
        super().__init__()
        self.handle = handle
        self.name = name
        self.timeout_s = timeout_s

    def generate(self, messages, n, *, seed=None):
        ref = self.handle.generate.remote(messages, n, seed)
        try:
            out = ray.get(ref, timeout=self.timeout_s)
        except ray.exceptions.GetTimeoutError:
            ray.cancel(ref, force=False)
            raise ExecutorError(
                f"meta-agent {self.name}: no reply within {self.timeout_s:.0f} s"
            ) from None
        except ray.exceptions.RayTaskError as exc:
            reraise_user_error(exc)
        self.usage.calls += 1
        return out


def start_meta_agent_actor(cfg: MetaAgentConfig, ray_cfg: RayConfig | None = None,
                           models_cfg=None) -> RemoteMetaAgent:
    """Start the actor and wait until the model is loaded (load errors surface here).
    `ray_cfg`: where the meta-agent role goes (runtime.placement; None: anywhere).
    `models_cfg`: the `models:` section, for preset names and the GGUF cache."""
    resolve_for(models_cfg, cfg.model, what="meta_agent.model")  # input errors before the actor
    path = Path(cfg.model).expanduser()
    if path.is_dir():  # the actor's working directory may not be ours (a joined Ray)
        cfg = cfg.model_copy(update={"model": str(path.resolve())})
    role = meta_agent_options(ray_cfg) if ray_cfg is not None else {}
    handle = MetaAgentActor.options(num_cpus=cfg.num_cpus, num_gpus=cfg.num_gpus,
                                    max_restarts=cfg.max_restarts,
                                    max_task_retries=cfg.max_restarts, **role).remote(cfg, models_cfg)
    try:
        name = ray.get(handle.name.remote(), timeout=cfg.timeout_s)
    except ray.exceptions.RayActorError as exc:
        # An error in the actor's __init__ comes back as text only; `reraise_user_error`
        # recovers our one-line user error from it when there is one.
        reraise_user_error(exc)
    return RemoteMetaAgent(handle, name, cfg.timeout_s)


def make_hosted_meta_agent(cfg) -> MetaAgent:
    """`make_meta_agent`, except that the local backend lives in a Ray actor."""
    if cfg.meta_agent.backend == "local":
        return start_meta_agent_actor(cfg.meta_agent, cfg.ray, getattr(cfg, "models", None))
    return make_meta_agent(cfg)


def stop(agent: MetaAgent) -> None:
    if isinstance(agent, RemoteMetaAgent):
        ray.kill(agent.handle, no_restart=True)
