"""Joining a Ray cluster is explicit (issue #14): no shipped config attaches to one, and
`auto` never silently picks another user's instance on a workstation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from w4s_ray.config import load_config
from w4s_ray.errors import ConfigError
from w4s_ray.runtime.ray_init import resolve_auto

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((REPO / "experiments").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_no_shipped_experiment_attaches_to_a_cluster(path):
    assert load_config(path).ray.address is None


def test_no_shipped_cluster_manifest_forces_an_address():
    """Jobs join their cluster through RAY_ADDRESS, which Ray sets for them."""
    for path in (REPO / "clusters").rglob("*.yaml"):
        text = path.read_text()
        assert "ray.address" not in text, path
        for doc in yaml.safe_load_all(text):
            assert "address: auto" not in yaml.safe_dump(doc or {}), path


def _cluster_file(tmp_path: Path, address: str, uid: int | None = None) -> str:
    from ray._private.utils import get_ray_address_file

    temp_dir = str(tmp_path / "ray")
    path = Path(get_ray_address_file(temp_dir))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(address)
    if uid is not None:
        os.chown(path, uid, -1)
    return temp_dir


def test_auto_is_the_users_own_ray_start_cluster(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert resolve_auto(_cluster_file(tmp_path, "127.0.0.1:6390")) == "127.0.0.1:6390"


@pytest.mark.skipif(os.geteuid() != 0, reason="making a file owned by another user needs root")
def test_auto_refuses_a_cluster_started_by_another_user(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    temp_dir = _cluster_file(tmp_path, "10.0.0.7:6379", uid=os.getuid() + 4242)
    with pytest.raises(ConfigError) as err:
        resolve_auto(temp_dir)
    msg = str(err.value)
    assert "started by another user" in msg and "--address 10.0.0.7:6379" in msg


def test_auto_without_a_cluster_is_an_error_not_a_scan(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(ConfigError, match="no Ray cluster started with `ray start`"):
        resolve_auto(str(tmp_path / "empty"))


def test_auto_inside_a_job_uses_ray_address(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.1.2.3:6379")
    assert resolve_auto(str(tmp_path / "empty")) == "10.1.2.3:6379"


def test_address_flag_sets_ray_address(tmp_path):
    from w4s_ray.cli import _load_cfg, build_parser

    args = build_parser().parse_args(["collect", "--address", "10.0.0.9:6379"])
    assert _load_cfg(args).ray.address == "10.0.0.9:6379"
