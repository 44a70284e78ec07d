"""`w4s demo --real`: the stages and report sections that differ when the meta-agent is a real
pretrained model (SmolLM2-135M-Instruct by default) instead of the tiny one.

- prepare: `w4s models prepare <demo.model>` (the GGUF shipped in a Python package, converted
  once into `models.dir`; nothing downloaded). The prepared checkpoint is the warm start.
- collect: the simulator-backed collect with the scripted `seed-variants` meta-agent (working
  edits of the seed workflows). SmolLM2 itself writes almost no valid workflow, so its own
  trajectories would give RWR nothing to imitate; these do.
- train: LoRA RWR of the prepared model on the valid rows (settings from the config).
- compare: warm start vs trained, sampled through the local backend (`w4s compare`).
- serve: the trained model behind Ray Serve.
- serve-eval: one evaluation of the seed workflows with the SERVED model as the executor
  (a real LLM answering the workflows' calls, priced at $0), next to the simulator's figures.

`run_demo` (w4s_ray/demo.py) drives the stages; this module only holds what is specific to the
real model. Not done here: optimizing with the served model (a 135M model's own workflows are
rarely valid; the tiny demo shows that stage).
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from w4s_ray.benchmarks import check_benchmarks, get_benchmark
from w4s_ray.config import RLAOConfig
from w4s_ray.errors import ConfigError
from w4s_ray.rlao.loop import Episode, TaskSpec
from w4s_ray.rlao.policy_eval import distinct_cells
from w4s_ray.utils.io import atomic_write_json


def check_real_config(cfg) -> None:
    """Refuse a config the real pipeline cannot honour (one line, before anything starts)."""
    from w4s_ray.meta_agent.scripted import SEED_VARIANTS
    from w4s_ray.models.presets import get_preset

    if cfg.meta_agent.backend != "scripted" or cfg.meta_agent.model != SEED_VARIANTS:
        raise ConfigError(
            f"--real collects with the scripted '{SEED_VARIANTS}' meta-agent (meta_agent.backend="
            f"scripted, meta_agent.model={SEED_VARIANTS}; the real model is compared, trained and "
            f"served), got meta_agent.backend={cfg.meta_agent.backend}, meta_agent.model="
            f"{cfg.meta_agent.model}; use experiments/demo-real.yaml (the --real default)")
    get_preset(cfg.demo.model)  # an unknown preset: one error naming the known ones
    if cfg.demo.executor_benchmark is not None:
        check_benchmarks([cfg.demo.executor_benchmark])


def real_paths(cfg, out) -> None:
    """Place the real pipeline's model paths in `out` (a copy of cfg, run_dir resolved)."""
    from w4s_ray.models.presets import get_preset, prepared_dir

    root = Path(out.run_dir)
    warm = prepared_dir(get_preset(cfg.demo.model), cfg.models.dir).resolve()
    out.models.dir = str(warm.parent)
    out.tiny.out_dir = str(root / "tiny-meta-agent")  # unused; kept inside run_dir
    out.train.data = str(root / "collect" / "trajectories")
    out.train.base_model = str(warm)
    out.train.out_dir = str(root / "train")
    out.serve.model = str(root / "train" / "model")


def stage_prepare(cfg) -> dict:
    """The warm-start checkpoint: converted once from the packaged GGUF, then reused."""
    import time

    from w4s_ray.models.presets import prepare

    t = time.monotonic()
    out, rec, converted = prepare(cfg.demo.model, cfg.models.dir)
    params = rec.get("parameters")
    return {"model_dir": str(out), "converted": converted,
            "note": f"{'converted' if converted else 'reused'} {out}"
                    + (f" ({params / 1e6:.1f} M parameters)" if params else "")
                    + (f" in {time.monotonic() - t:.0f} s" if converted else "")}


def served_executor_config(cfg, url: str):
    """The config whose executor is the served model (free, capped, patient)."""
    out = cfg.model_copy(deep=True)
    out.executor.model = f"openai/{cfg.serve.model_name}"
    out.executor.api_base = f"{url}/v1"
    out.executor.transport = "http"
    out.executor.pricing_model = "free"
    out.executor.max_tokens_cap = cfg.demo.executor_max_tokens_cap
    out.executor.timeout_s = cfg.demo.executor_timeout_s
    out.executor.max_concurrency = 16
    out.eval.limit = cfg.demo.executor_limit
    return out


def stage_executor_eval(cfg, url: str, out_dir: Path, sim_seeds: dict | None) -> dict:
    """Evaluate the seed workflows once with the served model as the executor."""
    from w4s_ray.executor.preflight import check_executor
    from w4s_ray.runtime.evaluators import EvaluatorPool

    ecfg = served_executor_config(cfg, url)
    bench = cfg.demo.executor_benchmark or cfg.benchmark
    info = check_executor(ecfg.executor)
    spec = TaskSpec.from_benchmark(get_benchmark(bench, data_dir=cfg.data_dir()),
                                   cfg.rlao.protocol)
    pool = EvaluatorPool(ecfg)
    try:
        ep = Episode(spec, RLAOConfig(protocol=cfg.rlao.protocol), f"{bench}-served-executor",
                     pool, None)
        records = ep.evaluate_seeds()
    finally:
        pool.close()
    rows = []
    for r in records:
        sim = next((s for s in (sim_seeds or {}).get("records", []) if s["name"] == r["name"]),
                   None)
        rows.append({"name": r["name"], "val_accuracy": r["val_accuracy"],
                     "error": (str(r["error"])[:200] if r.get("error") else None),
                     "sim_val_accuracy": sim["val_accuracy"] if sim else None})
    res = {"benchmark": bench, "executor": ecfg.executor.model, "items": cfg.demo.executor_limit,
           "max_tokens_cap": ecfg.executor.max_tokens_cap, "preflight": info, "seeds": rows,
           "sim_items": (sim_seeds or {}).get("items")}
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "served_executor.json", res)
    best = max((r["val_accuracy"] for r in rows), default=0.0)
    res["note"] = (f"{len(rows)} seed workflows on {bench} ({cfg.demo.executor_limit} items), "
                   f"best {100 * best:.0f}% with {ecfg.executor.model} as executor")
    return res


def sim_seed_records(compare_dir: Path, bench: str, items: int | None) -> dict | None:
    """The seed workflows' records from the compare stage (simulated executor), if any."""
    f = compare_dir / "seeds" / f"{bench}.json"
    if not f.exists():
        return None
    return {"records": json.loads(f.read_text(encoding="utf-8")), "items": items}


def _rate_stats(samples: list[dict], pred) -> tuple[float, float]:
    """Mean over seeds of the per-seed rate, and its standard error over seeds."""
    by_seed: dict[int, list[float]] = {}
    for s in samples:
        by_seed.setdefault(s["seed"], []).append(1.0 if pred(s) else 0.0)
    per = [sum(v) / len(v) for v in by_seed.values()]
    if not per:
        return 0.0, 0.0
    se = statistics.stdev(per) / math.sqrt(len(per)) if len(per) > 1 else 0.0
    return sum(per) / len(per), se


def _acc_stats(samples: list[dict]) -> tuple[float, float]:
    by_seed: dict[int, list[float]] = {}
    for s in samples:
        by_seed.setdefault(s["seed"], []).append(float(s["accuracy"]))
    per = [sum(v) / len(v) for v in by_seed.values()]
    if not per:
        return 0.0, 0.0
    se = statistics.stdev(per) / math.sqrt(len(per)) if len(per) > 1 else 0.0
    return sum(per) / len(per), se


def read_samples(compare_dir: Path) -> list[dict]:
    f = compare_dir / "samples.jsonl"
    if not f.exists():
        return []
    out = []
    for line in f.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.extend(json.loads(line)["samples"])
    return out


def warm_vs_trained_table(summary: dict, samples: list[dict]) -> list[str]:
    """The warm-start vs trained table: rates and accuracy as mean ± standard error over the
    sampling seeds, diversity and beat-best-seed counts over all samples."""
    pm = summary["per_model"]
    models = [m for m in ("warm-start", "trained") if m in pm]
    n_seeds = len(summary.get("seeds", []))
    lines = [f"Mean ± standard error over {n_seeds} sampling seed(s) (per seed: the mean over "
             "benchmarks and samples).", "",
             "| model | samples | parseable workflow (%) | valid workflow (%) | "
             "accuracy of a sample (%) | distinct workflows per cell | distinct valid | "
             "beat best seed |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m in models:
        mine = [s for s in samples if s["model"] == m]
        parse, parse_se = _rate_stats(mine, lambda s: s.get("code_key") is not None)
        valid, valid_se = _rate_stats(mine, lambda s: s["valid"])
        acc, acc_se = _acc_stats(mine)
        d = pm[m].get("diversity") or {}
        distinct, distinct_valid = distinct_cells(d) if d else ("n/a", "n/a")
        beat = f"{d['beat_best_seed']} / {d['samples']}" if d else "n/a"
        lines.append(f"| {m} | {len(mine)} | {100 * parse:.1f} ± {100 * parse_se:.1f} | "
                     f"{100 * valid:.1f} ± {100 * valid_se:.1f} | "
                     f"{100 * acc:.1f} ± {100 * acc_se:.1f} | {distinct} | {distinct_valid} | "
                     f"{beat} |")
    lines.append("")
    return lines


def verdict(summary: dict, samples: list[dict]) -> list[str]:
    """What RWR did and did not improve, stated from the figures (never assumed)."""
    if not {"warm-start", "trained"} <= set(summary["per_model"]):
        return []
    stats = {}
    for m in ("warm-start", "trained"):
        mine = [s for s in samples if s["model"] == m]
        stats[m] = {"parse": _rate_stats(mine, lambda s: s.get("code_key") is not None),
                    "valid": _rate_stats(mine, lambda s: s["valid"]),
                    "acc": _acc_stats(mine),
                    "div": (summary["per_model"][m].get("diversity") or {})}
    out = []
    for key, label in (("parse", "parseable-workflow rate"), ("valid", "valid-workflow rate"),
                       ("acc", "accuracy of a sampled workflow")):
        (w, wse), (t, tse) = stats["warm-start"][key], stats["trained"][key]
        diff = t - w
        spread = math.hypot(wse, tse)
        if diff > 0 and (spread == 0 or diff > 2 * spread):
            word = "RWR RAISED it"
        elif diff < 0 and (spread == 0 or -diff > 2 * spread):
            word = "RWR LOWERED it"
        elif diff == 0:
            word = "RWR did NOT change it"
        else:
            word = "no measurable change (the difference is within 2 standard errors)"
        out.append(f"- The {label}: {100 * w:.1f}% -> {100 * t:.1f}% "
                   f"({100 * diff:+.1f} points; standard errors {100 * wse:.1f} / "
                   f"{100 * tse:.1f}): {word}.")
    dw, dt = stats["warm-start"]["div"], stats["trained"]["div"]
    if dw and dt:
        out.append(f"- Diversity: {dw['distinct_mean']:.1f} -> {dt['distinct_mean']:.1f} distinct "
                   f"workflows per cell of {dt['samples_per_cell']}, of them valid "
                   f"{dw['distinct_valid_mean']:.1f} -> {dt['distinct_valid_mean']:.1f} "
                   f"(not a seed: {dw['distinct_valid_new_mean']:.1f} -> "
                   f"{dt['distinct_valid_new_mean']:.1f}); seed copies "
                   f"{dw['seed_copies']} -> {dt['seed_copies']}; samples beating the best seed "
                   f"{dw['beat_best_seed']} -> {dt['beat_best_seed']} (of {dt['samples']}).")
        if dt["beat_best_seed"] == 0:
            out.append("- It did NOT produce a workflow better than the best seed: the "
                       "trajectories it imitates are edits of the seeds (scripted "
                       "seed-variants), so at best it learns to write working seed-like "
                       "workflows, not better ones.")
    return out + [""]


def served_executor_section(res: dict) -> list[str]:
    lines = [f"## The served model as the executor ({res['benchmark']})", "",
             f"The seed workflows evaluated once on {res['items']} validation items with the "
             f"served trained model (`{res['executor']}`, replies capped at "
             f"{res['max_tokens_cap']} tokens, priced $0) answering their calls, next to the "
             "simulated executor's accuracy of the same workflows (compare stage"
             + (f", {res['sim_items']} items" if res.get("sim_items") else "") + ").", "",
             "| seed workflow | served SmolLM2 executor (%) | simulated executor (%) |",
             "| --- | --- | --- |"]
    for r in res["seeds"]:
        sim = "n/a" if r["sim_val_accuracy"] is None else f"{100 * r['sim_val_accuracy']:.1f}"
        lines.append(f"| {r['name']} | {100 * r['val_accuracy']:.1f}"
                     f"{' (error)' if r['error'] else ''} | {sim} |")
    errors = [(r["name"], r["error"]) for r in res["seeds"] if r["error"]]
    if errors:
        lines += ["", "Errors with the served executor (clipped):", ""]
        lines += [f"- {name}: `{err.replace('`', chr(39))}`" for name, err in errors]
    lines.append("")
    return lines
