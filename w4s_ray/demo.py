"""`w4s demo`: the whole W4S pipeline offline on one machine, stage by stage.

1. start the simulated executor (a subprocess on a free port; `executor.api_base` points at it);
2. build and warm-start the tiny meta-agent (`w4s meta-agent init-tiny`);
3. collect RLAO trajectories with it on `benchmarks` (`w4s collect`);
4. RWR-train it on them as a Ray Train job (`w4s train`);
5. compare the warm-start and the trained model by the validation accuracy of the workflows
   they sample, on the training benchmarks and the held-out one (`w4s compare`);
6. serve the trained model with Ray Serve (`w4s serve`, OpenAI-compatible);
7. optimize a workflow on `benchmark`, held out from training, with the SERVED model as the
   meta-agent (litellm backend -> the Serve endpoint) (`w4s optimize`), then the best workflow
   by validation once on test, next to the seed baselines;
8. write `<run_dir>/demo_report.md`: every stage's outcome, warm-start vs trained sampled
   workflows, per-turn validation accuracy and dollars, the final test metric against the seed
   baselines.

Each stage calls the same Python function its verb calls, with the one config object (derived
per stage with `model_copy`; nothing re-reads YAML). Stages whose outputs exist are reused
(a second `w4s demo` resumes; `--fresh` starts over). Everything the demo starts (simulator,
Serve app and proxy, Ray) is stopped on the way out, also on errors, Ctrl-C and SIGTERM.

`w4s demo --real` (`demo.real`, experiments/demo-real.yaml) runs the same driver with a real
pretrained meta-agent: stage 2 prepares it from its packaged GGUF, collect uses the scripted
seed-variants meta-agent, stage 7 evaluates the seed workflows once with the served model as
the executor instead of optimizing (w4s_ray/demo_real.py).

Not done here: anything a single stage does not do itself; the numbers are the simulator's
(`sim-gpt-4o-mini`), not a real API's, and the tiny meta-agent does not reason.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from w4s_ray.benchmarks import check_benchmarks, get_benchmark
from w4s_ray.errors import ConfigError, DataError
from w4s_ray.executor.preflight import check_executor
from w4s_ray.executor.sim.launch import start_sim
from w4s_ray.meta_agent import make_meta_agent
from w4s_ray.rlao.loop import TaskSpec
from w4s_ray.rlao.optimize import optimize
from w4s_ray.rlao.policy_eval import DIVERSITY_HEADER, DIVERSITY_LEGEND, diversity_row
from w4s_ray.rlao.report import turn_table, write_report
from w4s_ray.rlao.runs import RunDir
from w4s_ray.runtime.collect import collect
from w4s_ray.runtime.evaluators import EvaluatorPool
from w4s_ray.runtime.policy_compare import compare_policies
from w4s_ray.runtime.ray_init import ray_session
from w4s_ray.runtime.train_job import run_training
from w4s_ray.serve.manage import preflight, start_app, stop_app
from w4s_ray.train.tiny import init_tiny
from w4s_ray.utils.io import atomic_write_text

STAGES = ["simulator", "init-tiny", "collect", "train", "compare", "serve", "optimize"]
REAL_STAGES = ["simulator", "prepare", "collect", "train", "compare", "serve", "serve-eval"]


def demo_config(cfg):
    """The config with every stage's input and output placed under `run_dir`.

    Stage n+1 reads what stage n wrote, so their paths are derived from one root here instead
    of being kept consistent by hand (`--set run_dir=...` moves the whole demo).
    """

    train_on = check_benchmarks(cfg.benchmarks)
    held_out = check_benchmarks([cfg.benchmark])[0]
    if held_out in train_on:
        raise ConfigError(f"benchmark {held_out} is also in benchmarks (the training set); the "
                          "demo optimizes on a benchmark held out from training")
    out = cfg.model_copy(deep=True)
    out.benchmarks = train_on  # resolved: None means every registered benchmark
    from w4s_ray.storage import require_local

    root = require_local(cfg.run_dir, "demo run_dir").resolve()
    out.run_dir = str(root)
    out.data.dir = str(cfg.data_dir())
    if cfg.demo.real:
        from w4s_ray import demo_real

        demo_real.check_real_config(cfg)
        demo_real.real_paths(cfg, out)
        return out
    out.tiny.out_dir = str(root / "tiny-meta-agent")
    out.meta_agent.backend = "local"
    out.meta_agent.model = str(root / "tiny-meta-agent" / "model")
    out.train.data = str(root / "collect" / "trajectories")
    out.train.base_model = out.meta_agent.model
    out.train.out_dir = str(root / "train")
    out.serve.model = str(root / "train" / "model")
    return out


def demo_paths(cfg) -> dict[str, Path]:
    root = Path(cfg.run_dir)
    warm = Path(cfg.train.base_model) if cfg.demo.real else Path(cfg.tiny.out_dir) / "model"
    return {"root": root, "tiny": Path(cfg.tiny.out_dir), "warm": warm,
            "collect": root / "collect", "served_executor": root / "served-executor",
            "train": Path(cfg.train.out_dir), "compare": root / "compare",
            "optimize": root / "optimize" / cfg.benchmark,
            "report": root / "demo_report.md"}


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the cleanup below runs for `kill` as well."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


class _Log:
    def __init__(self, say: Callable[[str], None], stages: list[str] = STAGES) -> None:
        self.say = say
        self.names = stages
        self.t0 = time.monotonic()
        self.stages: list[dict] = []

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[dict]:
        i, n = self.names.index(name) + 1, len(self.names)
        self.say(f"[demo {i}/{n}] {name} ... (t={time.monotonic() - self.t0:.0f} s)")
        rec: dict = {"stage": name, "status": "running"}
        self.stages.append(rec)
        t = time.monotonic()
        try:
            yield rec
            rec["status"] = "done"
        except BaseException as exc:
            rec["status"] = f"failed: {type(exc).__name__}"
            raise
        finally:
            rec["wall_s"] = round(time.monotonic() - t, 1)
            self.say(f"[demo {i}/{n}] {name}: {rec['status']} in {rec['wall_s']} s"
                     + (f" - {rec['note']}" if rec.get("note") else ""))


def check_demo_data(cfg) -> None:
    """Every benchmark the demo reads has its data files, present and matching (DataError:
    one line naming the file and `w4s data fetch`)."""
    from w4s_ray.benchmarks import check_benchmarks, get_benchmark

    names = [*cfg.benchmarks, cfg.benchmark, *compare_benchmarks(cfg),
             *([cfg.demo.executor_benchmark] if cfg.demo.executor_benchmark else [])]
    for name in check_benchmarks(list(dict.fromkeys(names))):
        get_benchmark(name, data_dir=cfg.data_dir()).check_files()


def run_demo(cfg, *, fresh: bool = False, progress: bool = True,
             say: Callable[[str], None] = print) -> Path:
    """Run every stage; returns the path of demo_report.md. Stops all it started.

    A failing stage still leaves a demo_report.md with the stages done so far, then raises.
    """
    cfg = demo_config(cfg)
    paths = demo_paths(cfg)
    check_demo_data(cfg)  # before any stage: the warm start alone is minutes of work
    if fresh:
        shutil.rmtree(paths["root"], ignore_errors=True)
    paths["root"].mkdir(parents=True, exist_ok=True)
    real = cfg.demo.real
    log = _Log(say, REAL_STAGES if real else STAGES)
    sim = None
    serve_name = None
    results: dict = {}
    with _sigterm_as_interrupt(), contextlib.ExitStack() as ray_stack:
        try:
            with log.stage("simulator") as rec:
                sim = start_sim(cfg.sim, cfg.data_dir(), port=0)
                cfg.executor.api_base = sim.url
                results["executor"] = check_executor(cfg.executor)  # says "simulated"
                rec["note"] = f"{sim.url} ({results['executor']['simulator']})"
            if real:
                from w4s_ray import demo_real

                with log.stage("prepare") as rec:
                    results["prepare"] = demo_real.stage_prepare(cfg)
                    rec["note"] = results["prepare"]["note"]
            else:
                with log.stage("init-tiny") as rec:
                    results["tiny"] = _stage_tiny(cfg, paths, progress)
                    rec["note"] = results["tiny"]["note"]
            ray_stack.enter_context(ray_session(cfg.ray))  # Ray stops after Serve, below
            with log.stage("collect") as rec:
                results["collect"] = _stage_collect(cfg, paths, progress, results["executor"])
                rec["note"] = results["collect"]["note"]
            with log.stage("train") as rec:
                results["train"] = _stage_train(cfg, paths)
                rec["note"] = results["train"]["note"]
            with log.stage("compare") as rec:
                results["compare"] = _stage_compare(cfg, paths, progress)
                rec["note"] = results["compare"]["note"]
            with log.stage("serve") as rec:
                serve_name, url = _stage_serve(cfg)
                rec["note"] = f"{url}/v1 (model {cfg.serve.model_name})"
            if real:
                with log.stage("serve-eval") as rec:
                    results["served_executor"] = _stage_served_executor(cfg, paths, url)
                    rec["note"] = results["served_executor"]["note"]
            else:
                with log.stage("optimize") as rec:
                    results["optimize"] = _stage_optimize(cfg, paths, url, progress,
                                                          results["executor"])
                    rec["note"] = results["optimize"]["note"]
        except Exception:
            with contextlib.suppress(Exception):
                write_demo_report(cfg, paths, results, log.stages, time.monotonic() - log.t0)
            raise
        finally:
            if serve_name is not None:
                with contextlib.suppress(Exception):
                    stop_app(serve_name, shutdown_serve=True, shutdown_ray=False)
            ray_stack.close()
            if sim is not None:
                sim.stop()
    return write_demo_report(cfg, paths, results, log.stages, time.monotonic() - log.t0)


def _stage_tiny(cfg, paths, progress: bool) -> dict:
    model = paths["tiny"] / "model"
    info = paths["tiny"] / "warmstart.json"
    if (model / "config.json").exists() and info.exists():
        rep = json.loads(info.read_text(encoding="utf-8"))
        reused = True
    else:
        rep = init_tiny(cfg.tiny, out_dir=paths["tiny"], benchmarks=list(cfg.benchmarks),
                        progress=progress, protocol=cfg.rlao.protocol)
        reused = False
    return {"model_dir": str(model), "steps": rep.get("steps"),
            "loss_first": rep.get("loss_first"), "loss_last": rep.get("loss_last"),
            "parse_rate": rep.get("parse_rate"),
            "note": f"{'reused ' if reused else ''}{model}; parseable solver rate "
                    f"{rep.get('parse_rate', 0):.2f}"}


def _stage_collect(cfg, paths, progress: bool, executor: dict) -> dict:
    resume = RunDir(paths["collect"]).has_run()
    out = collect(cfg, list(cfg.benchmarks), paths["collect"], resume=resume, progress=progress,
                  executor=executor)
    rows = RunDir(paths["collect"]).read_rows()
    valid = sum(bool(r["valid"]) for r in rows)
    if rows and not any(r["code"] for r in rows) and not cfg.demo.real:
        raise DataError(
            f"collect: none of the {len(rows)} candidates of the tiny meta-agent held an "
            f"extractable workflow, so RWR has nothing to train on (see "
            f"{paths['tiny'] / 'warmstart.md'} for its parse rate); raise tiny.warmstart_steps "
            "or rerun with --fresh")
    return {"rows": len(rows), "valid": valid, "episodes": out["episodes"],
            "report": str(RunDir(paths["collect"]).report),
            "note": f"{len(rows)} candidates ({valid} valid) in {out['episodes']} episodes"}


def _stage_train(cfg, paths) -> dict:
    model = paths["train"] / "model"
    summary = paths["train"] / "train_summary.md"
    if (model / "config.json").exists() and summary.exists():
        return {"model_dir": str(model), "summary": str(summary), "note": f"reused {model}"}
    res = run_training(cfg, overwrite=True)
    first = res.history[0]["loss"] if res.history else None
    last = res.history[-1]["loss"] if res.history else None
    return {"model_dir": str(res.model_dir), "steps": res.steps, "loss_first": first,
            "loss_last": last, "summary": str(summary), "examples": res.stats.line(),
            "note": f"{res.steps} RWR steps, weighted loss "
                    f"{first if first is None else round(first, 4)} -> "
                    f"{last if last is None else round(last, 4)}"}


def compare_benchmarks(cfg) -> list[str]:
    """The training benchmarks, then the held-out one (unless compare.benchmarks says)."""
    if cfg.compare.benchmarks:
        return list(cfg.compare.benchmarks)
    return list(dict.fromkeys([*cfg.benchmarks, cfg.benchmark]))


def _stage_compare(cfg, paths, progress: bool) -> dict:
    models = {"warm-start": str(paths["warm"]), "trained": str(paths["train"] / "model")}
    names = check_benchmarks(compare_benchmarks(cfg))
    summary = compare_policies(cfg, models, names, paths["compare"],
                               samples=cfg.compare.samples, seeds=list(cfg.compare.seeds),
                               progress=progress)
    warm = summary["per_model"]["warm-start"]["mean_accuracy"]
    trained = summary["per_model"]["trained"]["mean_accuracy"]
    return {"summary": summary, "report": str(paths["compare"] / "compare.md"),
            "note": f"mean valid acc of a sampled workflow: warm-start {100 * warm:.1f}% -> "
                    f"trained {100 * trained:.1f}%"}


def _stage_served_executor(cfg, paths, url: str) -> dict:
    from w4s_ray import demo_real

    bench = cfg.demo.executor_benchmark or cfg.benchmark
    sim = demo_real.sim_seed_records(paths["compare"], bench, cfg.eval.limit)
    return demo_real.stage_executor_eval(cfg, url, paths["served_executor"], sim)


def _stage_serve(cfg) -> tuple[str, str]:
    name = f"{cfg.name}-meta-agent"
    resolved = preflight(cfg, name)
    url = start_app(cfg, resolved, name)
    return name, url


def served_meta_agent_config(cfg, url: str):
    """The config whose meta-agent is the served model, through litellm."""
    out = cfg.model_copy(deep=True)
    out.meta_agent.backend = "litellm"
    out.meta_agent.model = f"openai/{cfg.serve.model_name}"
    out.meta_agent.api_base = f"{url}/v1"
    return out


def _stage_optimize(cfg, paths, url: str, progress: bool, executor: dict) -> dict:
    ocfg = served_meta_agent_config(cfg, url)
    spec = TaskSpec.from_benchmark(get_benchmark(cfg.benchmark, data_dir=cfg.data_dir()),
                                  cfg.rlao.protocol)
    resume = RunDir(paths["optimize"]).has_run()
    evaluator = EvaluatorPool(ocfg)
    agent = make_meta_agent(ocfg)
    try:
        final = optimize(ocfg, spec, paths["optimize"], evaluator, agent, resume=resume,
                         progress=progress, executor=executor)
    finally:
        agent.close()
        evaluator.close()
    return {"final": final, "meta_agent_calls": agent.usage.calls,
            "note": f"{cfg.benchmark}: valid {final['valid_accuracy']:.3f}, test "
                    f"{final['test_accuracy'] if final['test_accuracy'] is None else round(final['test_accuracy'], 3)}"
                    f", ${final['dollars']:.4f}"}


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _compare_section(cfg, summary: dict) -> list[str]:
    """Did RWR help? Warm-start vs trained, by the workflows each samples."""
    pm = summary["per_model"]
    models = [m for m in ("warm-start", "trained") if m in pm]
    if len(models) < 2:
        return []
    held = cfg.benchmark
    lines = ["## Did training help? Warm-start vs trained meta-agent", "",
             f"Each model sampled {summary.get('samples_per_cell')} workflows per benchmark and "
             f"seed (seeds {', '.join(map(str, summary['seeds']))}) in the first-turn W4S state; "
             "each sample scores its validation accuracy, 0 if it gave no working workflow. "
             f"`{held}` was not in the training data.", "",
             "| benchmark | " + " | ".join(f"{m} (%)" for m in models) + " |",
             "| --- | " + " | ".join("---" for _ in models) + " |"]
    for b in summary["benchmarks"]:
        label = f"{b} (held out)" if b == held else b
        lines.append(f"| {label} | " + " | ".join(_pct(pm[m]["per_benchmark"][b])
                                                  for m in models) + " |")
    lines.append("| **all** | " + " | ".join(f"**{_pct(pm[m]['mean_accuracy'])}**"
                                             for m in models) + " |")
    lines.append("| valid rate | " + " | ".join(_pct(pm[m]["valid_rate"]) for m in models)
                 + " |")
    lines += ["", "Diversity of the samples. " + DIVERSITY_LEGEND, "", *DIVERSITY_HEADER]
    lines += [diversity_row(m, pm[m].get("diversity")) for m in models]
    d = summary["paired"].get("trained")
    if d:
        lines += ["", f"Paired difference trained - warm-start: {100 * d['mean_diff']:+.1f} "
                  f"points (stderr {100 * d['stderr']:.1f}; {d['cells_better']} of "
                  f"{d['cells']} benchmark-seed cells better, {d['cells_worse']} worse)."]
    lines.append("")
    return lines


def write_demo_report(cfg, paths, results: dict, stages: list[dict], wall_s: float) -> Path:
    """demo_report.md: stage table, per-turn validation/dollars, final test vs seed baselines."""

    if cfg.demo.real:
        return _write_real_report(cfg, paths, results, stages, wall_s)
    lines = ["# w4s demo (simulated executor)", "",
             f"Offline end-to-end run: simulated executor `{cfg.executor.model}`, tiny "
             f"meta-agent trained on {', '.join(cfg.benchmarks)}, then served and used to "
             f"optimize a workflow for the held-out benchmark **{cfg.benchmark}**. Total wall "
             f"time {wall_s:.0f} s.", "",
             "## Stages", "", "| stage | status | wall s | outcome |", "| --- | --- | --- | --- |"]
    for s in stages:
        lines.append(f"| {s['stage']} | {s['status']} | {s.get('wall_s', '')} | "
                     f"{str(s.get('note', '')).replace('|', '/')} |")
    lines.append("")
    cmp_json = paths["compare"] / "compare.json"
    if cmp_json.exists():
        lines += _compare_section(cfg, json.loads(cmp_json.read_text(encoding="utf-8")))
    opt = paths["optimize"]
    ord_ = RunDir(opt, single_episode=True)
    final = (results.get("optimize") or {}).get("final")
    if ord_.config.exists():
        write_report(opt)
        seeds = ord_.load_seeds(cfg.benchmark) or []
        table = turn_table(ord_.read_rows(), {cfg.benchmark: seeds})
        seed_usd = sum(s.get("cost_usd", 0.0) for s in seeds)
        lines += [f"## Optimization on {cfg.benchmark} with the served meta-agent", "",
                  f"Meta-agent: `openai/{cfg.serve.model_name}` at the Ray Serve endpoint "
                  "(litellm backend). Turn 0 row: the seed workflows on validation. Dollars "
                  "are what the executor calls cost; calls answered from the completion cache "
                  "(made before by an earlier stage, e.g. compare on this benchmark) cost 0.",
                  "",
                  "Distinct: different programs among a turn's candidates (code normalised"
                  + (f"; repeats of a known workflow drawn again up to "
                     f"{cfg.rlao.redraw_repeats} times, `rlao.redraw_repeats`)."
                     if cfg.rlao.redraw_repeats else
                     "; every draw evaluated as it came, `rlao.redraw_repeats` 0)."), "",
                  "| turn | valid candidates | distinct | best valid acc (%) | best so far (%) | "
                  "dollars | cumulative dollars |", "| --- | --- | --- | --- | --- | --- | --- |"]
        best_seed = max((s["val_accuracy"] for s in seeds), default=None)
        lines.append(f"| 0 (seeds) | {len(seeds)} | {len(seeds)} | {_pct(best_seed)} | "
                     f"{_pct(best_seed)} | {seed_usd:.4f} | {seed_usd:.4f} |")
        for t in table:
            lines.append(f"| {t['turn']} | {t['valid']}/{t['candidates']} | {t['distinct']} | "
                         f"{_pct(t['best_val_accuracy'])} | {_pct(t['best_so_far'])} | "
                         f"{t['cost_usd']:.4f} | {t['cum_usd']:.4f} |")
        lines.append("")
        if final:
            lines += ["## Final test metric", "",
                      f"The best workflow by validation (`{final['best']}`) evaluated once on "
                      f"{final.get('test_n')} test items, next to the seed baselines on the same "
                      "items (baselines are for this table only).", "",
                      "| workflow | valid (%) | test (%) |", "| --- | --- | --- |",
                      f"| **W4S (served meta-agent)** | {_pct(final['valid_accuracy'])} | "
                      f"**{_pct(final['test_accuracy'])}** |"]
            for name, b in (final.get("seed_baselines") or {}).items():
                lines.append(f"| seed: {name} | {_pct(b.get('valid_accuracy'))} | "
                             f"{_pct(b.get('test_accuracy'))} |")
            lines += ["", f"Executor dollars for this benchmark: {final['dollars']:.4f} "
                      f"(simulated calls priced as {cfg.executor.pricing_model}); calls answered "
                      f"from the completion cache would have cost "
                      f"{final.get('cached_dollars') or 0.0:.4f} more.", ""]
        lines += [f"Details: [optimize report]({ord_.report.relative_to(paths['root'])}), "
                  f"![curve]({ord_.curve.relative_to(paths['root'])})", ""]
    links = [("collect report", RunDir(paths["collect"]).report),
             ("compare report", paths["compare"] / "compare.md"),
             ("train summary", paths["train"] / "train_summary.md"),
             ("tiny warm start", paths["tiny"] / "warmstart.md")]
    lines += ["## Stage outputs", ""]
    for label, p in links:
        if p.exists():
            lines.append(f"- {label}: `{p}`")
    lines.append("")
    atomic_write_text(paths["report"], "\n".join(lines))
    return paths["report"]


def _stage_lines(stages: list[dict]) -> list[str]:
    lines = ["## Stages", "", "| stage | status | wall s | outcome |", "| --- | --- | --- | --- |"]
    for s in stages:
        lines.append(f"| {s['stage']} | {s['status']} | {s.get('wall_s', '')} | "
                     f"{str(s.get('note', '')).replace('|', '/')} |")
    return lines + [""]


def _write_real_report(cfg, paths, results: dict, stages: list[dict], wall_s: float) -> Path:
    """demo_report.md of `w4s demo --real`: stages, warm start vs RWR-trained, served executor."""
    from w4s_ray import demo_real

    warm = paths["warm"]
    lines = [f"# w4s demo --real ({cfg.demo.model} as the meta-agent)", "",
             f"Offline end-to-end run with a real pretrained meta-agent, `{warm}` (prepared "
             f"from the GGUF packaged for preset `{cfg.demo.model}`; nothing downloaded). "
             f"Trajectories were collected on {', '.join(cfg.benchmarks)} with the simulated "
             f"executor `{cfg.executor.model}` and the scripted `seed-variants` meta-agent "
             "(working edits of the seed workflows: the valid workflows RWR imitates; the real "
             f"model itself writes almost none). Then LoRA RWR of {cfg.demo.model} on the "
             f"valid rows ({cfg.train.num_workers} worker(s), {cfg.train.epochs} epoch(s)), the "
             "warm start and the trained model compared on validation, and the trained model "
             f"served. **{cfg.benchmark}** was held out of training. Total wall time "
             f"{wall_s:.0f} s.", ""]
    lines += _stage_lines(stages)
    cmp_json = paths["compare"] / "compare.json"
    if cmp_json.exists():
        summary = json.loads(cmp_json.read_text(encoding="utf-8"))
        samples = demo_real.read_samples(paths["compare"])
        lines += ["## Warm start vs RWR-trained meta-agent (held-out validation)", "",
                  f"Each model sampled {summary.get('samples_per_cell')} workflows per benchmark "
                  f"and seed (seeds {', '.join(map(str, summary['seeds']))}; benchmarks "
                  f"{', '.join(summary['benchmarks'])}; `{cfg.benchmark}` not in the training "
                  f"data) in the first-turn W4S state, replies up to "
                  f"{cfg.meta_agent.max_tokens} tokens at temperature "
                  f"{cfg.meta_agent.temperature}. Parseable: the reply holds an extractable "
                  "`solver`; valid: it ran on validation without an error; accuracy: its "
                  "validation accuracy, 0 when not valid. Distinct workflows: different "
                  "programs (normalised code) among the samples of one benchmark-seed cell.",
                  ""]
        lines += demo_real.warm_vs_trained_table(summary, samples)
        lines += ["What RWR did and did not do (from the figures above):", ""]
        lines += demo_real.verdict(summary, samples)
        lines += ["Per benchmark (mean accuracy of a sample, %):", "",
                  "| benchmark | warm-start | trained |", "| --- | --- | --- |"]
        pm = summary["per_model"]
        for b in summary["benchmarks"]:
            label = f"{b} (held out)" if b == cfg.benchmark else b
            lines.append(f"| {label} | " + " | ".join(
                _pct(pm[m]["per_benchmark"][b]) if m in pm else "n/a"
                for m in ("warm-start", "trained")) + " |")
        lines.append("")
    served = (results.get("served_executor") or {})
    f = paths["served_executor"] / "served_executor.json"
    if not served and f.exists():
        served = json.loads(f.read_text(encoding="utf-8"))
    if served.get("seeds") is not None:
        lines += demo_real.served_executor_section(served)
    links = [("collect report", RunDir(paths["collect"]).report),
             ("compare report", paths["compare"] / "compare.md"),
             ("train summary", paths["train"] / "train_summary.md"),
             ("served executor", paths["served_executor"] / "served_executor.json")]
    lines += ["## Stage outputs", ""]
    lines += [f"- {label}: `{p}`" for label, p in links if p.exists()]
    lines.append("")
    atomic_write_text(paths["report"], "\n".join(lines))
    return paths["report"]
