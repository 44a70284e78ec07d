"""Shared helpers for the benchmark tests (real files from W4S_DATA_DIR)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from w4s_ray.benchmarks import data as D


def build_tmp_data_dir(src: Path, dst: Path, replace: dict[str, bytes] | None = None,
                       omit: set[str] = frozenset()) -> Path:
    """A data dir made of symlinks to `src`'s manifest files, except `replace`d/`omit`ted ones."""
    replace = replace or {}
    for e in D.manifest():
        if e.path in omit:
            continue
        target = dst / e.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if e.path in replace:
            target.write_bytes(replace[e.path])
        else:
            target.symlink_to(src / e.path)
    return dst


@pytest.fixture()
def tmp_data_copy(tmp_path: Path, data_dir: Path):
    def make(replace: dict[str, bytes] | None = None, omit: set[str] = frozenset()) -> Path:
        return build_tmp_data_dir(data_dir, tmp_path / "data", replace, omit)

    yield make
    shutil.rmtree(tmp_path / "data", ignore_errors=True)
