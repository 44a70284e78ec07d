"""The benchmarks: registry, `Item`, `Benchmark` (no Ray).

    from w4s_ray.benchmarks import get_benchmark, list_benchmarks
    bm = get_benchmark("drop")          # data_dir None -> $W4S_DATA_DIR, else ./data
    items = bm.load("valid")            # deterministic, cached per process
    bm.score(items[0], "some answer")   # float in [0, 1]

Every module of this package is imported here; benchmark classes register themselves with
`@register_benchmark` (see `registry.py`), so `list_benchmarks()` is whatever is registered, in
the canonical order (the eleven W4S benchmarks: mgsm gsm8k gsm_hard gsm_plus svamp math drop
mmlu_pro gpqa humaneval mbpp). Names are case-insensitive; W4S's spellings (gsmhard, gsmplus,
mmlupro) are accepted as aliases. An unknown name is a `DataError` listing the known ones.
"""

from __future__ import annotations

import importlib
import pkgutil

from w4s_ray.benchmarks.base import Benchmark, Item
from w4s_ray.benchmarks.registry import (
    ALIASES,
    BENCHMARKS,
    check_benchmarks,
    get_benchmark,
    list_benchmarks,
    register_benchmark,
)

for _mod in pkgutil.iter_modules(__path__):
    if not _mod.ispkg:
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["ALIASES", "BENCHMARKS", "Benchmark", "Item", "check_benchmarks", "get_benchmark",
           "list_benchmarks", "register_benchmark"]
