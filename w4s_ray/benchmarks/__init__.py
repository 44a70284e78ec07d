"""The benchmarks: registry, `Item`, `Benchmark` (no Ray).

    from w4s_ray.benchmarks import get_benchmark, list_benchmarks
    bm = get_benchmark("drop")          # data_dir None -> $W4S_DATA_DIR, else ./data
    items = bm.load("valid")            # deterministic, cached per process
    bm.score(items[0], "some answer")   # float in [0, 1]

The eleven W4S benchmarks are mgsm gsm8k gsm_hard gsm_plus svamp math drop mmlu_pro gpqa
humaneval mbpp. Names are case-insensitive; W4S's spellings (gsmhard, gsmplus, mmlupro) are
accepted as aliases. An unknown name is a `DataError` listing the known ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from w4s_ray.benchmarks.base import Benchmark, Item
from w4s_ray.benchmarks.drop import DROP
from w4s_ray.benchmarks.gpqa import GPQA
from w4s_ray.benchmarks.gsm8k import GSM8K
from w4s_ray.benchmarks.gsm_hard import GSMHard
from w4s_ray.benchmarks.gsm_plus import GSMPlus
from w4s_ray.benchmarks.humaneval import HumanEval
from w4s_ray.benchmarks.math_hendrycks import MATH
from w4s_ray.benchmarks.mbpp import MBPP
from w4s_ray.benchmarks.mgsm import MGSM
from w4s_ray.benchmarks.mmlu_pro import MMLUPro
from w4s_ray.benchmarks.svamp import SVAMP
from w4s_ray.errors import ConfigError, DataError

__all__ = ["Benchmark", "Item", "get_benchmark", "list_benchmarks", "check_benchmarks",
           "BENCHMARKS"]

BENCHMARKS: dict[str, type[Benchmark]] = {
    cls.name: cls
    for cls in (MGSM, GSM8K, GSMHard, GSMPlus, SVAMP, MATH, DROP, MMLUPro, GPQA, HumanEval, MBPP)
}
ALIASES = {"gsmhard": "gsm_hard", "gsm-hard": "gsm_hard", "gsmplus": "gsm_plus",
           "gsm-plus": "gsm_plus", "mmlupro": "mmlu_pro", "mmlu-pro": "mmlu_pro"}


def list_benchmarks(include_optional: bool = False) -> list[str]:
    """Benchmark names in the canonical order (optional extras only when asked)."""
    return [n for n, cls in BENCHMARKS.items() if include_optional or not cls.optional]


def get_benchmark(name: str, data_dir: str | Path | None = None) -> Benchmark:
    """A benchmark by name; data_dir None -> $W4S_DATA_DIR, else ./data."""
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    cls = BENCHMARKS.get(key)
    if cls is None:
        raise DataError(f"unknown benchmark {name!r}; known: "
                        f"{', '.join(list_benchmarks(include_optional=True))}")
    return cls(data_dir)


def check_benchmarks(names: Iterable[str] | None) -> list[str]:
    """Canonical names (aliases resolved); None: every registered benchmark (the default of the
    config's `benchmarks`). Unknown or repeated names are a ConfigError."""
    if names is None:
        return list_benchmarks()
    known = set(list_benchmarks(include_optional=True))
    names = [ALIASES.get(n.strip().lower(), n.strip().lower()) for n in names if n.strip()]
    if not names:
        raise ConfigError("no benchmarks given")
    bad = [n for n in names if n not in known]
    if bad:
        raise ConfigError(f"unknown benchmark(s) {', '.join(bad)}; known: "
                          f"{', '.join(sorted(known))}")
    if len(set(names)) != len(names):
        raise ConfigError(f"benchmark listed twice in {','.join(names)}")
    return names
