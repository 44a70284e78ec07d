"""The W4S ablations and the paper table are configuration only: each experiment YAML loads,
selects what it says, and differs from the others only where the ablation means it to."""

from __future__ import annotations

import pytest

from w4s_ray.baselines import BASELINES
from w4s_ray.config import load_config

ABLATIONS = ["ablation_untrained", "ablation_rlao", "ablation_api"]


def _load(name):
    return load_config(name)


def test_ablations_differ_only_in_the_meta_agent():
    cfgs = {n: _load(n).model_dump(mode="json") for n in ABLATIONS}
    for c in cfgs.values():
        assert c["optimizers"]["method"] == "w4s"
    strip = ("name", "run_dir", "meta_agent")
    shared = [{k: v for k, v in c.items() if k not in strip} for c in cfgs.values()]
    assert shared[0] == shared[1] == shared[2]


def test_each_ablation_selects_its_meta_agent():
    untrained, rlao, api = (_load(n).meta_agent for n in ABLATIONS)
    assert untrained.backend == rlao.backend == "local"
    assert untrained.model == "Qwen/Qwen2.5-Coder-7B-Instruct"  # the RLAO recipe's base
    assert untrained.model == _load("rlao_recipe").train.base_model
    assert rlao.model == _load("rlao_recipe").serve.model  # the trained checkpoint
    assert api.backend == "litellm" and api.api_base is None  # the provider's own endpoint


@pytest.mark.parametrize("name", ABLATIONS)
def test_an_ablation_switches_meta_agent_from_the_command_line(name):
    cfg = load_config(name, ["meta_agent.backend=scripted", "meta_agent.model=seed-variants"])
    assert cfg.meta_agent.backend == "scripted"


def test_paper_table_lists_every_method_and_a_strong_meta_model_for_adas_aflow():
    cfg = _load("paper_table")
    assert set(cfg.sweep.methods) == set(BASELINES) | {"adas", "aflow", "w4s"}
    assert cfg.optimizers.meta_agent.backend == "litellm"
    assert cfg.meta_agent.model != cfg.optimizers.meta_agent.model


def test_bad_optimizer_settings_are_refused():
    from w4s_ray.errors import ConfigError

    with pytest.raises(ConfigError, match="optimizers.method"):
        load_config(None, ["optimizers.method=dspy"])
    with pytest.raises(ConfigError, match="reflexion_rounds"):
        load_config(None, ["optimizers.adas.reflexion_rounds=3"])
    with pytest.raises(ConfigError, match="lambda_"):
        load_config(None, ["optimizers.aflow.lambda_=1.5"])
