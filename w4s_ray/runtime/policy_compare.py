"""`w4s compare` on Ray: sample workflows from several meta-agents, score them on validation.

For each benchmark the seed workflows are evaluated once (shared by every model); then, model
by model, the local model is loaded into one `MetaAgentActor` and asked for `samples` workflows
per (seed, benchmark) in the first-turn state; all samples are scored through one evaluator
pool (`EvaluatorPool`). The statistics live in `rlao.policy_eval` (no Ray there).

Resumable: every finished (model, seed, benchmark) cell is one line of `samples.jsonl`; a
re-run with the same settings skips those cells, so a crash loses at most the cell in flight.
Outputs: compare.md, compare.json, compare.png, samples.jsonl, seeds/<benchmark>.json.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from w4s_ray.benchmarks import get_benchmark
from w4s_ray.config import RLAOConfig
from w4s_ray.errors import ConfigError, DataError
from w4s_ray.models.resolve import resolve_for
from w4s_ray.rlao import policy_eval as pe
from w4s_ray.rlao.loop import Episode, TaskSpec
from w4s_ray.runtime.evaluators import EvaluatorPool
from w4s_ray.runtime.meta_agent_actor import start_meta_agent_actor, stop
from w4s_ray.utils.io import atomic_write_json, atomic_write_text


def parse_model_args(items: Sequence[str]) -> dict[str, str]:
    """`NAME=PATH` pairs (or bare paths, named by their directory) -> {name: path}."""
    models: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item).name or item, item
        name, path = name.strip(), path.strip()
        if not name or not path:
            raise ConfigError(f"--model {item!r}: expected NAME=PATH")
        if name in models:
            raise ConfigError(f"--model: the name {name!r} is given twice")
        models[name] = path
    if len(models) < 1:
        raise ConfigError("compare: give at least one --model NAME=PATH")
    return models


def check_local_models(models: Mapping[str, str], models_cfg=None) -> dict[str, str]:
    """Each model must resolve to a local checkpoint (HF dir, .gguf, preset, hub id; see
    w4s_ray.models.resolve); returns {name: local dir}. One clear line otherwise."""
    return {name: resolve_for(models_cfg, path, what=f"--model {name}={path}:")
            for name, path in models.items()}


def clear_comparison(out_dir) -> None:
    """`w4s compare --fresh`: delete what a comparison wrote in `out_dir` (nothing else)."""
    import shutil

    out = Path(out_dir)
    for name in ("settings.json", "samples.jsonl", "compare.json", "compare.md", "compare.png"):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "seeds", ignore_errors=True)


def _settings_key(models, benchmarks, samples, seeds, cfg) -> dict:
    return {"models": dict(models), "benchmarks": list(benchmarks), "samples": samples,
            "seeds": list(seeds), "eval_limit": cfg.eval.limit,
            "executor": cfg.executor.model, "temperature": cfg.meta_agent.temperature,
            "max_tokens": cfg.meta_agent.max_tokens, "protocol": cfg.rlao.protocol}


def _load_done(path: Path) -> list[pe.Sample]:
    """Samples of finished cells (one JSON line per cell). A last line cut short by a crash
    (no newline, not JSON) is dropped: that cell is simply redone."""
    out: list[pe.Sample] = []
    if not path.exists():
        return out
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            cell = json.loads(line)
            out.extend(pe.Sample(**s) for s in cell["samples"])
        except (ValueError, TypeError, KeyError) as exc:
            if n == len(lines):  # the unterminated tail of an interrupted append
                atomic_write_text(path, "\n".join(lines[:-1]) + ("\n" if n > 1 else ""))
                break
            raise DataError(f"{path}:{n}: not a sample record ({exc}); remove the file to "
                            "start over") from None
    return out


def compare_policies(cfg, models: Mapping[str, str], benchmarks: Sequence[str], out_dir,
                     *, samples: int, seeds: Sequence[int], progress: bool = True,
                     evaluator=None, start_agent=None) -> dict:
    """Run (or resume) the comparison; returns the summary. Ray must be initialised.

    `start_agent(name, path) -> MetaAgent` loads one model (default: the local backend in a
    `MetaAgentActor`); it is called only for models with cells left to do.
    """
    if samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {samples}")
    if not seeds:
        raise ConfigError("--seeds: give at least one seed")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    key = _settings_key(models, benchmarks, samples, seeds, cfg)
    key_file = out / "settings.json"
    if key_file.exists() and json.loads(key_file.read_text(encoding="utf-8")) != key:
        raise ConfigError(f"{out} holds a comparison with other settings; use another --out "
                          "or delete it")
    atomic_write_json(key_file, key)
    samples_file = out / "samples.jsonl"
    done = _load_done(samples_file)
    done_cells = {(s.model, s.seed, s.benchmark) for s in done}

    t0 = time.monotonic()
    own_evaluator = evaluator is None
    evaluator = evaluator or EvaluatorPool(cfg)
    try:
        specs = {b: TaskSpec.from_benchmark(get_benchmark(b, data_dir=cfg.data_dir()),
                                           cfg.rlao.protocol)
                 for b in benchmarks}
        seed_records = {}
        for b, spec in specs.items():
            f = out / "seeds" / f"{b}.json"
            if f.exists():
                seed_records[b] = json.loads(f.read_text(encoding="utf-8"))
            else:
                ep = Episode(spec, RLAOConfig(protocol=cfg.rlao.protocol), f"{b}-seeds",
                             evaluator, None)
                seed_records[b] = ep.evaluate_seeds()
                atomic_write_json(f, seed_records[b])
        total = len(models) * len(seeds) * len(benchmarks)
        bar = tqdm(total=total, initial=len(done_cells), desc="compare", unit="cell",
                   disable=not progress)
        for name, path in models.items():
            todo = [(sd, b) for sd in seeds for b in benchmarks
                    if (name, sd, b) not in done_cells]
            if not todo:
                continue
            if start_agent is None:
                mcfg = cfg.meta_agent.model_copy(update={"backend": "local", "model": str(path)})
                agent = start_meta_agent_actor(mcfg, cfg.ray, getattr(cfg, "models", None))
            else:
                agent = start_agent(name, path)
            try:
                for sd, b in todo:
                    got = pe.sample_policy(name, agent, specs[b], seed_records[b], evaluator,
                                           samples=samples, seed=sd,
                                           executor=cfg.executor.model,
                                           protocol=cfg.rlao.protocol)
                    line = json.dumps({"model": name, "seed": sd, "benchmark": b,
                                       "samples": pe.samples_as_dicts(got)})
                    with samples_file.open("a", encoding="utf-8") as fh:
                        fh.write(line + "\n")  # one write per cell
                    done.extend(got)
                    bar.update(1)
            finally:
                stop(agent)
                agent.close()
        bar.close()
    finally:
        if own_evaluator:
            evaluator.close()
    summary = pe.summarize(done, baseline=next(iter(models)))
    summary["wall_s"] = round(time.monotonic() - t0, 1)
    summary["samples_per_cell"] = samples
    summary["settings"] = key
    atomic_write_json(out / "compare.json", summary)
    atomic_write_text(out / "compare.md", pe.render_markdown(
        summary, samples_per_cell=samples, models_desc=dict(models)))
    pe.plot(summary, out / "compare.png")
    return summary
