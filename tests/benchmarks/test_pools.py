"""Spare pools beyond valid/test (validation noise, collection split): disjoint from both,
W4S's GSM-Hard layout, and the noise draw of an evaluation (seeded by the workflow)."""

from __future__ import annotations

import pytest

from w4s_ray.benchmarks import get_benchmark, list_benchmarks
from w4s_ray.benchmarks.base import POOLS, shuffled
from w4s_ray.workflow.evaluate import EvalRequest, noise_items, select_items

WITH_POOLS = {"gsm_hard", "mgsm", "gsm_plus", "drop", "mmlu_pro", "svamp"}


@pytest.mark.parametrize("name", list_benchmarks())
def test_pools_are_disjoint_from_valid_and_test(name, data_dir):
    bm = get_benchmark(name, data_dir)
    fixed = {it.id for s in ("valid", "test") for it in bm.load(s)}
    pools = {p: [it.id for it in bm.load(p)] for p in POOLS}
    assert not fixed & {i for ids in pools.values() for i in ids}
    assert bool(pools["extra"]) == (name in WITH_POOLS)


def test_gsm_hard_pools_follow_w4s(data_dir):
    # W4S task_gsmhard.py: seed-0 shuffle; valid [:128], test [128:628], noise [628:828],
    # training [828:] of which the first 60 are fixed.
    bm = get_benchmark("gsm_hard", data_dir)
    order = [f"gsm_hard/{i}" for i, _ in shuffled(list(enumerate(range(1319))), 0)]
    assert [it.id for it in bm.load("valid")] == order[:128]
    assert [it.id for it in bm.load("extra")] == order[628:828]
    assert [it.id for it in bm.load("train")] == order[828:888]
    assert [it.id for it in bm.load("train_extra")] == order[888:]


def test_noise_items_are_drawn_from_the_pool_seeded_by_the_workflow(data_dir):
    bm = get_benchmark("gsm_hard", data_dir)
    pool = {it.id for it in bm.load("extra")}
    req = EvalRequest("def solver(agent, task): return {}", "gsm_hard", limit=5, extra_items=10)
    items = select_items(bm, req)
    assert len(items) == 15 and [it.id for it in items[:5]] == [
        it.id for it in bm.load("valid")[:5]]
    extra = [it.id for it in items[5:]]
    assert set(extra) <= pool and len(set(extra)) == 10
    assert [it.id for it in noise_items(bm, req)] == extra  # same workflow, same draw
    other = EvalRequest("def solver(agent, task): return {1: 2}", "gsm_hard", extra_items=10)
    assert [it.id for it in noise_items(bm, other)] != extra
    train = EvalRequest(req.code, "gsm_hard", "train", extra_items=10)
    got = select_items(bm, train)
    assert [it.id for it in got[:60]] == [it.id for it in bm.load("train")]
    assert {it.id for it in got[60:]} <= {it.id for it in bm.load("train_extra")}
    # No pool (gsm8k), no noise; explicit item ids (racing, test ids) never get noise.
    g = get_benchmark("gsm8k", data_dir)
    assert noise_items(g, EvalRequest("x", "gsm8k", extra_items=10)) == []
    ids = [it.id for it in bm.load("valid")[:3]]
    assert len(select_items(bm, EvalRequest("x", "gsm_hard", item_ids=ids,
                                            extra_items=10))) == 3
    assert noise_items(bm, EvalRequest("x", "gsm_hard", "test", extra_items=10)) == []
