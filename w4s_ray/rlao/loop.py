"""One RLAO episode on one benchmark: the turn loop of both decision processes (plain code,
no Ray).

`Episode` drives a `MetaAgent` and an `Evaluator` through the decision process that
`rlao.protocol` names:

- `w4s` (default, the authors' process): state and transition in `rlao.w4s`, prompts in
  `rlao.prompts_w4s`, one turn (attempts, repairs on any exception, dropped candidates) in
  `rlao.loop_w4s`;
- `w4s-ray` (the project's earlier process): state and transition in `rlao.mdp`, prompts in
  `rlao.prompts`, one turn here (`_run_turn_rolling`): sample m candidates, extract each
  workflow (no code block -> failed candidate), self-check all on a few items in one evaluator
  call, ask the meta-agent to repair failures (up to `max_repairs` rounds, each one batched
  self-check), evaluate the survivors on validation in ONE concurrent call (or race them),
  reward them against the state before the turn, choose the best, advance.

Common to both: seed workflows are evaluated once (`evaluate_seeds`) and become the examples;
turn seeds derive from (base seed, run id, episode, turn) and candidate i uses seed + i;
`replay(rows)` rebuilds the state from the rows of completed turns, which is how a killed run
resumes exactly (the state after turn t is a pure function of the seed records and rows).

The caller owns I/O: it writes each returned turn's rows (`trajectories.write_turn`) and
handles `BudgetExceeded` and `w4s.TurnFailed`, which propagate out of `run_turn` before any row
of the unfinished turn exists. Nothing here runs workflow code: the evaluator does, in its
sandbox.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from w4s_ray.config import RLAOConfig
from w4s_ray.errors import DataError
from w4s_ray.meta_agent.base import MetaAgent
from w4s_ray.rlao import loop_w4s, mdp, w4s
from w4s_ray.rlao import prompts_w4s as pw
from w4s_ray.rlao.candidates import (
    NO_CODE,
    Cand,
    TaskSpec,
    derive_seed,
    extract,
    seed_record,
    texts,
)
from w4s_ray.rlao.evaluation import EvalRequest, Evaluator
from w4s_ray.rlao.prompts import PromptSpec, build_messages, describe_failure, repair_messages
from w4s_ray.rlao.racing import race
from w4s_ray.rlao.redraw import draw_distinct, known_codes
from w4s_ray.rlao.trajectories import now_utc
from w4s_ray.workflow.normalize import workflow_key

__all__ = ["NO_CODE", "Episode", "TaskSpec", "TurnResult", "derive_seed", "run_identity",
           "seed_record", "turn_metrics"]


def run_identity(cfg, collecting: bool = False) -> dict:
    """The keyword arguments of `Episode` that come from the experiment, not its `rlao` section:
    the base seed of every turn's sampling, the run id written in rows, the executor's name, the
    split candidates are evaluated on (`rlao.collect_split` when collecting; optimize always
    selects on validation) and the validation noise items (w4s only)."""
    split = "train" if collecting and cfg.rlao.collect_split == "train" else "valid"
    return {"base_seed": cfg.seed * 1_000_003 + cfg.meta_agent.seed,
            "run_id": cfg.rlao.run_id or cfg.name, "executor": cfg.executor.model,
            "split": split,
            "extra_items": cfg.eval.extra_random_items if cfg.rlao.protocol == "w4s" else 0}


def turn_number(state: mdp.State | w4s.State) -> int:
    """The number of the turn about to run, as every file and report shows it: the seed
    workflows are turn 0, the meta-agent's turns 1, 2, ... (`state.turn` counts completed turns
    from 0 and keeps deriving the sampling seeds, so numbering does not change what is sampled)."""
    return state.turn + 1


@dataclass
class TurnResult:
    turn: int
    rows: list[dict]
    metrics: dict
    chosen: int | None


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
        split: str = "valid",
        extra_items: int = 0,
        extract: Callable[[str], tuple[str | None, str | None, bool]] = extract,
    ) -> None:
        # Bounds of the settings are the schema's (config.RLAOConfig); nothing to check here.
        self.spec = spec
        self.rlao = rlao
        self.protocol = rlao.protocol
        self.base_seed, self.run_id, self.executor = base_seed, run_id, executor
        self.split, self.extra_items = split, extra_items
        self.episode_id = episode_id
        self.evaluator = evaluator
        self.meta_agent = meta_agent
        self.extract = extract
        self.prompt_spec = PromptSpec(spec.kind, spec.answer_format, rlao.history_window)
        self.w4s_prompt = pw.PromptSpec(spec.kind, spec.answer_format)
        self.state: mdp.State | w4s.State | None = None

    @classmethod
    def for_run(cls, cfg, spec: TaskSpec, episode_id: str, evaluator: Evaluator,
                meta_agent: MetaAgent, *, collecting: bool = False) -> Episode:
        """An episode of the experiment `cfg` (its `rlao` section and `run_identity`)."""
        return cls(spec, cfg.rlao, episode_id, evaluator, meta_agent,
                   **run_identity(cfg, collecting))

    # -- set-up ---------------------------------------------------------------------------
    def evaluate_seeds(self) -> list[dict]:
        """Evaluate the seed workflows where candidates are evaluated (one concurrent call):
        JSON-able records."""
        names = list(self.spec.seed_workflows)
        jobs = [EvalRequest(self.spec.seed_workflows[n], self.spec.name, self.split,
                            tag=f"seed:{n}", extra_items=self.extra_items) for n in names]
        outs = self.evaluator.evaluate(jobs) if jobs else []
        return [seed_record(n, self.spec.seed_workflows[n], o)
                for n, o in zip(names, outs, strict=True)]

    def start(self, seed_records: Sequence[dict]) -> mdp.State | w4s.State:
        examples = [
            mdp.ArchiveEntry(r["name"], r["code"], float(r["val_accuracy"]), r["feedback"])
            for r in seed_records
        ]
        if self.protocol == "w4s":
            self.state = w4s.initial_state(self.spec.name, self.spec.task_description, examples,
                                           self.rlao.history_window)
        else:
            self.state = mdp.initial_state(self.spec.name, self.spec.task_description, examples)
        return self.state

    def messages(self) -> list[dict[str, str]]:
        """The chat the next turn's candidates are sampled on."""
        assert self.state is not None, "start() first"
        if self.protocol == "w4s":
            return pw.build_messages(self.state, self.w4s_prompt)
        return build_messages(self.state, self.prompt_spec)

    def replay(self, rows: Sequence[dict]) -> mdp.State | w4s.State:
        """Advance the state through completed turns' rows (this episode's, any order)."""
        assert self.state is not None, "start() first"
        mine = sorted((r for r in rows if r["episode_id"] == self.episode_id),
                      key=lambda r: (r["turn"], r["candidate"]))
        by_turn: dict[int, list[dict]] = {}
        for r in mine:
            by_turn.setdefault(r["turn"], []).append(r)
        for turn in sorted(by_turn):
            if turn != turn_number(self.state):
                raise DataError(
                    f"episode {self.episode_id}: trajectory rows jump from turn "
                    f"{turn_number(self.state)} to {turn} (a part file is missing)"
                )
            rows_t = by_turn[turn]
            cands = [
                mdp.Candidate(r["candidate"], r["action"], r["code"],
                              r["val_accuracy"] if r["valid"] else None, r["feedback"],
                              r["error"], bool(r["racing_stopped"]))
                for r in rows_t
            ]
            if self.protocol == "w4s":
                if not any(c.valid for c in cands):
                    raise DataError(f"episode {self.episode_id} turn {turn}: no surviving "
                                    "candidate in the rows of a completed w4s turn")
                self.state, pos = w4s.advance(self.state, cands)
            else:
                self.state, pos = mdp.advance(self.state, cands)
            recorded = [i for i, r in enumerate(rows_t) if r["chosen"]]
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
        if self.protocol == "w4s":
            return self._run_turn_w4s()
        return self._run_turn_rolling()

    def _row(self, turn: int, messages: list[dict], c: Cand, mc: mdp.Candidate,
             reward: float | None, chosen: bool, created, trajectory: int | None) -> dict:
        return {
            "run_id": self.run_id, "episode_id": self.episode_id,
            "benchmark": self.spec.name, "turn": turn, "candidate": c.index,
            "prompt_messages": json.dumps(messages, ensure_ascii=False),
            "action": c.action, "code": c.code, "valid": mc.valid, "error": mc.error,
            "val_accuracy": mc.val_accuracy, "reward": None if reward is None else float(reward),
            "chosen": chosen, "repair_count": c.repairs,
            "eval_calls": c.calls, "prompt_tokens": c.prompt_tokens,
            "completion_tokens": c.completion_tokens, "cost_usd": float(c.cost_usd),
            "cached_usd": float(c.cached_usd),
            "meta_agent": self.meta_agent.name, "executor": self.executor, "seed": c.seed,
            "racing_stopped": c.stopped, "created_at": created, "feedback": mc.feedback,
            "protocol": self.protocol, "attempt": c.attempt, "dropped": c.dropped,
            "trajectory": trajectory,
            "reference_best": None,
        }

    def _run_turn_w4s(self) -> TurnResult:
        t0 = time.monotonic()
        state = self.state
        messages, cands = loop_w4s.run_attempts(self)
        mcands = loop_w4s.model_candidates(cands)
        rewards = w4s.rewards(state, mcands, self.rlao)
        self.state, pos = w4s.advance(state, mcands)
        created = now_utc()
        rows = []
        for c, mc, rew in zip(cands, mcands, rewards, strict=True):
            # A dropped candidate that ran keeps its accuracy in the row, for the record.
            row = self._row(turn_number(state), messages, c, mc, rew, pos == c.index, created,
                            state.trajectory)
            if c.dropped and c.outcome is not None:
                row["val_accuracy"] = c.outcome.accuracy
                row["feedback"] = c.outcome.feedback
            row["reference_best"] = state.reference_best
            rows.append(row)
        metrics = turn_metrics(rows, self.state.best_accuracy)
        metrics.update(wall_s=round(time.monotonic() - t0, 3), racing_calls_saved=0.0,
                       attempts=1 + max(c.attempt for c in cands),
                       redrawn=sum(c.redrawn for c in cands))
        return TurnResult(turn_number(state), rows, metrics, pos)

    def _run_turn_rolling(self) -> TurnResult:
        t0 = time.monotonic()
        state, s = self.state, self.rlao
        messages = build_messages(state, self.prompt_spec)
        seed = self.turn_seed(state.turn)
        draw = draw_distinct(self.meta_agent.generate, messages, s.candidates, seed,
                             known_codes(state), s.redraw_repeats, self.extract)
        cands = []
        for i in range(s.candidates):
            text = draw.replies[i]
            c = Cand(i, draw.seeds[i], text, redrawn=draw.seeds[i] != seed + i)
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
        rows = [self._row(turn_number(state), messages, c, mc, rew, pos == c.index, created, None)
                for c, mc, rew in zip(cands, mcands, rewards, strict=True)]
        metrics = turn_metrics(rows, self.state.best_accuracy)
        metrics.update(
            wall_s=round(time.monotonic() - t0, 3),
            racing_calls_saved=round(sum(c.calls_saved for c in cands), 1),
            redrawn=sum(c.redrawn for c in cands),
        )
        return TurnResult(turn_number(state), rows, metrics, pos)

    def _self_check_and_repair(self, cands: list[Cand], turn: int, messages: list[dict]) -> None:
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
                reply = texts(self.meta_agent.generate(msgs, 1, seed=rseed))
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

    def _evaluate(self, cands: list[Cand], turn: int) -> None:
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
    """Per-turn summary for metrics.jsonl and the report (derivable from rows alone). Dropped
    candidates (w4s) count in `candidates` and `dropped`, not in accuracies or rewards."""
    kept = [r for r in rows if not r.get("dropped")]
    accs = [r["val_accuracy"] for r in kept if r["valid"]]
    # Racing-stopped candidates hold partial-slice means; only full evaluations count as best.
    full = [r["val_accuracy"] for r in kept if r["valid"] and not r["racing_stopped"]]
    chosen = next((r for r in rows if r["chosen"]), None)
    rewards = [r["reward"] for r in kept if r.get("reward") is not None]
    return {
        "episode_id": rows[0]["episode_id"], "benchmark": rows[0]["benchmark"],
        "turn": rows[0]["turn"], "candidates": len(rows), "valid": len(accs),
        "dropped": len(rows) - len(kept),
        "best_val_accuracy": max(full) if full else None,
        "mean_val_accuracy": sum(accs) / len(accs) if accs else None,
        "chosen": chosen["candidate"] if chosen else None,
        "best_so_far": best_so_far,
        "mean_reward": sum(rewards) / len(rewards) if rewards else None,
        # different programs among the candidates' workflows (code normalised)
        "distinct": len({workflow_key(r["code"]) for r in rows if r.get("code")}),
        "repairs": sum(r["repair_count"] for r in rows),
        "racing_stopped": sum(bool(r["racing_stopped"]) for r in rows),
        "calls": sum(r["eval_calls"] for r in rows),
        "cost_usd": sum(r["cost_usd"] for r in rows),
        # would-have-cost of the cache hits (null in rows written before the column existed)
        "cached_usd": sum(r.get("cached_usd") or 0.0 for r in rows),
    }
