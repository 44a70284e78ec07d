"""w4s-ray: Weak-for-Strong Harnessing on Ray. The Python API (docs/API.md):

    import w4s_ray as w4s
    cfg = w4s.config(overrides={"eval.limit": 8})
    res = w4s.optimize(cfg, benchmark="gsm8k")      # -> OptimizeResult
    w4s.collect(...), w4s.train(...), w4s.sweep(...), w4s.evaluate(...)

Importing the package is cheap: the names resolve on first use (`w4s_ray.api`), so neither
Ray nor litellm is imported here. `config`, `train` and `sweep` are also the names of modules
(`w4s_ray.config`, `w4s_ray.train`, `w4s_ray.sweep`); those modules are callable and call the
API function, so `w4s.train(cfg)` works whether or not the module was imported already.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_API = {"optimize", "collect", "evaluate", "report", "OptimizeResult", "CollectResult",
        "SweepResult", "sweep_table", "read_workflow"}
_STAGE_MODULES = {"config", "train", "sweep"}

__all__ = sorted(_API | _STAGE_MODULES | {"eval"})


def __getattr__(name: str) -> Any:
    if name in _STAGE_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _API or name == "eval":
        return getattr(importlib.import_module(f"{__name__}.api"),
                       "evaluate" if name == "eval" else name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _StageModule(types.ModuleType):
    """A module named like an API function, callable as that function (`w4s_ray.api.<name>`)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        api = importlib.import_module(f"{__name__}.api")
        return getattr(api, self.__name__.rsplit(".", 1)[-1])(*args, **kwargs)


def _callable_stage(module_name: str) -> None:
    """Called by `w4s_ray.config` / `.train` / `.sweep` as they are imported."""
    sys.modules[module_name].__class__ = _StageModule
