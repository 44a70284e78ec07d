"""Multi-node for real: one local Ray cluster of several raylets (`ray.cluster_utils.Cluster`)
shaped like clusters/aws-gpu.yaml — a head, a "GPU" node declaring `meta_agent`, two CPU nodes
declaring `evaluator` — runs a reduced sweep, collect and train.

Each test asserts where the actors ran (node id, and the role resource that node declares), and
removes a node mid-run: an evaluator node mid-sweep and mid-collect (the run must end with the
same trajectory rows as the undisturbed run before it), the meta-agent node mid-train (training
resumes from its last checkpoint on a fresh meta-agent node). One cluster for the module;
removed nodes are replaced so every test starts from the same shape.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.runtime import multinode_helpers as mh
from w4s_ray.config import RayConfig, SimConfig, load_config
from w4s_ray.errors import ConfigError

pytestmark = [pytest.mark.slow, pytest.mark.ray]

# Small nodes: logical CPUs are what placement sees; object stores at Ray's floor-ish size.
STORE = 80 * 2**20
HEAD = {"num_cpus": 1, "object_store_memory": STORE}
GPU = {"num_cpus": 2, "object_store_memory": STORE, "resources": {"meta_agent": 1}}
EVAL = {"num_cpus": 1, "object_store_memory": STORE, "resources": {"evaluator": 4}}


@dataclass
class Shape:
    cluster: Any
    gpu: Any
    evals: list = field(default_factory=list)

    def node_resources(self) -> dict[str, dict]:
        import ray

        return {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}

    def replace_eval(self, node) -> None:
        self.cluster.remove_node(node)
        self.evals.remove(node)

    def top_up(self) -> None:
        """Back to two evaluator nodes and one meta-agent node."""
        while len(self.evals) < 2:
            self.evals.append(self.cluster.add_node(**EVAL))
        self.cluster.wait_for_nodes()


@pytest.fixture(scope="module")
def shape():
    import ray
    from ray.cluster_utils import Cluster

    from w4s_ray.runtime.ray_init import init_ray

    was_up = ray.is_initialized()
    if was_up:
        ray.shutdown()
    # A private temp dir (short: Unix socket paths): the cluster's address file and sessions
    # stay out of /tmp/ray, where `--address auto` of anything else on the machine looks.
    tmp = tempfile.mkdtemp(prefix="w4smn", dir="/tmp")
    old_tmp = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = tmp
    cluster = Cluster(initialize_head=True, head_node_args=HEAD)
    try:
        s = Shape(cluster, cluster.add_node(**GPU), [cluster.add_node(**EVAL) for _ in range(2)])
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, logging_level="WARNING")
        yield s
    finally:
        ray.shutdown()
        cluster.shutdown()
        if old_tmp is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = old_tmp
        shutil.rmtree(tmp, ignore_errors=True)
        if was_up:  # the session's single-node Ray, for the modules after this one
            init_ray(RayConfig(num_cpus=4))


@pytest.fixture(scope="module")
def sim(data_dir):
    from w4s_ray.executor.sim.launch import start_sim

    # Latency so evaluations last long enough to lose a node in the middle of them.
    handle = start_sim(SimConfig(latency="fixed", latency_ms=250), data_dir, port=0)
    yield handle
    handle.stop()


def _cfg(tmp: Path, sim_url: str, *extra: str):
    return load_config(None, [
        f"run_dir={tmp}", "name=multinode", f"executor.api_base={sim_url}",
        "executor.cache.enabled=false", "eval.limit=3", "rlao.test_limit=2", "rlao.turns=1",
        "rlao.candidates=2", "rlao.max_repairs=1", "meta_agent.backend=scripted",
        "meta_agent.model=seed-variants", "eval.num_evaluators=2", "sweep.baselines=false",
        "sandbox.item_timeout_s=60", *extra,
    ])


def _check_evaluators_on_evaluator_nodes(shape: Shape, evaluators: list[dict],
                                         resources: dict[str, dict]) -> None:
    for a in evaluators:
        node = a["Address"]["NodeID"]
        declared = resources.get(node)
        # Dead nodes are gone from ray.nodes(): those were evaluator nodes by construction.
        if declared is not None:
            assert declared.get("evaluator", 0) > 0, (a["ActorClassName"], declared)
        assert node != shape.gpu.node_id and node != shape.cluster.head_node.node_id


def _lose_an_evaluator_node_mid_run(shape: Shape, before: set[str]):
    """Once both evaluators of the run are up and working, remove the node of the first."""
    victim: dict = {}

    def ready() -> bool:
        alive = [a for a in mh.actors_of("EvaluatorActor", before) if a["State"] == "ALIVE"]
        if len(alive) < 2:
            return False
        time.sleep(1.0)  # both are now inside evaluations (250 ms per executor call)
        node = next(n for n in shape.evals if n.node_id == alive[0]["Address"]["NodeID"])
        victim["node_id"] = node.node_id
        victim["node"] = node
        return True

    def remove() -> None:
        shape.replace_eval(victim["node"])

    return mh.when(ready, remove, timeout_s=120), victim


@pytest.mark.timeout(420)
def test_sweep_spreads_evaluators_and_survives_a_lost_evaluator_node(shape, sim, tmp_path):
    from w4s_ray.runtime.sweep import run_sweep
    from w4s_ray.sweep.layout import SweepLayout

    # Undisturbed: where does everything run?
    before = mh.actor_ids()
    out = run_sweep(_cfg(tmp_path / "calm", sim.url), ["gsm8k"], progress=False)
    assert out["failed"] == []
    evaluators = mh.actors_of("EvaluatorActor", before)
    assert len(evaluators) == 2
    resources = shape.node_resources()
    _check_evaluators_on_evaluator_nodes(shape, evaluators, resources)
    # SPREAD: one per evaluator node, not both on one.
    assert {a["Address"]["NodeID"] for a in evaluators} == {n.node_id for n in shape.evals}
    head = shape.cluster.head_node.node_id
    # The run's bookkeeping stays with the driver: the benchmark host, which also holds the
    # evaluator pool (sweep.pool_host), and the limiter.
    for cls in ("_BenchmarkHost", "RateLimiterActor"):
        mine = mh.actors_of(cls, before)
        assert mine and all(a["Address"]["NodeID"] == head for a in mine), cls
    assert not mh.actors_of("ObjectHost", before)  # no actor of its own for the pool
    calm = SweepLayout(tmp_path / "calm").bench("gsm8k").read_rows()
    assert calm

    # Disturbed: lose the node of one evaluator while both are evaluating.
    before = mh.actor_ids()
    watcher, victim = _lose_an_evaluator_node_mid_run(shape, before)
    out = run_sweep(_cfg(tmp_path / "storm", sim.url), ["gsm8k"], progress=False)
    watcher.join(timeout=5)
    assert watcher.error is None and watcher.fired, "the sweep ended before a node was removed"
    assert out["failed"] == []
    evaluators = mh.actors_of("EvaluatorActor", before)
    lost = [a for a in evaluators if a["Address"]["NodeID"] == victim["node_id"]]
    assert lost and all(a["State"] == "DEAD" for a in lost)
    # The lost one was replaced on the evaluator node that is left, nowhere else.
    survivors = [a for a in evaluators if a["Address"]["NodeID"] != victim["node_id"]]
    assert len(survivors) >= 2
    assert {a["Address"]["NodeID"] for a in survivors} == {shape.evals[0].node_id}
    storm = SweepLayout(tmp_path / "storm").bench("gsm8k").read_rows()
    assert mh.first_difference(mh.strip_timings(storm), mh.strip_timings(calm)) == ""
    shape.top_up()


@pytest.mark.timeout(420)
def test_collect_survives_a_lost_evaluator_node_with_the_same_rows(shape, sim, tmp_path):
    from w4s_ray.rlao.runs import RunDir
    from w4s_ray.runtime.collect import collect

    cfg = _cfg(tmp_path, sim.url)
    before = mh.actor_ids()
    calm = collect(cfg, ["gsm8k"], tmp_path / "calm", episodes=2, turns=1, progress=False)
    head = shape.cluster.head_node.node_id
    episodes = mh.actors_of("EpisodeActor", before)
    assert len(episodes) == 2 and all(a["Address"]["NodeID"] == head for a in episodes)
    _check_evaluators_on_evaluator_nodes(shape, mh.actors_of("EvaluatorActor", before),
                                         shape.node_resources())

    before = mh.actor_ids()
    watcher, victim = _lose_an_evaluator_node_mid_run(shape, before)
    storm = collect(cfg, ["gsm8k"], tmp_path / "storm", episodes=2, turns=1, progress=False)
    watcher.join(timeout=5)
    assert watcher.error is None and watcher.fired, "collect ended before a node was removed"
    assert storm["rows"] == calm["rows"] > 0
    evaluators = mh.actors_of("EvaluatorActor", before)
    assert any(a["Address"]["NodeID"] == victim["node_id"] and a["State"] == "DEAD"
               for a in evaluators)
    assert len(evaluators) >= 3  # the lost one was replaced
    rows = {name: mh.strip_timings(RunDir(tmp_path / name).read_rows())
            for name in ("calm", "storm")}
    assert mh.first_difference(rows["storm"], rows["calm"]) == ""
    shape.top_up()


@pytest.mark.timeout(300)
def test_meta_agent_actor_lands_on_the_meta_agent_node(shape, tiny_model_dir, tmp_path):
    from w4s_ray.runtime.meta_agent_actor import make_hosted_meta_agent, stop

    cfg = load_config(None, ["meta_agent.backend=local", f"meta_agent.model={tiny_model_dir}",
                             "meta_agent.max_tokens=8"])
    before = mh.actor_ids()
    agent = make_hosted_meta_agent(cfg)
    try:
        assert len(agent.generate([{"role": "user", "content": "hi"}], 1, seed=0)) == 1
        (actor,) = mh.actors_of("MetaAgentActor", before)
        assert actor["Address"]["NodeID"] == shape.gpu.node_id
        assert shape.node_resources()[shape.gpu.node_id]["meta_agent"] == 1
    finally:
        stop(agent)


@pytest.mark.timeout(300)
def test_a_lost_meta_agent_node_mid_call_restarts_the_actor_elsewhere_with_the_same_reply(
        shape, tiny_model_dir):
    from w4s_ray.runtime.meta_agent_actor import make_hosted_meta_agent, stop

    cfg = load_config(None, ["meta_agent.backend=local", f"meta_agent.model={tiny_model_dir}",
                             "meta_agent.max_tokens=48", "meta_agent.timeout_s=240"])
    msgs = [{"role": "user", "content": "Write solver(agent, task)."}]
    before = mh.actor_ids()
    agent = make_hosted_meta_agent(cfg)
    try:
        calm = agent.generate(msgs, 2, seed=7)
        old_gpu = shape.gpu
        shape.gpu = shape.cluster.add_node(**GPU)  # where the actor can be started again
        shape.cluster.wait_for_nodes()
        with ThreadPoolExecutor(1) as pool:
            call = pool.submit(agent.generate, msgs, 2, seed=7)
            time.sleep(0.2)  # the call is on its way or running on the old node
            shape.cluster.remove_node(old_gpu)
            storm = call.result(timeout=240)
        assert storm == calm
        (actor,) = mh.actors_of("MetaAgentActor", before)
        assert actor["NumRestarts"] >= 1 and actor["Address"]["NodeID"] == shape.gpu.node_id
        assert agent.generate(msgs, 2, seed=7) == calm
    finally:
        stop(agent)


def test_a_role_resource_no_node_declares_is_one_error_line_before_any_work(shape, sim,
                                                                            tmp_path):
    from w4s_ray.runtime.sweep import run_sweep

    cfg = _cfg(tmp_path / "r", sim.url, "ray.evaluator_resource=cpu_pool")
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as exc:
        run_sweep(cfg, ["gsm8k"], progress=False)
    msg = str(exc.value)
    assert "'cpu_pool'" in msg and "\n" not in msg and "evaluator, meta_agent" in msg
    assert time.monotonic() - t0 < 60  # refused, not waited on
    assert not (tmp_path / "r").exists()


@pytest.mark.timeout(600)
def test_train_runs_on_the_meta_agent_node_and_resumes_after_losing_it(shape, tiny_model_dir,
                                                                       tmp_path):
    import ray.cloudpickle as cp

    from tests.train.synth import make_rows, write_trajectories
    from w4s_ray.runtime.train_job import run_training
    from w4s_ray.train.trainer import RUN_NAME, latest_step

    cp.register_pickle_by_value(mh)  # the worker function ships with the job
    data = write_trajectories(tmp_path / "traj" / "part-0.parquet", make_rows(n_episodes=6))
    out = tmp_path / "train"
    cfg = load_config(None, [
        f"train.data={data}", f"train.base_model={tiny_model_dir}", f"train.out_dir={out}",
        "train.batch_size=2", "train.lr=3e-3", "train.epochs=2", "train.checkpoint_every=1",
        "train.strategy=ddp", "train.max_failures=2",
    ])
    old_gpu = shape.gpu
    fresh: dict = {}
    # Training runs in a thread; nodes are added here (Ray starts nodes on the main thread only).
    with ThreadPoolExecutor(1) as pool:
        try:
            job = pool.submit(run_training, cfg, worker=mh.recording_worker)
            end = time.monotonic() + 400
            while not job.done() and time.monotonic() < end and not (
                    (out / "ray" / RUN_NAME).is_dir() and latest_step(out / "ray" / RUN_NAME) >= 2):
                time.sleep(0.1)
            assert not job.done(), f"training ended before its node could be removed: {job}"
            fresh["node"] = shape.cluster.add_node(**GPU)  # where the group can restart
            shape.cluster.remove_node(old_gpu)
            shape.gpu = fresh["node"]
            res = job.result(timeout=400)
        finally:
            cp.unregister_pickle_by_value(mh)

    steps = [json.loads(x) for x in (out / mh.STEP_LOG).read_text().splitlines()]
    assert all(s["resources"].get("meta_agent") == pytest.approx(0.01) for s in steps)
    on_old = [s for s in steps if s["node"] == old_gpu.node_id]
    on_new = [s for s in steps if s["node"] == fresh["node"].node_id]
    assert on_old and on_new and len(on_old) + len(on_new) == len(steps)
    # Resumed from a checkpoint, not from scratch: the new node's first step follows a
    # checkpointed one, and the history has each step exactly once. Checkpoint 2 can be on disk
    # yet not committed by Ray Train when the node goes (the controller registers it after the
    # upload), so the group may restart from checkpoint 1 and redo step 2: never from step 1.
    first_new = min(s["step"] for s in on_new)
    assert 2 <= first_new <= max(s["step"] for s in on_old) + 1
    assert res.steps == 6 and [h["step"] for h in res.history] == list(range(1, 7))
    assert (res.model_dir / "config.json").is_file()


def _optimize_proc(shape: Shape, sim_url: str, run: Path, *extra: str):
    import subprocess
    import sys

    sets = ["executor.cache.enabled=false", "eval.limit=3", "rlao.test_limit=2", "rlao.turns=2",
            "rlao.candidates=2", "meta_agent.backend=scripted", "meta_agent.model=seed-variants",
            "eval.num_evaluators=2", "sandbox.item_timeout_s=60", f"executor.api_base={sim_url}"]
    args = [sys.executable, "-m", "w4s_ray", "optimize", "-b", "gsm8k", "--no-progress",
            "--address", shape.cluster.address, "--run-dir", str(run), *extra]
    for s in sets:
        args += ["--set", s]
    # Its own session: a kill -9 reaches the driver only, not the cluster it joined.
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


@pytest.mark.timeout(600)
def test_a_driver_killed_mid_run_resumes_on_the_cluster_with_the_same_rows(shape, sim, tmp_path):
    """The driver's node lost (kill -9 of the driver; the cluster lives on): a new driver with
    `--resume` finishes the run with the rows of an undisturbed one, on the same evaluator
    nodes."""
    import signal

    from w4s_ray.rlao.runs import RunDir

    calm = _optimize_proc(shape, sim.url, tmp_path / "calm")
    assert calm.wait(timeout=300) == 0, calm.stderr.read()[-3000:]

    run = tmp_path / "killed"
    before = mh.actor_ids()
    proc = _optimize_proc(shape, sim.url, run)
    end = time.monotonic() + 300
    # After the first turn's rows are durable and the next turn's evaluators are at work.
    while proc.poll() is None and time.monotonic() < end \
            and not any((run / "trajectories").glob("part-*.parquet")):
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before its driver could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # Its actors die with their owner; nothing of the dead driver keeps evaluating.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(
            a["State"] == "ALIVE" for a in mh.actors_of("EvaluatorActor", before)):
        time.sleep(0.5)
    assert not any(a["State"] == "ALIVE" for a in mh.actors_of("EvaluatorActor", before))

    before = mh.actor_ids()
    resumed = _optimize_proc(shape, sim.url, run, "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()[-3000:]
    _check_evaluators_on_evaluator_nodes(shape, mh.actors_of("EvaluatorActor", before),
                                         shape.node_resources())
    rows = {name: mh.strip_timings(RunDir(tmp_path / name).read_rows())
            for name in ("calm", "killed")}
    assert rows["calm"]
    assert mh.first_difference(rows["killed"], rows["calm"]) == ""
    a, b = (json.loads((tmp_path / n / "final.json").read_text()) for n in ("calm", "killed"))
    assert a["best"] == b["best"] and a["valid_accuracy"] == b["valid_accuracy"]
