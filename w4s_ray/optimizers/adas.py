"""ADAS (Meta Agent Search, Hu et al. 2024) as a plain search loop (no Ray, no I/O).

Follows `search()` of ShengranHu/ADAS (`_mmlu/search.py`, the same in `_drop`, `_mgsm`):

1. The initial archive (here: the hand-designed baselines of `w4s_ray.baselines`, rendered for
   the benchmark) is evaluated on validation; each entry gets ADAS's fitness string (median and
   95% bootstrap CI of accuracy, `fitness.py`).
2. Each generation: the meta agent sees the whole archive and proposes a workflow as JSON
   (thought, name, code); then two reflexion rounds in the same chat revise it (the first
   shows the previous archive entry from the second generation on).
3. The proposal is evaluated on validation; an evaluation error, or accuracy below 1% (ADAS's
   "All 0 accuracy"), goes back to the meta agent with a request to debug, and the repaired
   code is evaluated again, `debug_max` evaluations in all. A proposal that never evaluates
   cleanly is dropped (the generation is spent, as in ADAS, whose `n -= 1` inside a `for`
   loop has no effect); otherwise it joins the archive with its fitness.

Deviations, all documented in docs/BASELINES.md: workflows are `solver(agent, task)` on this
project's agent API; replies are parsed leniently (a JSON object, fenced or not, else a python
block defining `solver`); no meta call is made after the last failed evaluation (its reply
could never be used); a meta-model error stops the run (resume later) instead of silently
spending a generation; every seed (meta calls, bootstrap) is derived from the run's base seed.

State is a list of JSON-able records: `initialize` returns one "initial" record per archive
entry not yet evaluated, `run_generation` one "generation" record. `state_after(task,
records)` rebuilds the archive from them, so a killed run resumes at the first generation
without a record and asks the meta agent exactly what the uninterrupted run would have
(seeded replies and a seeded executor cache reproduce it). `BudgetExceeded` from the evaluator
propagates before a record of the unfinished step exists. Nothing here runs workflow code.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from w4s_ray.errors import DataError
from w4s_ray.meta_agent.base import MetaAgent
from w4s_ray.optimizers import adas_prompts as P
from w4s_ray.optimizers.base import (
    Evaluate,
    Outcome,
    clip,
    derive_seed,
    reply_text,
    usage_delta,
    usage_snapshot,
)
from w4s_ray.optimizers.fitness import SAMPLES, bootstrap_fitness

MAX_ERROR_CHARS = 3000


@dataclass(frozen=True)
class AdasSettings:
    generations: int = 30          # ADAS `n_generation`
    debug_max: int = 3             # evaluations per proposal, repairs included (ADAS)
    min_accuracy: float = 0.01     # below it a proposal is repaired like an error (ADAS)
    reflexion_rounds: int = 2      # ADAS: Reflexion_prompt_1 then Reflexion_prompt_2
    bootstrap_samples: int = SAMPLES
    base_seed: int = 0
    run_id: str = "adas"
    valid_limit: int | None = None  # evaluate on the first N validation items (None: all)

    def __post_init__(self) -> None:
        from w4s_ray.errors import ConfigError

        for key, value, low in (("generations", self.generations, 0),
                                ("debug_max", self.debug_max, 1),
                                ("reflexion_rounds", self.reflexion_rounds, 0),
                                ("bootstrap_samples", self.bootstrap_samples, 1)):
            if value < low:
                raise ConfigError(f"adas.{key} must be >= {low}, got {value}")
        if self.reflexion_rounds > 2:
            raise ConfigError("adas.reflexion_rounds must be 0, 1 or 2 (ADAS has two prompts)")


@dataclass(frozen=True)
class AdasTask:
    benchmark: str
    kind: str
    task_description: str
    answer_format: str
    initial: tuple[dict, ...]  # {"name", "thought", "code"}, the initial archive in order

    @classmethod
    def from_benchmark(cls, bm, names: Sequence[str] | None = None) -> AdasTask:
        """The task with the hand-designed baselines as the initial archive."""
        from w4s_ray.baselines import BASELINES, baseline_workflows

        initial = tuple(
            {"name": BASELINES[n].title,
             "thought": f"{BASELINES[n].title}: {BASELINES[n].description} "
                        f"({BASELINES[n].settings}).",
             "code": code}
            for n, code in baseline_workflows(bm, list(names) if names else None).items())
        return cls(bm.name, bm.kind, bm.task_description, bm.answer_format, initial)


@dataclass
class AdasState:
    n_initial: int
    archive: list[dict] = field(default_factory=list)  # entries with fitness, in order
    evaluated_initial: set[int] = field(default_factory=set)
    next_generation: int = 1
    failed_generations: int = 0

    @property
    def initialized(self) -> bool:
        return self.n_initial == len(self.evaluated_initial)


def state_after(task: AdasTask, records: Sequence[dict]) -> AdasState:
    """The search state after `records` (in the order they were produced)."""
    state = AdasState(n_initial=len(task.initial))
    initial: dict[int, dict] = {}
    for r in records:
        if r.get("type") == "initial":
            i = int(r["index"])
            if not 0 <= i < len(task.initial) or r["name"] != task.initial[i]["name"]:
                raise DataError(f"adas: initial record {i} ({r.get('name')!r}) does not match "
                                "this task's initial archive (another benchmark or baselines?)")
            initial[i] = r
        elif r.get("type") == "generation":
            if len(initial) != len(task.initial):
                raise DataError("adas: a generation record precedes the initial archive")
            g = int(r["generation"])
            if g != state.next_generation:
                raise DataError(f"adas: generation records jump from {state.next_generation} "
                                f"to {g} (a record is missing)")
            if not state.archive:
                state.archive = [_entry(initial[i]) for i in sorted(initial)]
            if r["status"] == "added":
                state.archive.append(_entry(r))
            else:
                state.failed_generations += 1
            state.next_generation = g + 1
        else:
            raise DataError(f"adas: unknown record type {r.get('type')!r}")
    state.evaluated_initial = set(initial)
    if not state.archive and len(initial) == len(task.initial):
        state.archive = [_entry(initial[i]) for i in sorted(initial)]
    return state


def _entry(record: dict) -> dict:
    """The archive entry a record contributes (what the prompt may show, plus accuracy)."""
    sol = record["solution"] if record.get("type") == "generation" else record
    return {"thought": sol["thought"], "name": sol["name"], "code": sol["code"],
            "fitness": record["fitness"], "generation": record["generation"],
            "accuracy": record["accuracy"]}


def best_entry(state: AdasState) -> dict:
    """The archive entry with the highest validation accuracy (the earliest on ties)."""
    if not state.archive:
        raise DataError("adas: the archive is empty")
    return max(enumerate(state.archive), key=lambda p: (p[1]["accuracy"], -p[0]))[1]


# -- replies ------------------------------------------------------------------------------------

_FENCED_JSON = re.compile(r"```(?:json)?\s*\n(\{.*?\})\s*```", re.DOTALL)


def parse_solution(text: str) -> dict:
    """{"thought", "name", "code", ...} from a meta-agent reply; ValueError says why not.

    Accepts a JSON object (bare, fenced, or the outermost {...} of the text) with a string
    "code"; failing that, a python block defining `solver` (thought = the text before it).
    """
    from w4s_ray.workflow.errors import WorkflowError
    from w4s_ray.workflow.extract import extract_workflow

    text = text or ""
    candidates = [text.strip()] + _FENCED_JSON.findall(text)
    if "{" in text and "}" in text:
        candidates.append(text[text.index("{"): text.rindex("}") + 1])
    for cand in candidates:
        try:
            obj = json.loads(cand)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict) and isinstance(obj.get("code"), str) and obj["code"].strip():
            out = {k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
                   for k, v in obj.items()}
            out.setdefault("thought", "")
            out["name"] = str(out.get("name") or "unnamed").strip()[:200] or "unnamed"
            return out
    try:
        code = extract_workflow(text)
    except WorkflowError as exc:
        raise ValueError(f"no JSON object with a \"code\" string and no workflow block ({exc})") \
            from None
    before = text.split("```", 1)[0].strip()
    return {"thought": before, "name": "unnamed", "code": code}


def workflow_code(solution: dict) -> str:
    """The solver source of a solution; WorkflowError (one line) if it is not a workflow."""
    from w4s_ray.workflow.extract import check_workflow, extract_workflow

    code = solution["code"]
    return extract_workflow(code) if "```" in code else check_workflow(code)


# -- the loop -----------------------------------------------------------------------------------

class AdasSearch:
    def __init__(self, task: AdasTask, settings: AdasSettings, meta_agent: MetaAgent,
                 evaluate: Evaluate) -> None:
        self.task = task
        self.settings = settings
        self.meta = meta_agent
        self.evaluate = evaluate

    def _seed(self, *parts: object) -> int:
        return derive_seed(self.settings.base_seed, self.settings.run_id, "adas", *parts)

    def _fitness(self, out: Outcome, *key: object) -> dict:
        fit = bootstrap_fitness(out.scores, self._seed("fitness", *key),
                                samples=self.settings.bootstrap_samples)
        return {"fitness": fit.text, "fitness_stats": fit.to_dict(), "accuracy": fit.mean}

    def _eval(self, codes: list[str]) -> list[Outcome]:
        return self.evaluate(codes, self.task.benchmark, "valid",
                             seeds=[0] * len(codes), limit=self.settings.valid_limit)

    def initialize(self, state: AdasState) -> list[dict]:
        """Evaluate the initial archive entries not yet evaluated (one concurrent call)."""
        todo = [i for i in range(len(self.task.initial)) if i not in state.evaluated_initial]
        if not todo:
            return []
        outs = self._eval([self.task.initial[i]["code"] for i in todo])
        records = []
        for i, out in zip(todo, outs, strict=True):
            e = self.task.initial[i]
            records.append({
                "type": "initial", "index": i, "generation": "initial", "name": e["name"],
                "thought": e["thought"], "code": e["code"],
                **self._fitness(out, "initial", i), "outcome": out.to_dict(),
            })
        return records

    def messages(self, state: AdasState) -> list[dict[str, str]]:
        prompt = P.proposal_prompt(kind=self.task.kind,
                                   task_description=self.task.task_description,
                                   answer_format=self.task.answer_format, archive=state.archive)
        return [{"role": "system", "content": P.SYSTEM_PROMPT},
                {"role": "user", "content": prompt}]

    def run_generation(self, state: AdasState) -> dict:
        """One generation: propose, reflect twice, evaluate with repairs. Returns its record."""
        assert state.initialized, "initialize() first"
        g, s = state.next_generation, self.settings
        t0, usage0 = time.monotonic(), usage_snapshot(self.meta)
        record: dict = {"type": "generation", "generation": g, "status": "failed",
                        "reason": None, "solution": None, "steps": [], "evaluations": []}
        msgs = self.messages(state)

        def ask(step: str) -> str:
            seed = self._seed(g, step)
            text = reply_text(self.meta, msgs, seed)
            record["steps"].append({"step": step, "seed": seed, "reply": text})
            return text

        def finish() -> dict:
            record["messages"] = msgs
            record["meta_usage"] = usage_delta(usage0, usage_snapshot(self.meta))
            record["eval_cost_usd"] = sum(e["cost_usd"] for e in record["evaluations"])
            record["eval_calls"] = sum(e["calls"] for e in record["evaluations"])
            record["wall_s"] = round(time.monotonic() - t0, 3)
            return record

        previous = state.archive[-1] if g > 1 else None
        follow_ups = [P.reflexion_prompt_1(previous), P.REFLEXION_PROMPT_2][: s.reflexion_rounds]
        reply = ask("propose")
        for k, prompt in enumerate(follow_ups, 1):
            try:
                parse_solution(reply)
            except ValueError as exc:
                record["reason"] = f"unparseable reply at {record['steps'][-1]['step']}: {exc}"
                return finish()
            msgs = msgs + [{"role": "assistant", "content": reply},
                           {"role": "user", "content": prompt}]
            reply = ask(f"reflect{k}")
        try:
            solution = parse_solution(reply)
        except ValueError as exc:
            record["reason"] = f"unparseable reply at {record['steps'][-1]['step']}: {exc}"
            return finish()

        for attempt in range(s.debug_max):
            error, fitness = self._try(solution, record)
            if error is None:
                record.update(status="added", reason=None, **fitness)
                record["solution"] = {k: solution[k] for k in ("thought", "name", "code")}
                return finish()
            record["reason"] = error
            record["last_solution"] = {k: solution.get(k, "") for k in ("thought", "name", "code")}
            if attempt == s.debug_max - 1:
                break
            msgs = msgs + [{"role": "assistant", "content": reply},
                           {"role": "user", "content": P.repair_prompt(error)}]
            reply = ask(f"repair{attempt + 1}")
            try:
                solution = parse_solution(reply)
            except ValueError as exc:
                # Nothing new to evaluate: the next round asks again with this parse error.
                solution = {**solution, "code": "", "_parse_error": str(exc)}
        record["reason"] = f"no clean evaluation after {s.debug_max} attempt(s): " \
                           f"{record['reason']}"
        return finish()

    def _try(self, solution: dict, record: dict) -> tuple[str | None, dict]:
        """Evaluate one proposal: (None, fitness) if it joins the archive, else (the error to
        send back for repair, {})."""
        from w4s_ray.workflow.errors import WorkflowError

        if solution.get("_parse_error"):
            return f"your reply could not be parsed: {solution['_parse_error']}", {}
        try:
            code = workflow_code(solution)
        except WorkflowError as exc:
            return f"the code is not a valid workflow: {exc}", {}
        solution["code"] = code
        out = self._eval([code])[0]
        record["evaluations"].append(out.to_dict())
        if out.error or out.accuracy is None:
            return clip(out.error or "the workflow failed as a whole", MAX_ERROR_CHARS), {}
        if out.accuracy < self.settings.min_accuracy:
            detail = out.first_failure or out.feedback
            return clip(f"All 0 accuracy (validation accuracy {out.accuracy:.3f} < "
                        f"{self.settings.min_accuracy}).\n{detail}", MAX_ERROR_CHARS), {}
        return None, self._fitness(out, "generation", record["generation"])

    def run(self, records: Sequence[dict], on_record: Callable[[dict], None]) -> AdasState:
        """Resume from `records` and search until `settings.generations` are done; every new
        record goes to `on_record` (the caller persists it) before the next step starts."""
        state = state_after(self.task, records)
        done = list(records)
        for rec in self.initialize(state):
            on_record(rec)
            done.append(rec)
        state = state_after(self.task, done)
        while state.next_generation <= self.settings.generations:
            rec = self.run_generation(state)
            on_record(rec)
            done.append(rec)
            state = state_after(self.task, done)
        return state
