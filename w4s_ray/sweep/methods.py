"""One benchmark of a `w4s sweep --methods ...` run: every method, one after another (no Ray).

Methods (`sweep.methods`, checked by `check_methods`):
- a hand-designed baseline (`w4s baselines list`): no search; the workflow is evaluated once on
  the test items. All baselines of the benchmark go in ONE evaluator call (concurrently) and
  each result is stored in `<benchmark>/methods/<name>.json`;
- `adas`, `aflow`: `optimizers.run.run_search` in `<benchmark>/<method>/` (validation-only
  search, one test evaluation of the chosen workflow), meta model `optimizers.meta_agent`;
- `w4s`: `rlao.optimize.optimize` in `<benchmark>/` itself (the layout a sweep always had).

All share the evaluator the caller passes (one pool, cache, rate limit and budget) and the
same test items (`rlao.test_limit`). A method that fails is recorded in
`<benchmark>/methods/<name>.error.json` and the next method runs; `BudgetExceeded` and
`ExecutorFatal` stop the benchmark (the budget and the endpoint are shared, so nothing else
could succeed). A method with a stored result is skipped on resume; searches resume from their
records.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from w4s_ray.errors import BudgetExceeded, ConfigError, ExecutorFatal
from w4s_ray.optimizers.run import ci, run_search
from w4s_ray.rlao.evaluation import EvalRequest, Evaluator
from w4s_ray.rlao.loop import TaskSpec
from w4s_ray.rlao.optimize import final_test_ids, optimize
from w4s_ray.rlao.runs import read_json
from w4s_ray.sweep.layout import SweepLayout
from w4s_ray.utils.io import atomic_write_json

SEARCHES = ("adas", "aflow")


def known_methods() -> list[str]:
    from w4s_ray.baselines import BASELINES

    return [*BASELINES, *SEARCHES, "w4s"]


def check_methods(methods: Sequence[str]) -> list[str]:
    """The methods in order, without duplicates; an unknown name is one ConfigError line."""
    known = known_methods()
    out: list[str] = []
    for m in methods:
        m = m.strip()
        if m not in known:
            raise ConfigError(f"unknown method {m!r}; known: {', '.join(known)}")
        if m not in out:
            out.append(m)
    if not out:
        raise ConfigError("--methods: no method names given")
    return out


def methods_dir(layout: SweepLayout, benchmark: str) -> Path:
    return layout.bench(benchmark).path / "methods"


def method_dirs(layout: SweepLayout, benchmark: str) -> list[Path]:
    """What the methods other than W4S write under a benchmark's directory."""
    root = layout.bench(benchmark).path
    return [methods_dir(layout, benchmark), *(root / m for m in SEARCHES)]


def clear_methods(layout: SweepLayout, benchmark: str) -> None:
    """`--fresh`: delete the baseline results and ADAS/AFlow searches of an earlier sweep (a
    stored result is otherwise taken as done and reported again)."""
    import shutil

    for d in method_dirs(layout, benchmark):
        shutil.rmtree(d, ignore_errors=True)


def result_path(layout: SweepLayout, benchmark: str, method: str) -> Path:
    """Where a method's test result lives (final.json for searches and W4S)."""
    if method == "w4s":
        return layout.bench(benchmark).final
    if method in SEARCHES:
        return layout.bench(benchmark).path / method / "final.json"
    return methods_dir(layout, benchmark) / f"{method}.json"


def error_path(layout: SweepLayout, benchmark: str, method: str) -> Path:
    return methods_dir(layout, benchmark) / f"{method}.error.json"


def method_done(layout: SweepLayout, benchmark: str, method: str, cfg) -> bool:
    res = read_json(result_path(layout, benchmark, method), torn_ok=True)
    if not isinstance(res, dict) or "test_accuracy" not in res:
        return False
    if method == "w4s":
        return int(res.get("turns", -1)) >= cfg.rlao.turns
    return True


def evaluate_baselines(cfg, spec: TaskSpec, names: list[str], evaluator: Evaluator,
                       ids: list[str] | None) -> dict[str, dict]:
    """The hand-designed baselines `names` on the test items, in one concurrent call."""
    from w4s_ray.baselines import baseline_workflows

    codes = baseline_workflows(spec, names)
    outs = evaluator.evaluate([EvalRequest(codes[n], spec.name, "test", item_ids=ids,
                                           tag=f"method:{n}") for n in names])
    return {n: {"benchmark": spec.name, "method": n, "test_accuracy": o.accuracy_or_none,
                "test_n": o.n, "test_scores": list(o.scores), "test_error": o.error,
                "test_ci": ci(o.scores, cfg.seed) if o.error is None and o.n else None,
                "dollars": o.cost_usd, "cached_dollars": o.cached_usd, "executor_calls": o.calls,
                "wall_s": round(o.wall_s, 2)}
            for n, o in zip(names, outs, strict=True)}


def run_methods(cfg, spec: TaskSpec, layout: SweepLayout, evaluator: Evaluator, meta_agent,
                make_search_meta: Callable[[], object], *, resume: bool,
                executor: dict | None = None) -> dict:
    """Every method of `cfg.sweep.methods` on one benchmark; returns {method: status}."""
    from w4s_ray.baselines import BASELINES

    methods = check_methods(cfg.sweep.methods)
    rd = layout.bench(spec.name)
    rd.path.mkdir(parents=True, exist_ok=True)
    methods_dir(layout, spec.name).mkdir(exist_ok=True)
    ids = final_test_ids(cfg, evaluator, spec.name)
    status: dict[str, str] = {}
    todo = [m for m in methods if not method_done(layout, spec.name, m, cfg)]
    for m in methods:
        if m not in todo:
            status[m] = "done"

    def fail(m: str, exc: BaseException) -> None:
        status[m] = "failed"
        atomic_write_json(error_path(layout, spec.name, m), {
            "method": m, "error": (str(exc).splitlines() or [type(exc).__name__])[0][:300],
            "type": type(exc).__name__, "traceback": traceback.format_exc()[-4000:]})

    base = [m for m in todo if m in BASELINES]
    if base:
        try:
            for m, res in evaluate_baselines(cfg, spec, base, evaluator, ids).items():
                atomic_write_json(result_path(layout, spec.name, m), res)
                error_path(layout, spec.name, m).unlink(missing_ok=True)
                status[m] = "done" if res["test_error"] is None else "failed"
        except (BudgetExceeded, ExecutorFatal):
            raise
        except Exception as exc:  # noqa: BLE001 - one method must not stop the others
            for m in base:
                fail(m, exc)
    for m in [m for m in todo if m not in BASELINES]:
        t0 = time.monotonic()
        try:
            if m == "w4s":
                optimize(cfg, spec, rd.path, evaluator, meta_agent,
                         resume=resume or rd.has_run(), progress=False, test_ids=ids,
                         seed_test={}, executor=executor)
            else:
                sub = rd.path / m
                search_meta = make_search_meta()
                try:
                    run_search(cfg, m, spec, sub, evaluator, search_meta,
                               resume=(sub / "config.yaml").exists(), progress=False,
                               executor=executor, test_ids=ids)
                finally:
                    close = getattr(search_meta, "close", None)
                    if close is not None:
                        close()
            error_path(layout, spec.name, m).unlink(missing_ok=True)
            status[m] = "done"
        except (BudgetExceeded, ExecutorFatal):
            raise
        except Exception as exc:  # noqa: BLE001 - one method must not stop the others
            fail(m, exc)
        finally:
            status.setdefault(m, f"stopped after {time.monotonic() - t0:.0f} s")
    failed = [m for m, s in status.items() if s != "done"]
    if failed and len(failed) == len(methods):
        raise RuntimeError(f"every method failed on {spec.name}: " + ", ".join(failed))
    return status
