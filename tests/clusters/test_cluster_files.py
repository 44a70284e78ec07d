"""clusters/: the files users hand to `ray up`, KubeRay and `ray job submit` carry what matters."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

CLUSTERS = Path(__file__).resolve().parents[2] / "clusters"


def _load(name: str) -> dict:
    return yaml.safe_load((CLUSTERS / name).read_text())


def test_launcher_has_gpu_meta_agent_group_and_cpu_evaluators():
    cfg = _load("aws-gpu.yaml")
    nodes = cfg["available_node_types"]
    gpu = nodes["gpu_meta_agent"]
    assert gpu["resources"]["GPU"] >= 1 and gpu["resources"]["meta_agent"] == 1
    assert gpu["node_config"]["InstanceType"].startswith(("g", "p"))
    cpu = nodes["cpu_evaluators"]
    assert "GPU" not in cpu["resources"] and cpu["resources"]["evaluator"] > 0
    assert cpu["max_workers"] >= cpu["min_workers"] >= 1
    assert cfg["head_node_type"] in nodes
    assert cfg["provider"]["type"] == "aws"
    head_cmds = " ".join(cfg["head_start_ray_commands"])
    assert "ray start --head" in head_cmds and "RAY_AUTH_MODE=disabled" in head_cmds
    setup = " ".join(cfg["setup_commands"])
    assert "ray[default,serve,data,train]==2.60.0" in setup


def _containers(template: dict) -> list[dict]:
    return template["template"]["spec"]["containers"]


def test_raycluster_groups_and_resources():
    rc = _load("kuberay/raycluster.yaml")
    assert rc["kind"] == "RayCluster" and rc["apiVersion"] == "ray.io/v1"
    spec = rc["spec"]
    assert spec["rayVersion"] == "2.60.0"
    head = _containers(spec["headGroupSpec"])[0]
    ports = {p["containerPort"] for p in head["ports"]}
    assert {6379, 8265, 8000} <= ports
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    gpu = _containers(groups["gpu-meta-agent"])[0]
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu["image"].endswith("-gpu")
    cpu = _containers(groups["cpu-evaluators"])[0]
    assert "nvidia.com/gpu" not in cpu["resources"]["limits"]
    for c in (head, gpu, cpu):
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["RAY_AUTH_MODE"] == "disabled"


def test_rayjob_runs_the_sweep_and_keys_come_from_a_secret():
    job = _load("kuberay/rayjob.yaml")
    assert job["kind"] == "RayJob"
    entry = job["spec"]["entrypoint"]
    assert entry.startswith("python -m w4s_ray sweep experiments/")
    sweep_cfg = entry.split()[4]
    assert (CLUSTERS.parent / sweep_cfg).is_file()
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    runtime_env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])
    assert "working_dir" in runtime_env
    head = _containers(job["spec"]["rayClusterSpec"]["headGroupSpec"])[0]
    key_env = [e for e in head["env"] if e["name"] == "OPENAI_API_KEY"]
    assert key_env and "secretKeyRef" in key_env[0]["valueFrom"]
    assert "sk-" not in (CLUSTERS / "kuberay/rayjob.yaml").read_text()


def test_runtime_env_is_valid_for_ray_job_submit():
    env = _load("runtime_env.yaml")
    assert set(env) <= {"env_vars", "excludes", "pip", "working_dir", "py_modules"}
    assert env["env_vars"]["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert ".venv/" in env["excludes"] and "runs/" in env["excludes"]
    from ray.runtime_env import RuntimeEnv

    RuntimeEnv(**env)  # ray's own validation of the keys and types


# -- autoscaling shape: what the code requests exists in every shipped cluster ------------------
def _kuberay_groups(spec: dict) -> dict[str, dict]:
    """{group: {resources, min, max}} of a RayCluster spec (resources from rayStartParams)."""
    out = {}
    for g in spec["workerGroupSpecs"]:
        raw = g.get("rayStartParams", {}).get("resources", "{}")
        res = json.loads(raw.strip().strip('"').replace('\\"', '"')) if raw else {}
        out[g["groupName"]] = {"resources": res, "min": g["minReplicas"],
                               "max": g["maxReplicas"], "replicas": g.get("replicas", 0)}
    return out


def _launcher_groups(cfg: dict) -> dict[str, dict]:
    return {name: {"resources": t.get("resources", {}), "min": t.get("min_workers", 0),
                   "max": t.get("max_workers", 0)}
            for name, t in cfg["available_node_types"].items() if name != cfg["head_node_type"]}


SHIPPED = {
    "aws-gpu.yaml": lambda: _launcher_groups(_load("aws-gpu.yaml")),
    "kuberay/raycluster.yaml": lambda: _kuberay_groups(_load("kuberay/raycluster.yaml")["spec"]),
    "kuberay/rayjob.yaml": lambda: _kuberay_groups(
        _load("kuberay/rayjob.yaml")["spec"]["rayClusterSpec"]),
}


def _requested_by_shipped_configs() -> dict[str, float]:
    """Every role resource the code requests under the default config and every shipped
    experiment config (runtime.placement)."""
    from w4s_ray.config import load_config
    from w4s_ray.runtime.placement import requested_resources

    out: dict[str, float] = {}
    for path in [None, *sorted((CLUSTERS.parent / "experiments").glob("*.yaml"))]:
        for name, amount in requested_resources(load_config(path).ray).items():
            out[name] = max(out.get(name, 0.0), amount)
    return out


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_requested_resource_is_declared_by_a_group_that_stays_up(name):
    groups = SHIPPED[name]()
    requested = _requested_by_shipped_configs()
    assert set(requested) == {"evaluator", "meta_agent"}  # the roles docs/CLUSTERS.md names
    for res, per_actor in requested.items():
        hosts = [g for g in groups.values() if g["resources"].get(res, 0) >= per_actor]
        assert hosts, f"{name}: no worker group declares {res}"
        # The placement check reads live nodes: a role's group must keep a node up.
        assert any(g["min"] >= 1 for g in hosts), f"{name}: {res} group may scale to zero"
    for gname, g in groups.items():
        assert 1 <= g["max"] and g["min"] <= g["max"], (name, gname, g)
        assert g.get("replicas", g["min"]) >= g["min"], (name, gname, g)
    # Evaluators and the meta-agent never share a group: a lost evaluator node must not take
    # the meta-agent (or training) with it.
    assert not any({"evaluator", "meta_agent"} <= set(g["resources"]) for g in groups.values())


# -- results outlive the cluster: a shared volume (PVC) for data and run_dir --------------------
# Field names of the KubeRay v1 CRDs (ray.io_rayjobs.yaml / ray.io_rayclusters.yaml) and of the
# Kubernetes core Pod/PVC API that these manifests use; a misspelt key is silently dropped by
# a lenient apply, so it is checked here.
RAYJOB_SPEC = {"activeDeadlineSeconds", "backoffLimit", "clusterSelector", "deletionStrategy",
               "entrypoint", "entrypointNumCpus", "entrypointNumGpus", "entrypointResources",
               "jobId", "managedBy", "metadata", "rayClusterSpec", "runtimeEnvYAML",
               "shutdownAfterJobFinishes", "submissionMode", "submitterConfig",
               "submitterPodTemplate", "suspend", "ttlSecondsAfterFinished"}
RAYCLUSTER_SPEC = {"autoscalerOptions", "enableInTreeAutoscaling", "gcsFaultToleranceOptions",
                   "headGroupSpec", "headServiceAnnotations", "managedBy", "rayVersion",
                   "suspend", "workerGroupSpecs"}
HEAD_GROUP = {"enableIngress", "headService", "rayStartParams", "serviceType", "template"}
WORKER_GROUP = {"groupName", "idleTimeoutSeconds", "maxReplicas", "minReplicas", "numOfHosts",
                "rayStartParams", "replicas", "scaleStrategy", "suspend", "template"}
VOLUME_MOUNT = {"name", "mountPath", "readOnly", "subPath", "subPathExpr", "mountPropagation"}
PVC_SOURCE = {"claimName", "readOnly"}
PVC_SPEC = {"accessModes", "resources", "storageClassName", "volumeMode", "volumeName",
            "selector", "dataSource", "dataSourceRef", "volumeAttributesClassName"}
MOUNT = "/mnt/shared"


def _cluster_specs() -> dict[str, dict]:
    return {"kuberay/raycluster.yaml": _load("kuberay/raycluster.yaml")["spec"],
            "kuberay/rayjob.yaml": _load("kuberay/rayjob.yaml")["spec"]["rayClusterSpec"]}


def _pod_specs(spec: dict) -> dict[str, dict]:
    out = {"head": spec["headGroupSpec"]["template"]["spec"]}
    out.update({g["groupName"]: g["template"]["spec"] for g in spec["workerGroupSpecs"]})
    return out


def test_kuberay_manifests_use_crd_fields_only():
    job = _load("kuberay/rayjob.yaml")
    assert set(job["spec"]) <= RAYJOB_SPEC, set(job["spec"]) - RAYJOB_SPEC
    for name, spec in _cluster_specs().items():
        assert set(spec) <= RAYCLUSTER_SPEC, (name, set(spec) - RAYCLUSTER_SPEC)
        assert set(spec["headGroupSpec"]) <= HEAD_GROUP, name
        for g in spec["workerGroupSpecs"]:
            assert set(g) <= WORKER_GROUP, (name, g["groupName"], set(g) - WORKER_GROUP)
        for group, pod in _pod_specs(spec).items():
            for v in pod.get("volumes", []):
                assert set(v) == {"name", "persistentVolumeClaim"}, (name, group, v)
                assert set(v["persistentVolumeClaim"]) <= PVC_SOURCE, (name, group, v)
            for c in pod["containers"]:
                for m in c.get("volumeMounts", []):
                    assert set(m) <= VOLUME_MOUNT and {"name", "mountPath"} <= set(m), m


def test_the_volume_claim_is_shared_by_every_pod_and_outlives_the_cluster():
    pvc = _load("kuberay/pvc.yaml")
    assert pvc["apiVersion"] == "v1" and pvc["kind"] == "PersistentVolumeClaim"
    assert set(pvc["spec"]) <= PVC_SPEC
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]  # head and workers mount it at once
    assert pvc["spec"]["resources"]["requests"]["storage"]
    # Not owned by a RayJob/RayCluster: deleting the cluster leaves it (and the results).
    assert "ownerReferences" not in pvc["metadata"]
    claim = pvc["metadata"]["name"]
    for name, spec in _cluster_specs().items():
        for group, pod in _pod_specs(spec).items():
            vols = {v["name"]: v["persistentVolumeClaim"]["claimName"]
                    for v in pod.get("volumes", [])}
            assert claim in vols.values(), (name, group, "does not mount the shared claim")
            for c in pod["containers"]:
                mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
                assert mounts, (name, group, c["name"])
                assert all(v in vols for v in mounts.values()), (name, group, mounts)
                assert vols[mounts[MOUNT]] == claim, (name, group, mounts)


def test_rayjob_keeps_its_results_on_the_volume_after_the_cluster_goes():
    job = _load("kuberay/rayjob.yaml")
    assert job["spec"]["shutdownAfterJobFinishes"] is True  # the cluster is deleted ...
    entry = job["spec"]["entrypoint"].split()
    run_dir = next(s.split("=", 1)[1] for s in entry if s.startswith("run_dir="))
    assert entry[entry.index(f"run_dir={run_dir}") - 1] == "--set"
    assert run_dir.startswith(MOUNT + "/")  # ... the results are on the claim, which is not
    env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"]
    assert env["W4S_DATA_DIR"].startswith(MOUNT + "/")
    from w4s_ray.config import load_config

    # the entrypoint's override is a valid setting of the sweep's config
    assert load_config(CLUSTERS.parent / entry[4], [f"run_dir={run_dir}"]).run_dir == run_dir


def test_raycluster_data_dir_is_on_the_volume():
    for group, pod in _pod_specs(_load("kuberay/raycluster.yaml")["spec"]).items():
        for c in pod["containers"]:
            env = {e["name"]: e.get("value") for e in c["env"]}
            assert env["W4S_DATA_DIR"].startswith(MOUNT + "/"), group


def test_cluster_docs_give_jobs_a_run_dir_that_outlives_the_job():
    """Every `ray job submit` of docs/CLUSTERS.md that runs a stage names a run_dir outside the
    job's working-dir copy: an absolute path or a URI (issue: a relative one is lost)."""
    text = (CLUSTERS.parent / "docs" / "CLUSTERS.md").read_text()
    blocks = re.findall(r"ray job submit.*?(?=\n\n|\n```)", text, flags=re.S)
    stages = [b for b in blocks if "python -m w4s_ray" in b]
    assert stages
    for b in stages:
        m = re.search(r"run_dir=(\S+)", b)
        assert m, b
        assert m.group(1).startswith(("/", "$PWD/")) or "://" in m.group(1), b
