"""Policy evaluation: how good are the workflows a meta-agent samples, before and after RWR?

The question RLAO training must answer is whether the trained meta-agent writes better
workflows than the one it started from. `sample_policy` puts each model in the same first-turn
state of a W4S episode (task description plus the seed workflows with their validation
accuracy and feedback, as the protocol's prompt shows them), samples `samples` workflows with
fixed per-sample seeds, and evaluates every extractable one on validation. A sample that yields
no workflow or fails to run scores 0 (w4s: a workflow error or any item raising, the w4s
loop's repair trigger; w4s-ray: a failed 1-item self-check): the metric is the expected
validation accuracy of one draw from the policy, the quantity RWR pushes up. No validation
noise items: both models are scored on the same items.

`summarize` aggregates per model, per seed and per benchmark and reports paired differences
(the same seed and benchmark under two models), so a margin can be stated with its spread.

Diversity, per model: how many distinct workflows the m samples of a (seed, benchmark) cell
hold (code normalised by `workflow.normalize`: comments, formatting and docstrings do not
count), how many samples are a seed workflow again, and how many beat the best seed workflow's
validation accuracy (on the same items). A policy whose m samples are one program wastes m - 1
evaluations and cannot improve on its seeds, however valid its samples are.

No Ray here: the evaluator is anything implementing `rlao.evaluation.Evaluator`
(`runtime.evaluators.EvaluatorPool` in `w4s compare`; fakes in unit tests). Not done here:
repairs (a repaired workflow is partly the repair prompt's doing, so samples are scored as
drawn) and racing (every sample is evaluated on the same validation items).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from w4s_ray.config import RLAOConfig
from w4s_ray.rlao.candidates import extract, texts
from w4s_ray.rlao.evaluation import EvalRequest
from w4s_ray.rlao.loop import Episode, TaskSpec
from w4s_ray.workflow.normalize import workflow_key


@dataclass(frozen=True)
class Sample:
    model: str
    benchmark: str
    seed: int
    index: int
    valid: bool
    accuracy: float  # validation accuracy; 0.0 when the sample gave no working workflow
    error: str | None
    cost_usd: float
    # Diversity (None in samples written before these fields existed):
    code_key: str | None = None  # workflow_key of the extracted code; None: no workflow
    is_seed_copy: bool | None = None  # the same program as one of the seed workflows
    beats_best_seed: bool | None = None  # valid, and above the best seed's val accuracy
    code: str | None = None  # the extracted workflow, to read what the model wrote


def sample_policy(
    model: str, meta_agent, spec: TaskSpec, seed_records: Sequence[dict], evaluator, *,
    samples: int, seed: int, executor: str = "", protocol: str = "w4s",
) -> list[Sample]:
    """Draw `samples` workflows from `meta_agent` in the first-turn state; score each."""
    # No repairs, no racing; the episode id carries no model name, so both models draw with
    # identical seeds.
    rlao = RLAOConfig(protocol=protocol, candidates=samples, max_repairs=0)
    ep = Episode(spec, rlao, f"{spec.name}-policy-eval", evaluator, meta_agent,
                 base_seed=seed, run_id="policy-eval", executor=executor)
    ep.start(seed_records)
    seed_keys = {workflow_key(r["code"]) for r in seed_records if r.get("code")}
    best_seed = max((float(r["val_accuracy"]) for r in seed_records), default=0.0)
    if protocol == "w4s":
        return _sample_w4s(model, ep, seed, samples, seed_keys, best_seed)
    res = ep.run_turn()
    out = []
    for r in res.rows:
        acc = float(r["val_accuracy"]) if r["valid"] else 0.0
        key = workflow_key(r["code"]) if r.get("code") else None
        out.append(Sample(model, spec.name, seed, r["candidate"], bool(r["valid"]), acc,
                          r["error"], float(r["cost_usd"]), code_key=key,
                          is_seed_copy=key is not None and key in seed_keys,
                          beats_best_seed=bool(r["valid"]) and acc > best_seed,
                          code=r.get("code")))
    return out


def diversity(samples: Sequence[Sample]) -> dict | None:
    """Per (seed, benchmark) cell: distinct workflows, distinct valid ones (evaluated without
    a failure) and of those the ones that are not a seed workflow; counts over all of a model's
    samples. None when a sample predates the diversity fields (an old samples.jsonl)."""
    if not samples or any(s.beats_best_seed is None for s in samples):
        return None
    cells: dict[tuple[int, str], list[Sample]] = {}
    for s in samples:
        cells.setdefault((s.seed, s.benchmark), []).append(s)
    distinct = [len({s.code_key for s in c if s.code_key is not None}) for c in cells.values()]
    # A broken sample wastes its evaluation as surely as a copy does: count the programs that
    # ran, and those of them that are not a seed again (what a turn can improve with).
    valid = [len({s.code_key for s in c if s.valid and s.code_key is not None})
             for c in cells.values()]
    new = [len({s.code_key for s in c if s.valid and s.code_key is not None
                and not s.is_seed_copy}) for c in cells.values()]
    return {
        "cells": len(cells),
        "samples_per_cell": max(len(c) for c in cells.values()),
        "distinct_mean": _mean(distinct),
        "distinct_min": min(distinct),
        "distinct_max": max(distinct),
        "distinct_valid_mean": _mean(valid),
        "distinct_valid_min": min(valid),
        "distinct_valid_max": max(valid),
        "distinct_valid_new_mean": _mean(new),
        "with_code": sum(s.code_key is not None for s in samples),
        "seed_copies": sum(bool(s.is_seed_copy) for s in samples),
        "beat_best_seed": sum(bool(s.beats_best_seed) for s in samples),
        "samples": len(samples),
    }


def _sample_w4s(model: str, ep: Episode, seed: int, samples: int, seed_keys: set,
                best_seed: float) -> list[Sample]:
    """Under w4s: each draw extracted and evaluated once on validation, scored as drawn."""
    replies = texts(ep.meta_agent.generate(ep.messages(), samples, seed=ep.turn_seed(0)))
    codes, errors = [], []
    for i in range(samples):
        code, err, _ = extract(replies[i]) if i < len(replies) and replies[i] else (
            None, "no code: no reply", False)
        codes.append(code)
        errors.append(err)
    ready = [i for i, c in enumerate(codes) if c is not None]
    outs = dict(zip(ready, ep.evaluator.evaluate([
        EvalRequest(codes[i], ep.spec.name, "valid", tag=f"policy-eval:{i}") for i in ready]),
        strict=True))
    out = []
    for i in range(samples):
        res = outs.get(i)
        failure = None if res is None else (res.first_failure if res.error
                                            else res.first_exception)
        if failure is not None:
            errors[i] = f"evaluation raised: {failure.get('error')}"
        ok = res is not None and failure is None
        acc = float(res.accuracy) if ok else 0.0
        key = workflow_key(codes[i]) if codes[i] else None
        out.append(Sample(model, ep.spec.name, seed, i, ok, acc, None if ok else errors[i],
                          float(res.cost_usd) if res else 0.0, code_key=key,
                          is_seed_copy=key is not None and key in seed_keys,
                          beats_best_seed=ok and acc > best_seed, code=codes[i]))
    return out


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _sd(xs: Sequence[float]) -> float:
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def summarize(samples: Sequence[Sample], baseline: str | None = None) -> dict:
    """Means per model / seed / benchmark and paired differences against `baseline`.

    `baseline` defaults to the first model seen. The paired difference of a (seed, benchmark)
    cell is mean accuracy under a model minus under the baseline, over the same sample seeds.
    """
    models = list(dict.fromkeys(s.model for s in samples))
    if not models:
        return {"models": [], "baseline": None, "per_model": {}, "cells": [], "paired": {}}
    baseline = baseline or models[0]
    seeds = sorted({s.seed for s in samples})
    benches = list(dict.fromkeys(s.benchmark for s in samples))
    cell: dict[tuple[str, int, str], list[Sample]] = {}
    for s in samples:
        cell.setdefault((s.model, s.seed, s.benchmark), []).append(s)

    per_model = {}
    for m in models:
        mine = [s for s in samples if s.model == m]
        valid_accs = [s.accuracy for s in mine if s.valid]
        per_seed = {sd: _mean([s.accuracy for s in mine if s.seed == sd]) for sd in seeds}
        per_model[m] = {
            "samples": len(mine),
            "mean_accuracy": _mean([s.accuracy for s in mine]),
            "valid_rate": _mean([1.0 if s.valid else 0.0 for s in mine]),
            "mean_accuracy_valid": _mean(valid_accs) if valid_accs else None,
            "per_seed": per_seed,
            "seed_sd": _sd(list(per_seed.values())),
            "per_benchmark": {b: _mean([s.accuracy for s in mine if s.benchmark == b])
                              for b in benches},
            "cost_usd": sum(s.cost_usd for s in mine),
            "diversity": diversity(mine),
        }

    cells = []
    for sd in seeds:
        for b in benches:
            row = {"seed": sd, "benchmark": b}
            for m in models:
                got = cell.get((m, sd, b), [])
                row[m] = _mean([s.accuracy for s in got]) if got else None
            cells.append(row)

    paired = {}
    for m in models:
        if m == baseline:
            continue
        diffs = [c[m] - c[baseline] for c in cells
                 if c.get(m) is not None and c.get(baseline) is not None]
        seed_diffs = [per_model[m]["per_seed"][sd] - per_model[baseline]["per_seed"][sd]
                      for sd in seeds]
        n = len(diffs)
        sd_ = _sd(diffs)
        paired[m] = {
            "vs": baseline,
            "mean_diff": _mean(diffs),
            "cells": n,
            "cells_better": sum(d > 0 for d in diffs),
            "cells_worse": sum(d < 0 for d in diffs),
            "sd": sd_,
            # A paired t-style standard error; with few cells read it as a spread, not a test.
            "stderr": sd_ / math.sqrt(n) if n > 1 else 0.0,
            "per_seed_diff": dict(zip(seeds, seed_diffs, strict=True)),
            "min_seed_diff": min(seed_diffs) if seed_diffs else 0.0,
        }
    return {"models": models, "baseline": baseline, "seeds": seeds, "benchmarks": benches,
            "per_model": per_model, "cells": cells, "paired": paired}


def render_markdown(summary: dict, *, samples_per_cell: int, title: str = "Policy comparison",
                    models_desc: dict[str, str] | None = None) -> str:
    """The comparison as a markdown report (tables of means, per-seed and paired figures)."""
    pct = lambda x: "n/a" if x is None else f"{100 * x:.1f}"  # noqa: E731
    models, base = summary["models"], summary["baseline"]
    lines = [f"# {title}", "",
             f"Each model drew {samples_per_cell} workflows per (seed, benchmark) in the "
             "first-turn W4S state (seed workflows and their validation feedback), with the "
             "same sampling seeds. Every sample is scored by its validation accuracy; a "
             "sample without a working workflow scores 0. No repairs, no racing.", ""]
    if models_desc:
        lines += [f"- `{m}`: `{models_desc.get(m, '')}`" for m in models] + [""]
    lines += ["## Mean validation accuracy of a sampled workflow", "",
              "| model | samples | mean acc (%) | sd over seeds | valid rate (%) | "
              "mean acc of valid (%) | executor $ |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for m in models:
        p = summary["per_model"][m]
        lines.append(f"| {m} | {p['samples']} | {pct(p['mean_accuracy'])} | "
                     f"{100 * p['seed_sd']:.1f} | {pct(p['valid_rate'])} | "
                     f"{pct(p['mean_accuracy_valid'])} | {p['cost_usd']:.4f} |")
    lines += ["", "## Diversity of the samples", "",
              DIVERSITY_LEGEND, "", *DIVERSITY_HEADER]
    for m in models:
        lines.append(diversity_row(m, summary["per_model"][m].get("diversity")))
    for title, label, field, keys in (
            ("Per seed (mean over benchmarks and samples, %)", "seed", "per_seed",
             summary["seeds"]),
            ("Per benchmark (mean over seeds and samples, %)", "benchmark", "per_benchmark",
             summary["benchmarks"])):
        lines += ["", f"## {title}", "", f"| {label} | " + " | ".join(models) + " |",
                  "| --- | " + " | ".join("---" for _ in models) + " |"]
        lines += [f"| {k} | " + " | ".join(pct(summary["per_model"][m][field][k])
                                           for m in models) + " |" for k in keys]
    if summary["paired"]:
        lines += ["", f"## Paired difference against `{base}` (same seed, benchmark, sample "
                  "seeds; accuracy points)", "",
                  "| model | mean diff | stderr | cells better / worse / total | "
                  "smallest per-seed diff |", "| --- | --- | --- | --- | --- |"]
        for m, d in summary["paired"].items():
            lines.append(f"| {m} | {100 * d['mean_diff']:+.1f} | {100 * d['stderr']:.1f} | "
                         f"{d['cells_better']} / {d['cells_worse']} / {d['cells']} | "
                         f"{100 * d['min_seed_diff']:+.1f} |")
    lines.append("")
    return "\n".join(lines)


DIVERSITY_LEGEND = (
    "Per (seed, benchmark) cell: distinct workflows are different programs among its samples "
    "(comments, formatting and docstrings ignored); distinct valid counts only programs that "
    "ran without a failure, and \"not a seed\" those of them that are not a seed workflow "
    "again. A copy and a broken sample both spend an evaluation and bring nothing new. Seed "
    "copies: samples that are a seed workflow again. Beat best seed: valid samples whose "
    "validation accuracy is above the best seed workflow's (same items).")
DIVERSITY_HEADER = (
    "| model | distinct workflows per cell (mean, min-max) | distinct valid (mean, min-max) "
    "| valid, not a seed (mean) | seed copies | beat best seed |",
    "| --- | --- | --- | --- | --- | --- |")


def diversity_row(model: str, d: dict | None) -> str:
    """One markdown table row of `diversity(...)` under DIVERSITY_HEADER (n/a for old
    samples)."""
    if d is None:
        return f"| {model} | n/a | n/a | n/a | n/a | n/a |"
    distinct, valid = distinct_cells(d)
    new = f"{d['distinct_valid_new_mean']:.1f}" if "distinct_valid_new_mean" in d else "n/a"
    return (f"| {model} | {distinct} | {valid} | {new} | "
            f"{d['seed_copies']} / {d['samples']} | {d['beat_best_seed']} / {d['samples']} |")


def distinct_cells(d: dict) -> tuple[str, str]:
    """The 'distinct workflows' and 'distinct valid' table cells of `diversity(...)` (the
    second n/a in a compare.json written before it was counted)."""
    distinct = (f"{d['distinct_mean']:.1f} of {d['samples_per_cell']} "
                f"({d['distinct_min']}-{d['distinct_max']})")
    valid = (f"{d['distinct_valid_mean']:.1f} ({d['distinct_valid_min']}-"
             f"{d['distinct_valid_max']})" if "distinct_valid_mean" in d else "n/a")
    return distinct, valid


def compare_figure(summary: dict):
    """Bar chart of mean accuracy per model and benchmark; error bars are the sd over seeds,
    clipped to [0, 100] (an accuracy cannot leave it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models, benches = summary["models"], summary["benchmarks"]
    cells = summary["cells"]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.6 * (len(benches) + 1)), 3.2))
    width = 0.8 / max(1, len(models))
    groups = benches + ["all"]
    for j, m in enumerate(models):
        means, lows, highs = [], [], []
        for b in groups:
            vals = [c[m] for c in cells if c.get(m) is not None and (b == "all" or c["benchmark"] == b)]
            if b == "all":
                vals = list(summary["per_model"][m]["per_seed"].values())
            mean, sd = 100 * _mean(vals), 100 * _sd(vals)
            means.append(mean)
            lows.append(min(sd, mean))
            highs.append(min(sd, 100 - mean))
        xs = [i + (j - (len(models) - 1) / 2) * width for i in range(len(groups))]
        ax.bar(xs, means, width, yerr=[lows, highs], capsize=3, label=m)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylim(0, 105)
    ax.set_ylabel("mean valid acc of a sample (%)")
    ax.set_title("Sampled workflows by meta-agent")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot(summary: dict, path) -> None:
    import matplotlib.pyplot as plt

    fig = compare_figure(summary)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def samples_as_dicts(samples: Sequence[Sample]) -> list[dict]:
    return [asdict(s) for s in samples]
