"""Where a sweep keeps its files, and when one benchmark of it is complete.

    <run_dir>/
      sweep.json                 per-benchmark status of the last invocation (derived)
      sweep_report.md            the aggregate table; sweep_*.png its plots
      <benchmark>/               an ordinary `w4s optimize` run directory (see rlao.runs)
      <benchmark>/baselines.json the seed workflows evaluated on test (reported only)
      <benchmark>/error.log      the full error of a failed benchmark (the report has one line)

The per-benchmark files are the truth; `sweep.json` only adds what the files cannot say (why a
benchmark failed, the sweep's wall time) and is rewritten whole after every change.
"""

from __future__ import annotations

import json
from pathlib import Path

from w4s_ray.errors import DataError


class SweepLayout:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.status = self.root / "sweep.json"
        self.report = self.root / "sweep_report.md"

    def bench_dir(self, benchmark: str) -> Path:
        return self.root / benchmark

    def baselines(self, benchmark: str) -> Path:
        return self.bench_dir(benchmark) / "baselines.json"

    def final(self, benchmark: str) -> Path:
        return self.bench_dir(benchmark) / "final.json"

    def error_log(self, benchmark: str) -> Path:
        return self.bench_dir(benchmark) / "error.log"

    def load_status(self) -> dict:
        return read_json(self.status) or {}


def read_json(path: Path):
    """The JSON in `path`, None when absent; a corrupt file is a DataError naming it."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise DataError(f"{path}: not valid JSON (delete it to recompute)") from None


def is_complete(layout: SweepLayout, benchmark: str, turns: int, baselines: bool) -> bool:
    """Baselines stored (when wanted) and a final test result after at least `turns` turns."""
    if baselines and not layout.baselines(benchmark).exists():
        return False
    final = read_json(layout.final(benchmark))
    return bool(final) and int(final.get("turns", -1)) >= turns
