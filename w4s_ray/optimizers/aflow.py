"""AFlow (Zhang et al. 2025, ICLR) as a plain search loop over workflow graphs (no Ray, no I/O).

Follows `Optimizer._optimize_graph` of FoundationAgents/AFlow (`scripts/optimizer.py`) and its
utilities (`optimizer_utils/data_utils.py`, `convergence_utils.py`, `experience_utils.py`):

1. Round 1 is the initial graph (one Custom call; CustomCodeGenerate on code), evaluated
   `validation_rounds` times on validation; its score is the mean of the runs.
2. Each further round, until `max_rounds` optimisation rounds are done or convergence:
   - selection: the top `sample` rounds by score; a parent is drawn from them with AFlow's
     mixed distribution P = λ·uniform + (1-λ)·softmax(α·100·score), λ=0.3, α=0.2
     (`selection_probabilities`);
   - expansion: the optimizer model gets the parent's graph, prompts and score, the experience
     of modifications already tried from that parent (and whether they improved), the
     operator descriptions and the parent's validation failures, and answers with one
     modification (<modification>, <graph>, <prompt>);
   - a reply is rejected and the round re-drawn (selection included, as in AFlow) when it has
     no graph, repeats a modification already tried from that parent, fails the static checks
     (`aflow_graph.check_candidate`), or fails a dry run on one validation item; after
     `max_generation_retries` rejections the round is skipped (AFlow skips it the same way);
   - evaluation: `validation_rounds` runs with different sample seeds, score = their mean.
3. Convergence (`check_convergence`, AFlow's `check_convergence(top_k=3)` with its defaults
   z=0 and 5 consecutive rounds): the mean of the top-k round scores (top-k over all rounds so
   far, recomputed after each round) has not moved by more than z standard errors for that
   many consecutive rounds.

State is a list of JSON-able records, one per round ("round", or "skipped"); `state_after`
rebuilds rounds, experience and convergence from them, so a killed run resumes at the first
round without a record. Seeds of selection draws and optimizer calls derive from the run's
base seed and the round, so the resumed run asks exactly what the uninterrupted run asked.
`BudgetExceeded` from the evaluator propagates before the unfinished round has a record; an
optimizer-model error stops the run (resume later). Nothing here runs workflow code.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from w4s_ray.errors import ConfigError, DataError
from w4s_ray.meta_agent.base import MetaAgent
from w4s_ray.optimizers import aflow_graph as G
from w4s_ray.optimizers.aflow_prompts import format_experience, optimize_prompt
from w4s_ray.optimizers.base import (
    Evaluate,
    clip,
    derive_seed,
    reply_text,
    usage_delta,
    usage_snapshot,
)

MAX_LOG_CHARS = 4000


@dataclass(frozen=True)
class AflowSettings:
    max_rounds: int = 20              # optimisation rounds after round 1 (AFlow `max_rounds`)
    validation_rounds: int = 5        # evaluations per candidate, averaged (AFlow)
    sample: int = 4                   # top rounds a parent is drawn from (AFlow `--sample`)
    alpha: float = 0.2                # AFlow DataUtils.DEFAULT_ALPHA
    lambda_: float = 0.3              # AFlow DataUtils.DEFAULT_LAMBDA
    check_convergence: bool = True
    convergence_top_k: int = 3
    convergence_z: float = 0.0
    convergence_rounds: int = 5
    max_generation_retries: int = 20  # AFlow `max_generation_retries`
    dry_run_items: int = 1            # AFlow dry-runs a new graph on one item
    base_seed: int = 0
    run_id: str = "aflow"
    valid_limit: int | None = None    # evaluate on the first N validation items (None: all)

    def __post_init__(self) -> None:
        for key, value, low in (("max_rounds", self.max_rounds, 0),
                                ("validation_rounds", self.validation_rounds, 1),
                                ("sample", self.sample, 1),
                                ("convergence_top_k", self.convergence_top_k, 1),
                                ("convergence_rounds", self.convergence_rounds, 1),
                                ("max_generation_retries", self.max_generation_retries, 1),
                                ("dry_run_items", self.dry_run_items, 0)):
            if value < low:
                raise ConfigError(f"aflow.{key} must be >= {low}, got {value}")
        if not 0.0 <= self.lambda_ <= 1.0:
            raise ConfigError(f"aflow.lambda must be in [0, 1], got {self.lambda_}")
        if self.convergence_z < 0:
            raise ConfigError(f"aflow.convergence_z must be >= 0, got {self.convergence_z}")


@dataclass(frozen=True)
class AflowTask:
    benchmark: str
    kind: str
    answer_format: str

    @classmethod
    def from_benchmark(cls, bm) -> AflowTask:
        if bm.kind not in G.FAMILY_OPERATORS:
            raise ConfigError(f"aflow: no operator set for benchmark kind {bm.kind!r}")
        return cls(bm.name, bm.kind, bm.answer_format)


@dataclass
class AflowState:
    rounds: list[dict] = field(default_factory=list)  # "round" records, by round number
    skipped: list[int] = field(default_factory=list)
    next_round: int = 1
    converged: bool = False
    convergence: tuple[int, int] | None = None  # (first, last) index of the stable stretch

    def round(self, number: int) -> dict:
        return next(r for r in self.rounds if r["round"] == number)

    def tried_from(self, parent: int) -> list[dict]:
        """Modifications already expanded from `parent`, with their scores (the experience)."""
        return [{"round": r["round"], "modification": r["modification"], "score": r["score"]}
                for r in self.rounds if r.get("parent") == parent]


# -- selection, experience, convergence (pure functions) ---------------------------------------

def selection_probabilities(scores: Sequence[float], alpha: float = 0.2,
                            lambda_: float = 0.3) -> np.ndarray:
    """AFlow's mixed distribution over candidates with `scores` in [0, 1] (sorted or not):
    lambda * uniform + (1 - lambda) * softmax(alpha * 100 * score)."""
    s = np.asarray(scores, dtype=np.float64) * 100.0
    if s.size == 0:
        raise ValueError("no candidates to select from")
    uniform = np.full(s.size, 1.0 / s.size)
    weights = np.exp(alpha * (s - s.max()))
    mixed = lambda_ * uniform + (1.0 - lambda_) * weights / weights.sum()
    return mixed / mixed.sum()


def top_rounds(rounds: Sequence[dict], sample: int) -> list[dict]:
    """The `sample` best rounds by score (earlier round first on ties)."""
    return sorted(rounds, key=lambda r: (-r["score"], r["round"]))[:sample]


def select_parent(rounds: Sequence[dict], settings: AflowSettings,
                  rng: np.random.Generator) -> tuple[dict, dict]:
    top = top_rounds(rounds, settings.sample)
    probs = selection_probabilities([r["score"] for r in top], settings.alpha,
                                    settings.lambda_)
    index = int(rng.choice(len(top), p=probs))
    info = {"candidates": [[r["round"], r["score"]] for r in top],
            "probabilities": [float(p) for p in probs], "chosen": top[index]["round"]}
    return top[index], info


def check_convergence(round_scores: Sequence[Sequence[float]], top_k: int = 3, z: float = 0.0,
                      consecutive: int = 5) -> tuple[bool, int | None, int | None]:
    """AFlow's stop test over per-round score lists (in round order): after each round, Y =
    mean of the top-k round means so far, sigma_Y = sqrt(sum of their variances) / k; a round
    is stable when |Y - Y_prev| <= z * sqrt(sigma_Y^2 + sigma_Yprev^2). Converged after
    `consecutive` stable rounds in a row. Returns (converged, first, last) (0-based)."""
    means = [float(np.mean(s)) for s in round_scores]
    stds = [float(np.std(s)) for s in round_scores]
    if len(means) < top_k + 1:
        return False, None, None
    count, prev_y, prev_sigma = 0, None, None
    for i in range(len(means)):
        top = np.argsort(means[: i + 1], kind="stable")[::-1][:top_k]
        y = float(np.mean([means[j] for j in top]))
        sigma = float(np.sqrt(np.sum([stds[j] ** 2 for j in top]) / top_k ** 2))
        if prev_y is not None:
            if abs(y - prev_y) <= z * np.sqrt(sigma ** 2 + prev_sigma ** 2):
                count += 1
                if count >= consecutive:
                    return True, i - consecutive + 1, i
            else:
                count = 0
        prev_y, prev_sigma = y, sigma
    return False, None, None


def state_after(records: Sequence[dict], settings: AflowSettings | None = None) -> AflowState:
    """The search state after `records` (in the order they were produced)."""
    settings = settings or AflowSettings()
    state = AflowState()
    for r in records:
        kind, number = r.get("type"), int(r.get("round", -1))
        if kind not in ("round", "skipped"):
            raise DataError(f"aflow: unknown record type {kind!r}")
        if number != state.next_round:
            raise DataError(f"aflow: round records jump from {state.next_round} to {number} "
                            "(a record is missing)")
        if number == 1 and (kind != "round" or r.get("parent") is not None):
            raise DataError("aflow: round 1 must be the evaluated initial graph")
        if kind == "round":
            state.rounds.append(r)
        else:
            state.skipped.append(number)
        state.next_round = number + 1
    conv, first, last = check_convergence([r["scores"] for r in state.rounds],
                                          settings.convergence_top_k, settings.convergence_z,
                                          settings.convergence_rounds)
    state.converged, state.convergence = conv, (first, last) if conv else None
    return state


def best_round(state: AflowState) -> dict:
    """The round with the highest mean validation score (the earliest on ties)."""
    if not state.rounds:
        raise DataError("aflow: no evaluated round")
    return top_rounds(state.rounds, 1)[0]


def parse_reply(text: str) -> tuple[str, str, str]:
    """(modification, graph, prompt section) from the optimizer's reply; ValueError if no graph."""
    def tag(name: str) -> str | None:
        found = re.findall(rf"<{name}>(.*?)</{name}>", text or "", re.DOTALL)
        return found[-1].strip() if found else None

    graph = tag("graph")
    if not graph:
        raise ValueError("the reply has no <graph>...</graph>")
    return (tag("modification") or "").strip(), graph, tag("prompt") or ""


def _same(a: str, b: str) -> bool:
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


# -- the loop -----------------------------------------------------------------------------------

class AflowSearch:
    def __init__(self, task: AflowTask, settings: AflowSettings, meta_agent: MetaAgent,
                 evaluate: Evaluate) -> None:
        self.task = task
        self.settings = settings
        self.meta = meta_agent
        self.evaluate = evaluate

    def _seed(self, *parts: object) -> int:
        return derive_seed(self.settings.base_seed, self.settings.run_id, "aflow", *parts)

    def _evaluate_rounds(self, code: str) -> list:
        v = self.settings.validation_rounds
        return self.evaluate([code] * v, self.task.benchmark, "valid", seeds=list(range(v)),
                             limit=self.settings.valid_limit)

    def _round_record(self, number: int, parent: int | None, modification: str,
                      cand: G.Candidate, code: str, outs: list, extra: dict) -> dict:
        scores = [float(o.accuracy) if o.accuracy is not None else 0.0 for o in outs]
        return {
            "type": "round", "round": number, "parent": parent, "modification": modification,
            "graph": cand.graph, "prompts": dict(cand.prompts), "code": code,
            "scores": scores, "score": float(np.mean(scores)),
            "runs": [o.to_dict() for o in outs],
            "log": clip(next((o.feedback for o in outs if o.feedback), ""), MAX_LOG_CHARS),
            **extra,
        }

    def initial_round(self) -> dict:
        t0 = time.monotonic()
        cand = G.initial_candidate(self.task.kind, self.task.answer_format)
        code = G.render_workflow(cand, self.task.kind, self.task.answer_format)
        outs = self._evaluate_rounds(code)
        return self._round_record(1, None, "initial graph", cand, code, outs, {
            "attempts": 0, "rejections": [], "selection": None,
            "meta_usage": {}, "eval_cost_usd": sum(o.cost_usd for o in outs),
            "wall_s": round(time.monotonic() - t0, 3)})

    def prompt_for(self, state: AflowState, parent: dict) -> str:
        t = self.task
        return optimize_prompt(
            question_type=G.QUESTION_TYPE[t.kind], kind=t.kind, answer_format=t.answer_format,
            experience=format_experience(parent["round"], parent["score"],
                                         state.tried_from(parent["round"])),
            score=parent["score"], graph=parent["graph"],
            prompts=G.prompt_source(parent["prompts"]),
            operators=G.operator_description(t.kind), log=parent["log"] or "(no failures)")

    def run_round(self, state: AflowState) -> dict:
        """One optimisation round: select, expand (with retries), evaluate. Returns its record."""
        number, s = state.next_round, self.settings
        t0, usage0 = time.monotonic(), usage_snapshot(self.meta)
        rejections: list[dict] = []
        eval_cost = 0.0
        for attempt in range(s.max_generation_retries):
            rng = np.random.default_rng(self._seed(number, "select", attempt))
            parent, selection = select_parent(state.rounds, s, rng)
            seed = self._seed(number, "expand", attempt)
            reply = reply_text(self.meta, [{"role": "user",
                                            "content": self.prompt_for(state, parent)}], seed)

            def reject(reason: str, attempt=attempt, parent=parent, seed=seed,
                       reply=reply) -> None:
                rejections.append({"attempt": attempt, "parent": parent["round"],
                                   "seed": seed, "reason": reason, "reply": reply})
            try:
                modification, graph, prompt_src = parse_reply(reply)
            except ValueError as exc:
                reject(str(exc))
                continue
            if any(_same(modification, t["modification"])
                   for t in state.tried_from(parent["round"])):
                reject(f"duplicate modification of round {parent['round']}: {modification!r}")
                continue
            try:
                cand = G.check_candidate(graph, prompt_src, self.task.kind)
                code = G.render_workflow(cand, self.task.kind, self.task.answer_format)
            except (G.CandidateError, ValueError) as exc:
                reject(f"invalid candidate: {exc}")
                continue
            if s.dry_run_items:
                dry = self.evaluate([code], self.task.benchmark, "valid", seeds=[0],
                                    limit=s.dry_run_items)[0]
                eval_cost += dry.cost_usd
                if not dry.ran_cleanly:
                    reject("dry run failed: " + clip(dry.error or dry.first_failure or
                                                     "no result", 1500))
                    continue
            outs = self._evaluate_rounds(code)
            eval_cost += sum(o.cost_usd for o in outs)
            return self._round_record(number, parent["round"], modification or "(unnamed)",
                                      cand, code, outs, {
                "attempts": attempt + 1, "rejections": rejections, "selection": selection,
                "seed": seed, "reply": reply,
                "meta_usage": usage_delta(usage0, usage_snapshot(self.meta)),
                "eval_cost_usd": eval_cost, "wall_s": round(time.monotonic() - t0, 3)})
        return {"type": "skipped", "round": number, "attempts": s.max_generation_retries,
                "rejections": rejections,
                "meta_usage": usage_delta(usage0, usage_snapshot(self.meta)),
                "eval_cost_usd": eval_cost, "wall_s": round(time.monotonic() - t0, 3)}

    def finished(self, state: AflowState) -> bool:
        return (state.next_round > self.settings.max_rounds + 1
                or (self.settings.check_convergence and state.converged))

    def run(self, records: Sequence[dict], on_record: Callable[[dict], None]) -> AflowState:
        """Resume from `records` and search until done; every new record goes to `on_record`
        (the caller persists it) before the next round starts."""
        done = list(records)
        state = state_after(done, self.settings)
        while not self.finished(state):
            rec = self.initial_round() if state.next_round == 1 else self.run_round(state)
            on_record(rec)
            done.append(rec)
            state = state_after(done, self.settings)
        return state
