"""One W4S episode on one benchmark: the RLAO turn loop (plain code, no Ray).

`Episode` drives the decision process of `mdp` with a `MetaAgent` and an `Evaluator`:

1. seed workflows are evaluated on validation once (`evaluate_seeds`) and become the examples;
2. each turn (`run_turn`): build the prompt, sample m candidates with a seed derived from
   (base seed, episode, turn) (candidate i uses seed + i), extract each workflow (no code block
   -> failed candidate), self-check all of them on a few items in one evaluator call, ask the
   meta-agent to repair failures (up to `max_repairs` rounds, each round one batched
   self-check), evaluate the survivors on the validation split in ONE concurrent evaluator call
   (or race them, see `racing`), reward them against the state before the turn, choose the best,
   advance the state and return one trajectory row per candidate.
3. `replay(rows)` rebuilds the state from the rows of completed turns, which is how a killed
   run resumes exactly: the state after turn t is a pure function of the seed records and rows.

The caller owns I/O: it writes each returned turn's rows (`trajectories.write_turn`) and
handles `BudgetExceeded`, which propagates out of `run_turn` before any row of the unfinished
turn exists. Nothing here runs workflow code: the evaluator does, in its sandbox.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from w4s_ray.config import RLAOConfig
from w4s_ray.errors import DataError
from w4s_ray.meta_agent.base import MetaAgent
from w4s_ray.rlao import mdp
from w4s_ray.rlao.evaluation import EvalRequest, EvalResult, Evaluator
from w4s_ray.rlao.prompts import PromptSpec, build_messages, describe_failure, repair_messages
from w4s_ray.rlao.racing import race
from w4s_ray.rlao.trajectories import now_utc
from w4s_ray.workflow.errors import WorkflowError
from w4s_ray.workflow.extract import extract_workflow

NO_CODE = "no code"


def derive_seed(base: int, *parts: object) -> int:
    """A stable 62-bit seed for (base, parts...): same inputs, same seed, in any process."""
    key = json.dumps([int(base), *[str(p) for p in parts]]).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") >> 2


@dataclass(frozen=True)
class TaskSpec:
    """What an episode needs to know about its benchmark."""

    name: str
    kind: str
    task_description: str
    answer_format: str
    seed_workflows: dict[str, str]

    @classmethod
    def from_benchmark(cls, bm) -> TaskSpec:
        return cls(bm.name, bm.kind, bm.task_description, bm.answer_format,
                   dict(bm.seed_workflows()))


def run_identity(cfg) -> dict:
    """The keyword arguments of `Episode` that come from the experiment, not its `rlao` section:
    the base seed of every turn's sampling, the run id written in rows, the executor's name."""
    return {"base_seed": cfg.seed * 1_000_003 + cfg.meta_agent.seed,
            "run_id": cfg.rlao.run_id or cfg.name, "executor": cfg.executor.model}


@dataclass
class TurnResult:
    turn: int
    rows: list[dict]
    metrics: dict
    chosen: int | None


@dataclass
class _Cand:
    """Mutable per-candidate bookkeeping during one turn."""

    index: int
    seed: int
    action: str
    code: str | None = None
    error: str | None = None
    failure: dict | None = None  # the structured self-check failure, for the repair prompt
    repairable: bool = False
    checked: bool = False
    repairs: int = 0
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cached_usd: float = 0.0
    outcome: EvalResult | None = None
    stopped: bool = False
    calls_saved: float = 0.0

    def add_cost(self, out: EvalResult) -> None:
        self.calls += out.calls
        self.prompt_tokens += out.prompt_tokens
        self.completion_tokens += out.completion_tokens
        self.cost_usd += out.cost_usd
        self.cached_usd += out.cached_usd


def _extract(text: str) -> tuple[str | None, str | None, bool]:
    """(code, error, repairable). No code block at all is final; other problems are repaired."""
    try:
        return extract_workflow(text), None, False
    except WorkflowError as exc:
        msg = str(exc)
        if msg.startswith("no python code block"):
            return None, f"{NO_CODE}: {msg}", False
        return None, msg, True


def _texts(replies) -> list[str]:
    """A backend's replies as strings: None or non-text (a broken backend) counts as no reply."""
    return [r if isinstance(r, str) else "" for r in list(replies or [])]


def seed_record(name: str, code: str, out: EvalResult) -> dict:
    return {
        "name": name, "code": code,
        "val_accuracy": out.accuracy_or_none or 0.0,
        "error": out.error, "feedback": out.feedback or (out.error or ""),
        "calls": out.calls, "prompt_tokens": out.prompt_tokens,
        "completion_tokens": out.completion_tokens, "cost_usd": out.cost_usd,
        "cached_usd": out.cached_usd,
    }


class Episode:
    def __init__(
        self,
        spec: TaskSpec,
        rlao: RLAOConfig,
        episode_id: str,
        evaluator: Evaluator,
        meta_agent: MetaAgent,
        *,
        base_seed: int = 0,
        run_id: str = "w4s",
        executor: str = "",
        extract: Callable[[str], tuple[str | None, str | None, bool]] = _extract,
    ) -> None:
        # Bounds of the settings are the schema's (config.RLAOConfig); nothing to check here.
        self.spec = spec
        self.rlao = rlao
        self.base_seed, self.run_id, self.executor = base_seed, run_id, executor
        self.episode_id = episode_id
        self.evaluator = evaluator
        self.meta_agent = meta_agent
        self.extract = extract
        self.prompt_spec = PromptSpec(spec.kind, spec.answer_format, rlao.history_window)
        self.state: mdp.State | None = None

    @classmethod
    def for_run(cls, cfg, spec: TaskSpec, episode_id: str, evaluator: Evaluator,
                meta_agent: MetaAgent) -> Episode:
        """An episode of the experiment `cfg` (its `rlao` section and `run_identity`)."""
        return cls(spec, cfg.rlao, episode_id, evaluator, meta_agent, **run_identity(cfg))

    # -- set-up ---------------------------------------------------------------------------
    def evaluate_seeds(self) -> list[dict]:
        """Evaluate the seed workflows on validation (one concurrent call): JSON-able records."""
        names = list(self.spec.seed_workflows)
        jobs = [EvalRequest(self.spec.seed_workflows[n], self.spec.name, "valid",
                            tag=f"seed:{n}") for n in names]
        outs = self.evaluator.evaluate(jobs) if jobs else []
        return [seed_record(n, self.spec.seed_workflows[n], o)
                for n, o in zip(names, outs, strict=True)]

    def start(self, seed_records: Sequence[dict]) -> mdp.State:
        examples = [
            mdp.ArchiveEntry(r["name"], r["code"], float(r["val_accuracy"]), r["feedback"])
            for r in seed_records
        ]
        self.state = mdp.initial_state(self.spec.name, self.spec.task_description, examples)
        return self.state

    def replay(self, rows: Sequence[dict]) -> mdp.State:
        """Advance the state through completed turns' rows (this episode's, any order)."""
        assert self.state is not None, "start() first"
        mine = sorted((r for r in rows if r["episode_id"] == self.episode_id),
                      key=lambda r: (r["turn"], r["candidate"]))
        by_turn: dict[int, list[dict]] = {}
        for r in mine:
            by_turn.setdefault(r["turn"], []).append(r)
        for turn in sorted(by_turn):
            if turn != self.state.turn:
                raise DataError(
                    f"episode {self.episode_id}: trajectory rows jump from turn "
                    f"{self.state.turn} to {turn} (a part file is missing)"
                )
            cands = [
                mdp.Candidate(r["candidate"], r["action"], r["code"],
                              r["val_accuracy"] if r["valid"] else None, r["feedback"],
                              r["error"], bool(r["racing_stopped"]))
                for r in by_turn[turn]
            ]
            self.state, pos = mdp.advance(self.state, cands)
            recorded = [i for i, r in enumerate(by_turn[turn]) if r["chosen"]]
            if recorded != ([] if pos is None else [pos]):
                raise DataError(
                    f"episode {self.episode_id} turn {turn}: the chosen flags in the rows do "
                    "not match a replay of the decision process"
                )
        return self.state

    # -- one turn -------------------------------------------------------------------------
    def turn_seed(self, turn: int) -> int:
        return derive_seed(self.base_seed, self.run_id, self.episode_id, turn)

    def run_turn(self) -> TurnResult:
        assert self.state is not None, "start() first"
        t0 = time.monotonic()
        state, s = self.state, self.rlao
        messages = build_messages(state, self.prompt_spec)
        seed = self.turn_seed(state.turn)
        texts = _texts(self.meta_agent.generate(messages, s.candidates, seed=seed))
        cands = []
        for i in range(s.candidates):
            text = texts[i] if i < len(texts) else ""
            c = _Cand(i, seed + i, text)
            c.code, c.error, c.repairable = self.extract(text) if text else (
                None, f"{NO_CODE}: the meta-agent returned no reply", False)
            cands.append(c)
        self._self_check_and_repair(cands, state.turn, messages)
        self._evaluate(cands, state.turn)

        mcands = [
            mdp.Candidate(
                c.index, c.action, c.code,
                c.outcome.accuracy_or_none if (c.outcome and c.error is None) else None,
                c.outcome.feedback if (c.outcome and c.error is None) else None,
                c.error, c.stopped,
            )
            for c in cands
        ]
        rewards = mdp.rewards(state, mcands, s)
        self.state, pos = mdp.advance(state, mcands)
        created = now_utc()
        rows = []
        for c, mc, rew in zip(cands, mcands, rewards, strict=True):
            rows.append({
                "run_id": self.run_id, "episode_id": self.episode_id,
                "benchmark": self.spec.name, "turn": state.turn, "candidate": c.index,
                "prompt_messages": json.dumps(messages, ensure_ascii=False),
                "action": c.action, "code": c.code, "valid": mc.valid, "error": c.error,
                "val_accuracy": mc.val_accuracy, "reward": float(rew),
                "chosen": pos == c.index, "repair_count": c.repairs,
                "eval_calls": c.calls, "prompt_tokens": c.prompt_tokens,
                "completion_tokens": c.completion_tokens, "cost_usd": float(c.cost_usd),
                "cached_usd": float(c.cached_usd),
                "meta_agent": self.meta_agent.name, "executor": self.executor, "seed": c.seed,
                "racing_stopped": c.stopped, "created_at": created, "feedback": mc.feedback,
            })
        metrics = turn_metrics(rows, self.state.best_accuracy)
        metrics.update(
            wall_s=round(time.monotonic() - t0, 3),
            racing_calls_saved=round(sum(c.calls_saved for c in cands), 1),
        )
        return TurnResult(state.turn, rows, metrics, pos)

    def _self_check_and_repair(self, cands: list[_Cand], turn: int, messages: list[dict]) -> None:
        s = self.rlao
        for rnd in range(s.max_repairs + 1):
            todo = [c for c in cands if c.code is not None and not c.checked]
            if todo:
                outs = self.evaluator.evaluate([
                    EvalRequest(c.code, self.spec.name, "valid", tag="self-check",
                                self_check=True) for c in todo])
                for c, out in zip(todo, outs, strict=True):
                    c.add_cost(out)
                    if out.first_failure is not None:
                        c.failure = out.first_failure
                        c.error, c.repairable = describe_failure(out.first_failure), True
                    else:
                        c.checked, c.error, c.failure = True, None, None
            broken = [c for c in cands if not c.checked and c.repairable]
            if not broken or rnd == s.max_repairs:
                break
            for c in broken:
                # The meta-agent sees its turn prompt, its own reply, then the failure.
                msgs = (messages + [{"role": "assistant", "content": c.action}]
                        + repair_messages(c.code or c.action, c.failure or c.error or ""))
                rseed = derive_seed(self.base_seed, self.run_id, self.episode_id, turn, c.index,
                                    "repair", rnd)
                reply = _texts(self.meta_agent.generate(msgs, 1, seed=rseed))
                c.repairs += 1
                text = reply[0] if reply else ""
                code, err, repairable = self.extract(text)
                c.failure = None
                if code is not None:
                    c.action, c.code, c.error, c.repairable = text, code, None, True
                elif c.code is None:
                    c.action, c.error, c.repairable = text, err, repairable
                else:
                    # No code in the reply: keep the last action and code (so `action` and
                    # `code` stay consistent); the next round re-checks and asks again.
                    c.error = err
        for c in cands:
            if c.code is not None and not c.checked:
                c.error = f"self-check failed after {c.repairs} repair(s): {c.error}"

    def _evaluate(self, cands: list[_Cand], turn: int) -> None:
        ready = [c for c in cands if c.code is not None and c.checked]
        if not ready:
            return
        racing = self.rlao.racing
        if racing.enabled and len(ready) > 1:
            results = race(
                self.evaluator, [c.code for c in ready], self.spec.name,
                fractions=racing.slices, confidence=racing.confidence,
                bound=racing.bound, tag=f"{self.episode_id}:t{turn}:",
            )
            outs = [r.outcome for r in results]
            for c, r in zip(ready, results, strict=True):
                c.stopped, c.calls_saved = r.stopped, r.calls_saved
        else:
            jobs = [EvalRequest(c.code, self.spec.name, "valid",
                                tag=f"{self.episode_id}:t{turn}:cand{c.index}") for c in ready]
            outs = self.evaluator.evaluate(jobs)
        for c, out in zip(ready, outs, strict=True):
            c.outcome = out
            c.add_cost(out)
            if out.error:
                c.error = f"evaluation failed: {out.error}"


def turn_metrics(rows: Sequence[dict], best_so_far: float) -> dict:
    """Per-turn summary for metrics.jsonl and the report (derivable from rows alone)."""
    accs = [r["val_accuracy"] for r in rows if r["valid"]]
    # Racing-stopped candidates hold partial-slice means; only full evaluations count as best.
    full = [r["val_accuracy"] for r in rows if r["valid"] and not r["racing_stopped"]]
    chosen = next((r for r in rows if r["chosen"]), None)
    return {
        "episode_id": rows[0]["episode_id"], "benchmark": rows[0]["benchmark"],
        "turn": rows[0]["turn"], "candidates": len(rows), "valid": len(accs),
        "best_val_accuracy": max(full) if full else None,
        "mean_val_accuracy": sum(accs) / len(accs) if accs else None,
        "chosen": chosen["candidate"] if chosen else None,
        "best_so_far": best_so_far,
        "mean_reward": sum(r["reward"] for r in rows) / len(rows),
        "repairs": sum(r["repair_count"] for r in rows),
        "racing_stopped": sum(bool(r["racing_stopped"]) for r in rows),
        "calls": sum(r["eval_calls"] for r in rows),
        "cost_usd": sum(r["cost_usd"] for r in rows),
        # would-have-cost of the cache hits (null in rows written before the column existed)
        "cached_usd": sum(r.get("cached_usd") or 0.0 for r in rows),
    }
