"""Run directories and exact resume (no Ray). `RunDir` is the only code that knows the file
names of a run directory; the `optimize` driver is in `rlao.optimize`.

Layout of a run directory (optimize and collect share it):

    config.yaml              the resolved config of the first start (resume checks it)
    seeds/<benchmark>.json   seed workflows' validation results (evaluated once, reused on resume)
    trajectories/            part-<episode>-<turn>.parquet, one per completed turn
    workflows/               turn_XX_cand_Y.py for every candidate with code; seed_<name>.py
    metrics.jsonl            one line per completed turn (rewritten whole, never appended)
    cost.json                executor dollars/calls (seeds, candidates, test), what cache hits
                             would have cost, meta-agent usage
    executor.json            the executor the run talked to (endpoint, price model, simulated?)
    final_workflow.py, final.json   (optimize) the best workflow by validation and its test score
    report.md, curve.png     (see w4s_ray.rlao.report)
    baselines.json           (sweep) the seed workflows evaluated on test, reported only
    error.log                (sweep) the full error of a benchmark that failed

Resume: the rows in `trajectories/` are the truth. A resumed run reads them (a corrupt file is a
`DataError` naming it; nothing is deleted), replays the decision process to the last completed
turn and continues; turn seeds are derived from (seed, run id, episode, turn), so with a
deterministic meta-agent and the executor cache the rows equal an uninterrupted run's.
Everything but the Parquet parts is derived state and is rewritten from the rows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from pydantic import ValidationError

from w4s_ray.config import ExperimentConfig, dump_config, resume_keys
from w4s_ray.errors import ConfigError, DataError
from w4s_ray.rlao import trajectories as traj
from w4s_ray.rlao.loop import Episode, TurnResult, turn_metrics
from w4s_ray.utils.io import atomic_write_json, atomic_write_text


def _get(tree: dict, dotted: str):
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def valid_seed_records(records) -> bool:
    """Seed results as `save_seeds` writes them: a list of {name, code, val_accuracy, ...}."""
    return isinstance(records, list) and all(
        isinstance(r, dict) and isinstance(r.get("name"), str) and isinstance(r.get("code"), str)
        and isinstance(r.get("val_accuracy"), (int, float)) and isinstance(r.get("feedback"), str)
        for r in records)


def episode_id(benchmark: str, index: int) -> str:
    return f"{benchmark}-e{index:02d}"


def read_json(path: Path, *, torn_ok: bool = False):
    """The JSON in `path`, None when absent. A corrupt file is a DataError naming it, or None
    with `torn_ok` (derived state a caller recomputes)."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        if torn_ok:
            return None
        raise DataError(f"{path}: not valid JSON (delete it to recompute)") from None


class RunDir:
    """One run directory (module docstring); the only code that knows its file names."""

    def __init__(self, path: str | Path, *, single_episode: bool = False) -> None:
        self.path = Path(path)
        # optimize keeps workflows/turn_XX_cand_Y.py flat; collect nests them per episode.
        self.single_episode = single_episode
        self.config = self.path / "config.yaml"
        self.seeds = self.path / "seeds"
        self.trajectories = self.path / "trajectories"
        self.workflows = self.path / "workflows"
        self.metrics = self.path / "metrics.jsonl"
        self.cost = self.path / "cost.json"
        self.final = self.path / "final.json"
        self.final_workflow = self.path / "final_workflow.py"
        self.executor = self.path / "executor.json"
        self.report = self.path / "report.md"
        self.curve = self.path / "curve.png"
        self.baselines = self.path / "baselines.json"
        self.error_log = self.path / "error.log"

    def has_run(self) -> bool:
        return self.config.exists() or bool(traj.part_files(self.trajectories))

    def clear(self) -> None:
        """`--fresh`: delete what a run wrote here (the files above, nothing else)."""
        import shutil

        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"run dir {self.path} exists and is not a directory")
        for p in (self.seeds, self.trajectories, self.workflows):
            shutil.rmtree(p, ignore_errors=True)
        for p in (self.config, self.metrics, self.cost, self.final, self.final_workflow,
                  self.executor, self.report, self.curve, self.baselines, self.error_log):
            p.unlink(missing_ok=True)

    def has_work(self) -> bool:
        """Anything a fresh start would overwrite: a run, stored baselines or a final result."""
        return self.path.is_dir() and any(
            p.exists() for p in (self.config, self.baselines, self.final, self.trajectories))

    # -- derived files ----------------------------------------------------------------------
    def load_final(self, *, torn_ok: bool = False) -> dict | None:
        return read_json(self.final, torn_ok=torn_ok)

    def load_cost(self) -> dict | None:
        return read_json(self.cost)

    def load_executor(self) -> dict | None:
        """What `record_executor` wrote (None when absent or unreadable: reports then say
        nothing about the executor rather than fail)."""
        info = read_json(self.executor, torn_ok=True)
        return info if isinstance(info, dict) else None

    def load_baselines(self) -> dict | None:
        return read_json(self.baselines)

    def all_seeds(self) -> dict[str, list[dict]]:
        """Every benchmark's stored seed results (corrupt ones are a DataError)."""
        return {p.stem: self.load_seeds(p.stem) for p in sorted(self.seeds.glob("*.json"))}

    def walls(self) -> dict[tuple[str, int], float | None]:
        """Wall seconds per (episode, turn) as measured when the turn ran."""
        return {(m.get("episode_id"), m.get("turn")): m.get("wall_s")
                for m in self.load_metrics()}

    def turns_done(self) -> int:
        return len(self.load_metrics())

    def recorded_config(self) -> dict:
        """The config the run was started with, as a tree ({} when absent)."""
        if not self.config.exists():
            return {}
        tree = yaml.safe_load(self.config.read_text(encoding="utf-8")) or {}
        return tree if isinstance(tree, dict) else {}

    def prepare(self, cfg: ExperimentConfig, resume: bool) -> None:
        """Create or reopen the directory; refuse to mix runs or overwrite results."""
        self.check_reuse(cfg, resume)
        self.path.mkdir(parents=True, exist_ok=True)
        for d in (self.seeds, self.trajectories, self.workflows):
            d.mkdir(exist_ok=True)
        if not self.config.exists():
            tmp = self.path / ".config.yaml.tmp"
            dump_config(cfg, tmp)
            tmp.replace(self.config)

    def record_executor(self, info: dict | None) -> None:
        """What the preflight found (reports say "simulated" from it); None: leave as is."""
        if info is not None:
            atomic_write_json(self.executor, info)

    def check_reuse(self, cfg: ExperimentConfig, resume: bool) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"run dir {self.path} exists and is not a directory")
        if self.has_run():
            if not resume:
                raise ConfigError(
                    f"run dir {self.path} already holds a run; pass --resume to continue it, "
                    "--fresh to start over, or choose another directory"
                )
            self._check_same(cfg)

    def _check_same(self, cfg: ExperimentConfig) -> None:
        if not self.config.exists():
            return
        try:
            old = self.recorded_config()
        except yaml.YAMLError:
            raise DataError(f"{self.config}: malformed YAML; cannot check the resumed run") from None
        new = cfg.model_dump(mode="json")
        old = _as_recorded(old)
        # The settings that change what a turn means (marked in the schema): resuming with
        # another value would mix two runs.
        # The protocol first: it sets the defaults of other keys, so it is the change to name.
        for key in sorted(resume_keys(), key=lambda k: k != "rlao.protocol"):
            if _get(old, key) != _get(new, key):
                raise ConfigError(
                    f"--resume: {key} is {_get(new, key)!r} but the run in {self.path} used "
                    f"{_get(old, key)!r}"
                )

    # -- seeds ------------------------------------------------------------------------------
    def seed_file(self, benchmark: str) -> Path:
        return self.seeds / f"{benchmark}.json"

    def load_seeds(self, benchmark: str) -> list[dict] | None:
        p = self.seed_file(benchmark)
        if not p.exists():
            return None
        records = read_json(p, torn_ok=True)
        if not valid_seed_records(records):
            raise DataError(f"{p}: corrupt seed results (delete it to re-evaluate)")
        return records

    def save_seeds(self, benchmark: str, records: list[dict]) -> None:
        atomic_write_json(self.seed_file(benchmark), records)
        for r in records:
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", r["name"]).strip("_") or "seed"
            atomic_write_text(self.workflows / f"seed_{benchmark}_{safe}.py", r["code"])

    # -- turns ------------------------------------------------------------------------------
    def read_rows(self) -> list[dict]:
        return traj.read_rows(self.trajectories)

    def write_turn(self, episode: str, result: TurnResult) -> None:
        """Workflows first, then the Parquet part (the commit point), then derived metrics."""
        for r in result.rows:
            if r["code"]:
                name = f"turn_{result.turn:02d}_cand_{r['candidate']}.py"
                sub = self.workflows if self.single_episode else self.workflows / episode
                atomic_write_text(sub / name, r["code"])
        traj.write_turn(self.trajectories, episode, result.turn, result.rows)
        self.append_metrics(result.metrics)

    def load_metrics(self) -> list[dict]:
        if not self.metrics.exists():
            return []
        out = []
        try:
            text = self.metrics.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return []  # derived state: rebuilt from the rows
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # metrics are derived; a torn line is rebuilt from the rows
        if any(m.get("turn") == 0 for m in out):  # written when the first turn was 0 (seeds: 0)
            for m in out:
                m["turn"] = int(m.get("turn", 0)) + 1
        return out

    def append_metrics(self, metrics: dict) -> None:
        keep = [m for m in self.load_metrics()
                if (m["episode_id"], m["turn"]) != (metrics["episode_id"], metrics["turn"])]
        keep.append(metrics)
        self.write_metrics(keep)

    def write_metrics(self, metrics: list[dict]) -> None:
        metrics = sorted(metrics, key=lambda m: (m["episode_id"], m["turn"]))
        atomic_write_text(self.metrics, "".join(json.dumps(m, sort_keys=True) + "\n"
                                                 for m in metrics))

    def rebuild_metrics(self, rows: list[dict], best_by_turn: dict[tuple[str, int], float]) -> None:
        """After a resume: metrics from the rows, keeping wall times already measured."""
        old = {(m["episode_id"], m["turn"]): m for m in self.load_metrics()}
        groups: dict[tuple[str, int], list[dict]] = {}
        for r in rows:
            groups.setdefault((r["episode_id"], r["turn"]), []).append(r)
        out = []
        for key, grp in groups.items():
            m = turn_metrics(grp, best_by_turn.get(key, 0.0))
            prev = old.get(key, {})
            m["wall_s"] = prev.get("wall_s")
            m["racing_calls_saved"] = prev.get("racing_calls_saved", 0.0)
            out.append(m)
        self.write_metrics(out)


def _as_recorded(old: dict) -> dict:
    """A recorded config tree with the values its run actually used for keys added since:
    runs from before `eval.scoring` scored leniently; runs from before `rlao.protocol` used the
    w4s-ray process, whose defaults the config model then fills in (`protocol`-owned keys)."""
    if isinstance(_get(old, "eval"), dict) and _get(old, "eval.scoring") is None:
        old["eval"]["scoring"] = "lenient"
    if isinstance(_get(old, "rlao"), dict) and _get(old, "rlao.protocol") is None:
        old["rlao"]["protocol"] = "w4s-ray"
        try:
            return ExperimentConfig.model_validate(old).model_dump(mode="json")
        except ValidationError:
            return old  # another version's keys: compare what is there
    return old


def preflight(run_dir: str | Path, cfg: ExperimentConfig, resume: bool, *,
              require_run: bool | None = None) -> None:
    """The checks of `RunDir.prepare` plus reading every row, without writing anything.

    `require_run` (default: `resume`): the directory must hold a run, so `--resume` with a
    mistyped directory is an error instead of a silent fresh start."""
    rd = RunDir(run_dir)
    rd.check_reuse(cfg, resume)
    if (resume if require_run is None else require_run) and not rd.has_run():
        raise ConfigError(f"--resume: {rd.path} holds no run to resume (no config.yaml, no "
                          f"trajectories); check the directory, or drop --resume to start one")
    rd.read_rows()


def replay_episode(ep: Episode, rows: list[dict]) -> dict[tuple[str, int], float]:
    """Replay an episode's rows turn by turn; returns best-so-far after each turn."""
    best: dict[tuple[str, int], float] = {}
    mine = [r for r in rows if r["episode_id"] == ep.episode_id]
    for turn in sorted({r["turn"] for r in mine}):
        ep.replay([r for r in mine if r["turn"] == turn])
        best[(ep.episode_id, turn)] = ep.state.best_accuracy
    return best


def cost_summary(rows: list[dict], seed_records: list[dict], extra_usd: float = 0.0,
                 extra_calls: int = 0, meta_usage=None, extra_cached_usd: float = 0.0) -> dict:
    """Executor dollars spent per part, and `cached_usd`: what the samples served from the
    completion cache would have cost (spent nothing; rows from older files count 0)."""
    seeds_usd = sum(r.get("cost_usd", 0.0) for r in seed_records)
    cand_usd = sum(r["cost_usd"] for r in rows)
    cached = (sum(r.get("cached_usd") or 0.0 for r in seed_records)
              + sum(r.get("cached_usd") or 0.0 for r in rows) + extra_cached_usd)
    out = {
        "seeds_usd": seeds_usd, "candidates_usd": cand_usd, "test_usd": extra_usd,
        "total_usd": seeds_usd + cand_usd + extra_usd, "cached_usd": cached,
        "calls": sum(r.get("calls", 0) for r in seed_records)
        + sum(r["eval_calls"] for r in rows) + extra_calls,
    }
    if meta_usage is not None:
        out["meta_agent_this_process"] = {
            "calls": meta_usage.calls, "prompt_tokens": meta_usage.prompt_tokens,
            "completion_tokens": meta_usage.completion_tokens, "cost_usd": meta_usage.cost_usd,
        }
    return out
