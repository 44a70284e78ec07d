"""Placement by role (runtime.placement) against described clusters: which resources each role
requests, when none are requested, and the one-line error for a resource no node declares.
The real multi-node runs are in test_multinode.py."""

from __future__ import annotations

import pytest

from w4s_ray.config import RayConfig, load_config
from w4s_ray.errors import ConfigError
from w4s_ray.runtime import placement

ONE_MACHINE = [{"CPU": 2.0, "memory": 1e9, "node:127.0.0.1": 1.0}]
ROLE_CLUSTER = [
    {"CPU": 4.0, "node:__internal_head__": 1.0},
    {"CPU": 8.0, "GPU": 1.0, "meta_agent": 1.0},
    {"CPU": 16.0, "evaluator": 16.0},
]
EVALUATORS_ONLY = [{"CPU": 4.0}, {"CPU": 16.0, "evaluator": 16.0}]


@pytest.fixture
def nodes(monkeypatch):
    def use(described):
        monkeypatch.setattr(placement, "_live_node_resources", lambda: described)
    return use


def test_one_machine_requests_nothing(nodes):
    nodes(ONE_MACHINE)
    rc = RayConfig()
    assert placement.role_resources(rc, "evaluator") == {}
    assert placement.meta_agent_options(rc) == {}
    assert placement.evaluator_options(rc) == {"scheduling_strategy": "SPREAD"}


def test_role_cluster_requests_each_roles_resource(nodes):
    nodes(ROLE_CLUSTER)
    rc = RayConfig()
    assert placement.evaluator_options(rc) == {"scheduling_strategy": "SPREAD",
                                               "resources": {"evaluator": 1.0}}
    assert placement.meta_agent_options(rc) == {"resources": {"meta_agent": 0.01}}
    renamed = RayConfig(evaluator_resource="cpu_pool", meta_agent_resource=None)
    nodes([{"CPU": 4.0}, {"CPU": 16.0, "cpu_pool": 8.0}])
    assert placement.role_resources(renamed, "evaluator") == {"cpu_pool": 1.0}
    assert placement.role_resources(renamed, "meta_agent") == {}


def test_missing_role_resource_on_a_role_cluster_is_one_error_line(nodes):
    nodes(EVALUATORS_ONLY)
    rc = RayConfig()
    assert placement.role_resources(rc, "evaluator") == {"evaluator": 1.0}
    with pytest.raises(ConfigError) as exc:
        placement.check_roles(rc, ["evaluator", "meta_agent"])
    msg = str(exc.value)
    assert "'meta_agent'" in msg and "evaluator" in msg and "\n" not in msg
    assert "ray.meta_agent_resource=null" in msg


def test_roles_mode_refuses_a_machine_without_them(nodes):
    nodes(ONE_MACHINE)
    with pytest.raises(ConfigError, match="no node of the Ray cluster declares it"):
        placement.role_resources(RayConfig(placement="roles"), "evaluator")
    nodes(ROLE_CLUSTER)
    assert placement.role_resources(RayConfig(placement="off"), "evaluator") == {}


def test_an_actor_bigger_than_any_node_is_refused(nodes):
    nodes(ROLE_CLUSTER)
    with pytest.raises(ConfigError, match="32 per actor"):
        placement.role_resources(RayConfig(evaluator_resource_per_actor=32), "evaluator")


def test_config_rejects_builtin_names_and_takes_set_overrides():
    with pytest.raises(ConfigError, match="evaluator_resource"):
        load_config(None, ["ray.evaluator_resource=CPU"])
    cfg = load_config(None, ["ray.meta_agent_resource=gpu_box", "ray.placement=roles"])
    assert placement.requested_resources(cfg.ray) == {"evaluator": 1.0, "gpu_box": 0.01}
