"""The benchmark registry: benchmark classes register themselves with a decorator.

    @register_benchmark(order=20, aliases=("gsm-8k",))
    class GSM8K(NumericBenchmark):
        name = "gsm8k"
        ...

`order` places the benchmark in the canonical order (the W4S paper's table: tens from 10 on, so
a new one slots in between without renumbering); `aliases` are other spellings accepted by
`get_benchmark`. `w4s_ray.benchmarks` imports every module of the package, so a new benchmark
is its own module plus its data manifest entry and its docs row; nothing else lists names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from w4s_ray.errors import ConfigError, DataError

if TYPE_CHECKING:
    from w4s_ray.benchmarks.base import Benchmark

BENCHMARKS: dict[str, type[Benchmark]] = {}
ALIASES: dict[str, str] = {}
_ORDER: dict[str, int] = {}


def register_benchmark(order: int, aliases: Iterable[str] = ()) -> Callable:
    """Class decorator: make the benchmark known under its `name` (and `aliases`)."""
    def deco(cls: type[Benchmark]) -> type[Benchmark]:
        name = cls.name
        if name in BENCHMARKS and BENCHMARKS[name] is not cls:
            raise ValueError(f"benchmark {name!r} registered twice")
        BENCHMARKS[name] = cls
        _ORDER[name] = order
        for alias in aliases:
            ALIASES[alias] = name
        return cls
    return deco


def list_benchmarks() -> list[str]:
    """Every registered benchmark, in the canonical order."""
    return sorted(BENCHMARKS, key=lambda n: (_ORDER[n], n))


def canonical_name(name: str) -> str:
    key = str(name).strip().lower()
    return ALIASES.get(key, key)


def get_benchmark(name: str, data_dir: str | Path | None = None) -> Benchmark:
    """A benchmark by name; data_dir None -> $W4S_DATA_DIR, else ./data."""
    cls = BENCHMARKS.get(canonical_name(name))
    if cls is None:
        raise DataError(f"unknown benchmark {name!r}; known: {', '.join(list_benchmarks())}")
    return cls(data_dir)


def check_benchmarks(names: Iterable[str] | None) -> list[str]:
    """Canonical names (aliases resolved); None: every registered benchmark (the default of the
    config's `benchmarks`). Unknown or repeated names are a ConfigError."""
    if names is None:
        return list_benchmarks()
    known = set(BENCHMARKS)
    names = [canonical_name(n) for n in names if n.strip()]
    if not names:
        raise ConfigError("no benchmarks given")
    bad = [n for n in names if n not in known]
    if bad:
        raise ConfigError(f"unknown benchmark(s) {', '.join(bad)}; known: "
                          f"{', '.join(sorted(known))}")
    if len(set(names)) != len(names):
        raise ConfigError(f"benchmark listed twice in {','.join(names)}")
    return names
