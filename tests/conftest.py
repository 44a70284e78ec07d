"""Shared test set-up: offline environment, the data dir, and fixture plugins.

Fixture modules live in tests/fixtures/ (one per area: data, ray, sim, ...) and are loaded as
pytest plugins, so each area's fixtures stay next to each other and out of this file.
"""

from __future__ import annotations

import os
from pathlib import Path

from w4s_ray.env import apply_offline_defaults

REPO_ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("W4S_DATA_DIR", str((REPO_ROOT.parent / "shared" / "datasets").resolve()))
apply_offline_defaults()

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}"
    for p in (Path(__file__).parent / "fixtures").glob("*.py")
    if p.stem != "__init__"
)
