"""Your own benchmarks and seed workflows, without editing the package (no Ray here).

Two ways in (docs/HOWTO.md):

- `include` (config key, or `--include PATH` on any stage): a directory or an installed module
  name. A directory is imported as a package named after it (so its name must be a Python
  identifier that no installed module uses), then every top-level `*.py` in it not starting
  with `_` is imported; a module name is imported as is. Importing is what registers: the
  modules use `@register_benchmark` and `register_seed_workflow` like the built-in ones.
- entry points of the `w4s_ray.benchmarks` group of installed distributions, loaded the first
  time any process asks the registry for a benchmark.

Workers see the same: `load_includes` records what this process loaded in `$W4S_INCLUDE`
(child processes such as the simulator inherit it) and `runtime_env()` gives what a Ray job
needs (the variable, plus the directories as `py_modules` when the job joins a cluster whose
nodes may not share this filesystem). In any process the registry calls `ensure_loaded()`,
which imports `$W4S_INCLUDE` (by path where the directory exists, else the copy Ray shipped,
by name) and the entry points, once.

Not here: sandboxing. Plugin code is trusted code of the user running the stage, imported into
the driver and every worker like the package itself; only generated workflows are untrusted.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import json
import keyword
import os
import sys
import threading
from dataclasses import asdict, dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from w4s_ray.errors import ConfigError

ENV = "W4S_INCLUDE"
GROUP = "w4s_ray.benchmarks"


@dataclass(frozen=True)
class Include:
    name: str               # the module / package name it is imported as
    path: str | None = None  # the directory (None: an installed module)


_loaded: dict[str, Include] = {}
_lock = threading.RLock()
_env_done = False
_entry_points_done = False


def loaded() -> list[Include]:
    """What this process loaded through `include` (in load order)."""
    return list(_loaded.values())


def load_includes(specs: list[str] | tuple[str, ...]) -> list[Include]:
    """Import every include (directory or module name); record them in $W4S_INCLUDE.

    A failure is one ConfigError naming the include and the module that failed."""
    out = []
    with _lock:
        for spec in specs:
            inc = _resolve(spec)
            _load(inc, spec)
            out.append(inc)
        _export()
    return out


def ensure_loaded() -> None:
    """Once per process: the includes named by $W4S_INCLUDE and the entry points."""
    global _env_done, _entry_points_done
    if _env_done and _entry_points_done:
        return
    with _lock:
        if not _env_done:
            _env_done = True  # first: a plugin that lists benchmarks at import must not recurse
            for inc in _from_env():
                _load(inc, inc.path or inc.name)
        if not _entry_points_done:
            _entry_points_done = True
            for ep in entry_points(group=GROUP):
                try:
                    ep.load()
                except Exception as exc:  # noqa: BLE001 - one line naming the plugin
                    raise ConfigError(f"entry point {ep.name} = {ep.value} (group {GROUP}) "
                                      f"failed to load: {type(exc).__name__}: {exc}") from None


def runtime_env(ship: bool) -> dict:
    """What a Ray job's runtime_env needs so its workers load the same includes: the variable,
    and with `ship` (a cluster that may not share this filesystem) the directories."""
    incs = loaded()
    if not incs:
        return {}
    env: dict = {"env_vars": {ENV: os.environ.get(ENV, "")}}
    dirs = [inc.path for inc in incs if inc.path]
    if ship and dirs:
        env["py_modules"] = dirs
    return env


# -- internals ----------------------------------------------------------------------------------


def _resolve(spec: str) -> Include:
    spec = str(spec).strip()
    if not spec:
        raise ConfigError("include: empty entry")
    p = Path(spec).expanduser()
    looks_like_path = os.sep in spec or spec.startswith(".") or p.exists()
    if not looks_like_path:
        if not all(part.isidentifier() for part in spec.split(".")):
            raise ConfigError(f"include {spec!r}: neither a directory nor a module name")
        return Include(spec)
    if not p.exists():
        raise ConfigError(f"include {spec}: no such directory")
    if not p.is_dir():
        raise ConfigError(f"include {spec}: not a directory (put the file in a directory and "
                          "include that)")
    p = p.resolve()
    name = p.name
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ConfigError(f"include {spec}: the directory name {name!r} is imported as a "
                          "package and must be a Python identifier; rename it")
    return Include(name, str(p))


def _load(inc: Include, spec: str) -> None:
    prev = _loaded.get(inc.name)
    if prev is not None:
        if prev.path != inc.path:
            raise ConfigError(f"include {spec}: the name {inc.name!r} is already loaded from "
                              f"{prev.path or 'an installed module'}")
        return
    try:
        if inc.path and Path(inc.path).is_dir():
            pkg = _package_from_dir(inc.name, Path(inc.path), spec)
        else:  # an installed module, or a directory Ray shipped (on sys.path by its name)
            pkg = importlib.import_module(inc.name)
        _import_members(pkg)
    except ConfigError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name == inc.name:
            raise ConfigError(f"include {spec}: no module named {inc.name!r}") from None
        raise ConfigError(f"include {spec}: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a plugin's import error, as one line
        raise ConfigError(f"include {spec}: importing failed: {type(exc).__name__}: {exc}"
                          ) from None
    _loaded[inc.name] = inc


def _package_from_dir(name: str, path: Path, spec: str) -> ModuleType:
    existing = sys.modules.get(name)
    if existing is not None:
        where = [str(Path(p).resolve()) for p in getattr(existing, "__path__", []) or []]
        if str(path) in where:
            return existing
        raise ConfigError(f"include {spec}: a module named {name!r} is already imported "
                          f"({getattr(existing, '__file__', None) or where}); rename the "
                          "directory")
    if importlib.util.find_spec(name) is not None:
        raise ConfigError(f"include {spec}: the directory name {name!r} would shadow an "
                          "installed module; rename the directory")
    init = path / "__init__.py"
    if init.exists():
        mspec = importlib.util.spec_from_file_location(name, init,
                                                       submodule_search_locations=[str(path)])
    else:
        mspec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        mspec.submodule_search_locations = [str(path)]
    module = importlib.util.module_from_spec(mspec)
    sys.modules[name] = module
    try:
        if mspec.loader is not None:
            mspec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _import_members(pkg: ModuleType) -> None:
    """Every top-level `*.py` of a package directory (not `_*`), in name order."""
    for base in list(getattr(pkg, "__path__", []) or []):
        for f in sorted(Path(base).glob("*.py")):
            if not f.stem.startswith("_") and f.stem.isidentifier():
                importlib.import_module(f"{pkg.__name__}.{f.stem}")


def _export() -> None:
    os.environ[ENV] = json.dumps([asdict(inc) for inc in _loaded.values()])


def _from_env() -> list[Include]:
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return []
    try:
        return [Include(**d) for d in json.loads(raw)]
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"${ENV} is not a list of includes: {exc}") from None
