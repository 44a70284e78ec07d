"""The typed experiment config: YAML + --set overrides, validated once, errors name the key."""

from __future__ import annotations

import pytest

from w4s_ray.config import ExperimentConfig, dump_config, load_config
from w4s_ray.errors import ConfigError


def test_defaults_are_the_paper_codes():
    cfg = load_config()
    assert cfg.rlao.protocol == "w4s"
    assert cfg.rlao.candidates == 5
    assert cfg.meta_agent.temperature == 0.5 and cfg.meta_agent.max_tokens == 4096
    assert cfg.rlao.history_window == 2  # upstream context_window: 2-turn trajectories
    assert cfg.rlao.max_repairs == 2  # debug_max=3 evaluated attempts: 1 + 2 repairs
    assert cfg.rlao.max_turn_attempts == 3 and cfg.rlao.drop_accuracy == 0.05
    assert cfg.eval.failure_samples == 10 and cfg.eval.feedback == "w4s"
    assert cfg.eval.execute_code_guard and cfg.eval.extra_random_items == 10
    assert cfg.train.temperature == 0.4 and cfg.train.lr == 2e-5 and cfg.train.epochs == 3
    assert cfg.train.loss_on == "all_assistant"


def test_the_w4s_ray_protocol_brings_back_the_earlier_defaults_unless_set():
    cfg = load_config(None, ["rlao.protocol=w4s-ray"])
    assert cfg.rlao.max_repairs == 3 and cfg.eval.failure_samples == 5
    assert cfg.eval.feedback == "w4s-ray" and not cfg.eval.execute_code_guard
    assert cfg.eval.extra_random_items == 0
    explicit = load_config(None, ["rlao.protocol=w4s-ray", "rlao.max_repairs=1",
                                  "eval.extra_random_items=4"])
    assert explicit.rlao.max_repairs == 1 and explicit.eval.extra_random_items == 4
    with pytest.raises(ConfigError, match="racing"):
        load_config(None, ["rlao.racing.enabled=true"])


def test_benchmark_list_defaults_to_the_registry():
    from w4s_ray.benchmarks import check_benchmarks, list_benchmarks

    cfg = load_config()
    assert cfg.benchmarks is None  # no second list of names in the config
    assert check_benchmarks(cfg.benchmarks) == list_benchmarks()


def _fields(model, prefix=""):
    from pydantic import BaseModel

    for name, info in model.model_fields.items():
        yield f"{prefix}{name}", info
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            yield from _fields(info.annotation, f"{prefix}{name}.")


def test_every_field_has_a_description():
    missing = [path for path, info in _fields(ExperimentConfig) if not info.description]
    assert missing == []


@pytest.mark.parametrize("key, value, needle", [
    ("train.temperature", "0", "greater than 0"),
    ("train.temperature", "-1", "greater than 0"),
    ("executor.temperature", "3", "less than or equal to 2"),
    ("eval.num_evaluators", "0", "greater than or equal to 1"),
    ("eval.self_check_items", "0", "greater than or equal to 1"),
    ("train.num_workers", "0", "greater than or equal to 1"),
    ("serve.autoscale_max", "2", r"autoscale_min \(3\) is larger than autoscale_max \(2\)"),
    ("tiny.num_kv_heads", "3", "must divide evenly"),
])
def test_bounds_and_cross_field_rules_live_in_the_schema(key, value, needle):
    extra = ["serve.autoscale_min=3"] if key == "serve.autoscale_max" else []
    with pytest.raises(ConfigError, match=needle):
        load_config(None, [*extra, f"{key}={value}"])


def test_yaml_then_overrides_with_types(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("name: x\nexecutor:\n  model: openai/a\n  max_concurrency: 8\n")
    cfg = load_config(path, ["executor.max_concurrency=16", "rlao.protocol=w4s-ray",
                             "rlao.racing.enabled=true",
                             "benchmarks=[gsm8k, drop]", "executor.budget_usd=1.5"])
    assert cfg.name == "x"
    assert cfg.executor.model == "openai/a"
    assert cfg.executor.max_concurrency == 16
    assert cfg.rlao.racing.enabled is True
    assert cfg.benchmarks == ["gsm8k", "drop"]
    assert cfg.executor.budget_usd == 1.5


def test_override_keeps_strings_that_look_like_other_types():
    cfg = load_config(None, ["executor.model=gpt-4o-mini", "meta_agent.model=openai/w4s"])
    assert cfg.executor.model == "gpt-4o-mini"
    assert cfg.meta_agent.model == "openai/w4s"


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (["executor.modle=x"], "unknown key 'executor.modle'"),
        (["nosuch=1"], "unknown key 'nosuch'"),
        (["executor.max_concurrency=lots"], "executor.max_concurrency"),
        (["rlao.reward=best"], "rlao.reward"),
        (["executor=3"], "executor"),
        (["novalue"], "expected key.path=value"),
        (["executor.model.deep=1"], "executor.model"),
        (["eval.scoring=strict"], "eval.scoring"),
    ],
)
def test_bad_overrides_name_the_key(overrides, needle):
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_scoring_defaults_to_official_and_is_described():
    from w4s_ray.config import EvalConfig

    assert load_config(None, []).eval.scoring == "official"
    assert load_config(None, ["eval.scoring=lenient"]).eval.scoring == "lenient"
    assert "official" in EvalConfig.model_fields["scoring"].description


def test_malformed_yaml_is_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("executor:\n  model: [unclosed\n")
    with pytest.raises(ConfigError, match="malformed YAML at line") as err:
        load_config(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text, line, reason", [
    # the parser gives up at the end of the file: the line to fix is where the quote opened
    ('name: x\nexecutor:\n  model: "abc\n  api_base: y\n', 3, "found unexpected end of stream"),
    ("name: x\nexecutor:\n  model: a\n   api_base: y\n", 4, "mapping values are not allowed"),
    ("name: x\n\tfoo: 1\n", 2, "found character '\\t' that cannot start any token"),
    ("name: [a, b\nrun_dir: x\n", 2, "expected ',' or ']'"),
])
def test_malformed_yaml_names_the_reason_and_the_line(tmp_path, text, line, reason):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: malformed YAML at line {line}, column "), msg
    assert reason in msg and "\n" not in msg


def test_unknown_key_in_yaml_names_the_file(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("rlao:\n  turnz: 3\n")
    with pytest.raises(ConfigError, match=r"typo.yaml: unknown key 'rlao.turnz'"):
        load_config(path)


def test_missing_config_file():
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("/nonexistent/exp.yaml")


def test_data_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("W4S_DATA_DIR", str(tmp_path))
    assert load_config().data_dir() == tmp_path.resolve()
    other = tmp_path / "other"
    assert load_config(None, [f"data.dir={other}"]).data_dir() == other.resolve()


def test_dump_round_trips(tmp_path):
    cfg = load_config(None, ["rlao.turns=3", "executor.budget_usd=2"])
    dump_config(cfg, tmp_path / "cfg.yaml")
    again = load_config(tmp_path / "cfg.yaml")
    assert again == cfg
    assert isinstance(again, ExperimentConfig)


def test_every_experiment_yaml_validates():
    from w4s_ray.config import EXPERIMENTS_DIR

    files = sorted(EXPERIMENTS_DIR.glob("*.yaml"))
    for path in files:
        load_config(path)


def test_every_shipped_config_gives_the_meta_agent_upstreams_4096_reply_tokens():
    # Fewer cuts long workflows into syntax errors (issue #16); the local backend clamps to the
    # model's context at run time, never the config.
    # The one exception: `w4s demo --real` decodes SmolLM2's replies on 2 CPU cores, where
    # 4096 steps per sample would take the whole hour; its cap still fits a seed-sized
    # reply (the seed edits it trains on are 275-358 SmolLM2 tokens) and its report states it.
    from w4s_ray.config import EXPERIMENTS_DIR

    for path in sorted(EXPERIMENTS_DIR.glob("*.yaml")):
        cfg = load_config(path)
        if path.name == "demo-real.yaml":
            assert cfg.demo.real and 360 <= cfg.meta_agent.max_tokens < 4096
            continue
        assert cfg.meta_agent.max_tokens == 4096, path.name


@pytest.mark.parametrize("name, figures", [
    ("humaneval_gpt4o_mini", {("humaneval", 95.4)}),
    ("math_transfer_gpt35", {("gsm8k", 86.5), ("gsm_hard", 61.8)}),
    ("math_gpt4o_mini", {("math", 63.0)}),
])
def test_paper_shaped_configs_state_the_papers_figures(name, figures):
    from w4s_ray.config import EXPERIMENTS_DIR

    cfg = load_config(EXPERIMENTS_DIR / f"{name}.yaml")
    assert {(f.benchmark, f.value) for f in cfg.paper} == figures
    assert cfg.rlao.protocol == "w4s" and cfg.train.lr == 2e-5 and cfg.train.epochs == 3
    if name == "math_transfer_gpt35":  # trained on GSM-Plus + MGSM, tested on unseen tasks
        assert set(cfg.benchmarks) == {"gsm_plus", "mgsm"}
        assert cfg.executor.model == "gpt-3.5-turbo"
