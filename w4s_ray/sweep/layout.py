"""Where a sweep keeps its files, and when one benchmark of it is complete.

    <run_dir>/
      sweep.json                 per-benchmark status of the last invocation (derived)
      sweep_report.md            the aggregate table; sweep_*.png its plots
      <benchmark>/               an ordinary `w4s optimize` run directory (`rlao.runs.RunDir`,
                                 which also owns its baselines.json and error.log)

The per-benchmark files are the truth; `sweep.json` only adds what the files cannot say (why a
benchmark failed, the sweep's wall time) and is rewritten whole after every change.
"""

from __future__ import annotations

from pathlib import Path

from w4s_ray.rlao.runs import RunDir, read_json


class SweepLayout:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.status = self.root / "sweep.json"
        self.report = self.root / "sweep_report.md"

    def bench(self, benchmark: str) -> RunDir:
        """The benchmark's run directory."""
        return RunDir(self.root / benchmark, single_episode=True)

    def load_status(self) -> dict:
        return read_json(self.status) or {}


def is_complete(layout: SweepLayout, benchmark: str, turns: int, baselines: bool) -> bool:
    """Baselines stored (when wanted) and a final test result after at least `turns` turns."""
    rd = layout.bench(benchmark)
    if baselines and not rd.baselines.exists():
        return False
    final = rd.load_final()
    return bool(final) and int(final.get("turns", -1)) >= turns
