"""Sweeps over many benchmarks: the on-disk layout, one benchmark's work, the aggregate report.

No Ray here. `w4s_ray.runtime.sweep` fans `run_benchmark` out over Ray; this package holds the
plain parts it calls:

- `layout`: where a sweep keeps its files and when a benchmark counts as complete;
- `benchmark.run_benchmark`: seed baselines on test, then `rlao.optimize.optimize` (validation-only
  selection, one final test evaluation) for one benchmark;
- `report.write_sweep_report`: `sweep_report.md` (benchmarks as columns, methods as rows) and
  PNG plots, read from the files only.
"""

from w4s_ray.sweep.layout import SweepLayout, is_complete

__all__ = ["SweepLayout", "is_complete"]
