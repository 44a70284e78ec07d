"""Where each role runs on a multi-node Ray cluster: custom resources per role, evaluators
spread over nodes, coordination actors next to the driver.

Roles and what they request (names and amounts in `ray.*`, see `RayConfig`):

- `evaluator`: every `EvaluatorActor` asks for `ray.evaluator_resource_per_actor` units of
  `ray.evaluator_resource` (CPU nodes in clusters/) and is scheduled with Ray's `SPREAD`
  strategy, so a pool fans out over the evaluator nodes instead of filling one.
- `meta_agent`: the local meta-agent's actor, every Ray Train worker and every Serve replica ask
  for `ray.meta_agent_resource_per_actor` units of `ray.meta_agent_resource` (GPU nodes).
- coordination (the hosted evaluator pool, episode actors, the sweep's rate limiter): pinned to
  the driver's node (`driver_node()`), so losing a worker node never takes the run's
  bookkeeping with it; only evaluations (re-run elsewhere) and training (restored from its last
  checkpoint) live on nodes that can disappear.

`ray.placement`: `auto` requests role resources only on a cluster that declares at least one of
them (on one machine, or a cluster without roles, everything runs as Ray schedules it);
`roles` always requests them; `off` never. A requested resource that no live node declares (or
declares less of than one actor needs) is a `ConfigError` naming it: Ray would otherwise keep
the actor pending forever. The check reads the live nodes (`ray.nodes()`), so with an
autoscaler the group carrying a role must keep at least one node up (the shipped cluster files
do; tests/clusters checks it). Capacity beyond one actor is left to Ray and the autoscaler.

Not here: GPU counts (`meta_agent.num_gpus`, `train.use_gpu`, `serve.num_gpus` stay where they
are), placement groups (SPREAD is enough for independent actors).
"""

from __future__ import annotations

from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from w4s_ray.config import RayConfig
from w4s_ray.errors import ConfigError

ROLES = ("evaluator", "meta_agent")


def _live_node_resources() -> list[dict[str, float]]:
    return [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]


def _role(rc: RayConfig, role: str) -> tuple[str | None, float]:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    return getattr(rc, f"{role}_resource"), getattr(rc, f"{role}_resource_per_actor")


def requested_resources(rc: RayConfig) -> dict[str, float]:
    """Every custom resource the code may request with this config: {name: units per actor}."""
    out: dict[str, float] = {}
    for role in ROLES:
        name, amount = _role(rc, role)
        if name:
            out[name] = amount
    return out


def role_resources(rc: RayConfig, role: str) -> dict[str, float]:
    """The custom resources one actor of `role` requests on the current cluster ({} = none).

    Raises ConfigError when the role's resource is requested but no live node can host one
    actor of it. Ray must be initialised."""
    name, amount = _role(rc, role)
    if rc.placement == "off" or not name:
        return {}
    nodes = _live_node_resources()
    if rc.placement == "auto":
        declared = set(requested_resources(rc))
        if not any(declared & set(res) for res in nodes):
            return {}
    if not any(res.get(name, 0.0) >= amount for res in nodes):
        have = sorted({k for res in nodes for k in res if not _builtin(k)})
        raise ConfigError(
            f"ray.placement: the {role} role needs custom resource {name!r} ({amount:g} per "
            f"actor) but no node of the Ray cluster declares it (custom resources present: "
            f"{', '.join(have) or 'none'}); add nodes with it (clusters/), or set "
            f"ray.{role}_resource=null or ray.placement=off")
    return {name: amount}


def _builtin(key: str) -> bool:
    return key in ("CPU", "GPU", "memory", "object_store_memory") or key.startswith(
        ("node:", "accelerator_type:"))


def check_roles(rc: RayConfig, roles: tuple[str, ...] | list[str]) -> None:
    """Fail before any work when a role this stage needs cannot be placed."""
    for role in roles:
        role_resources(rc, role)


def evaluator_options(rc: RayConfig) -> dict[str, Any]:
    """Actor options of an evaluator: its role resource and the SPREAD strategy."""
    opts: dict[str, Any] = {"scheduling_strategy": "SPREAD"}
    res = role_resources(rc, "evaluator")
    if res:
        opts["resources"] = res
    return opts


def meta_agent_options(rc: RayConfig) -> dict[str, Any]:
    """Actor options of the meta-agent role (its actor; train workers and replicas add the
    same `resources`)."""
    res = role_resources(rc, "meta_agent")
    return {"resources": res} if res else {}


def driver_node() -> NodeAffinitySchedulingStrategy:
    """A hard affinity to the node of the calling process (the driver's, when called there)."""
    return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
