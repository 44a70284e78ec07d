"""Every baseline renders for every family into a valid workflow with its method's settings."""

from __future__ import annotations

import ast
import re

import pytest

from w4s_ray.baselines import (
    BASELINES,
    FAMILIES,
    FAMILY_VALUES,
    baseline_workflows,
    get_baseline,
    render,
    render_baseline,
)
from w4s_ray.errors import W4SError

PAIRS = [(name, family) for name in BASELINES for family in FAMILIES]


def calls_in(source: str) -> list[ast.Call]:
    return [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)]


@pytest.mark.parametrize("name,family", PAIRS)
def test_every_baseline_renders_for_every_family(name, family):
    src = render_baseline(name, family, "SPEC: one number.")
    tree = ast.parse(src)
    fn = tree.body[0]
    assert isinstance(fn, ast.FunctionDef) and fn.name == "solver"
    assert [a.arg for a in fn.args.args] == ["agent", "task"]
    assert not re.search(r"[\"']__[A-Z_]+__[\"']", src)  # every placeholder filled
    assert repr("SPEC: one number.") in src
    assert repr(FAMILY_VALUES[family]["ANSWER_KEY"]) in src
    # Only the agent API reaches the model; the answer goes back under "answer".
    used = {c.func.attr for c in calls_in(src) if isinstance(c.func, ast.Attribute)
            and isinstance(c.func.value, ast.Name) and c.func.value.id == "agent"}
    assert used == {"call_json_format_llm"}
    assert '"answer":' in src


def test_registry_has_the_seven_methods_adas_compares_with():
    assert list(BASELINES) == ["cot", "cot_sc", "self_refine", "llm_debate", "step_back",
                               "quality_diversity", "role_assignment"]
    for b in BASELINES.values():
        assert b.description and b.settings and "ADAS" in b.origin
    assert get_baseline("cot").title == "Chain-of-Thought"
    with pytest.raises(W4SError, match="unknown baseline 'nope'"):
        get_baseline("nope")
    with pytest.raises(W4SError, match="no baselines for benchmark kind"):
        render_baseline("cot", "vision", "x")


def test_family_values_follow_adas_roles():
    assert FAMILY_VALUES["math"]["DEBATE_ROLES"].split("|") == [
        "Math Professor", "Grade School Teacher", "Math Enthusiast"]
    assert len(FAMILY_VALUES["multiple_choice"]["DEBATE_ROLES"].split("|")) == 4
    assert FAMILY_VALUES["reading"]["COMBINE"] == "decide"
    assert FAMILY_VALUES["code"]["ANSWER_KEY"] == "code"


def test_render_refuses_a_placeholder_without_value():
    with pytest.raises(ValueError, match="__ROLES__"):
        render('x = "__ROLES__"\n', {})


def test_baseline_workflows_for_a_benchmark(family_benchmarks):
    for family, bm in family_benchmarks.items():
        flows = baseline_workflows(bm)
        assert list(flows) == list(BASELINES)
        assert all(repr(bm.answer_format) in code for code in flows.values()), family
    assert list(baseline_workflows(family_benchmarks["math"], ["cot_sc"])) == ["cot_sc"]
