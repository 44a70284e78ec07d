"""Atomic writes follow the umask (results are readable by teammates), except private ones."""

from __future__ import annotations

import os
import stat

import pytest

from w4s_ray.utils.io import atomic_write_json, atomic_write_text, current_umask


@pytest.fixture
def umask():
    old = os.umask(0o022)
    os.umask(old)

    def set_(mask: int) -> None:
        os.umask(mask)

    yield set_
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_files_get_the_mode_open_would_give_them(tmp_path, umask, mask, mode):
    umask(mask)
    assert current_umask() == mask
    atomic_write_text(tmp_path / "report.md", "x")
    atomic_write_json(tmp_path / "final.json", {"a": 1})
    for name in ("report.md", "final.json"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == mode
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert stat.S_IMODE(os.stat(plain).st_mode) == mode


def test_private_files_stay_owner_only(tmp_path, umask):
    umask(0o022)
    atomic_write_text(tmp_path / "secret", "k", private=True)
    assert stat.S_IMODE(os.stat(tmp_path / "secret").st_mode) == 0o600


def test_a_rewrite_keeps_no_stray_temp_file(tmp_path):
    for i in range(3):
        atomic_write_json(tmp_path / "cost.json", {"i": i})
    assert [p.name for p in tmp_path.iterdir()] == ["cost.json"]
