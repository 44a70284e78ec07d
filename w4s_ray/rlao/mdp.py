"""The w4s-ray decision process (`rlao.protocol: w4s-ray`) as plain data and pure functions
(no Ray, no I/O). The authors' process (the default, `rlao.protocol: w4s`) is `rlao.w4s`; the
entry types (`ArchiveEntry`, `Candidate`) are shared.

State: the task (benchmark name, description), the example workflows (the benchmark's seed
workflows with their VALIDATION accuracy and feedback), and the history of chosen steps
(action text + the evaluated workflow). The prompt shows the last `history_window` steps.
Action: one meta-agent answer (analysis + one python block). Transition: the m candidates of a
turn are evaluated; the best valid one (highest validation accuracy, ties: lowest index) is
chosen and appended to the history.

Turns in which every candidate failed do not advance the state: the history, the best and the
previous accuracy stay as they were; only the turn counter moves on and `last_failure` records
why the first candidate failed, so the next prompt can say so (see `prompts.build_messages`).
The next successful turn clears it.

Nothing here holds a test-split number that a prompt could show: `ArchiveEntry.test_accuracy`
exists for reports only and `prompts` never renders it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from w4s_ray.config import RLAOConfig
from w4s_ray.rlao.rewards import RewardContext, reward


@dataclass(frozen=True)
class ArchiveEntry:
    """One evaluated workflow as the archive (and the prompt) knows it."""

    name: str
    code: str
    val_accuracy: float
    feedback: str
    turn: int | None = None  # None for a seed (example) workflow
    candidate: int | None = None
    # Report-only: the prompt renderer never reads it (tested).
    test_accuracy: float | None = None


@dataclass(frozen=True)
class Step:
    """One completed turn: the chosen action and what it scored against the best before it."""

    turn: int
    action: str
    entry: ArchiveEntry
    best_before: float


@dataclass(frozen=True)
class Candidate:
    """The outcome of one candidate of a turn (after extraction, self-check and evaluation)."""

    index: int
    action: str
    code: str | None = None
    val_accuracy: float | None = None
    feedback: str | None = None
    error: str | None = None
    # Stopped by racing: its accuracy is a partial-slice mean, so it is rewarded but never chosen.
    stopped: bool = False

    @property
    def valid(self) -> bool:
        return self.code is not None and self.val_accuracy is not None and self.error is None


@dataclass(frozen=True)
class State:
    benchmark: str
    task_description: str
    examples: tuple[ArchiveEntry, ...]
    best: ArchiveEntry | None
    previous_accuracy: float
    history: tuple[Step, ...] = field(default_factory=tuple)
    turn: int = 0
    last_failure: str | None = None

    @property
    def best_accuracy(self) -> float:
        return self.best.val_accuracy if self.best is not None else 0.0

    def window(self, k: int) -> tuple[Step, ...]:
        return self.history[-k:] if k > 0 else ()


def initial_state(
    benchmark: str, task_description: str, examples: Sequence[ArchiveEntry]
) -> State:
    """Turn 0: best = the best example; 'previous' = the FIRST example (the w4s-ray rule;
    upstream's first turn also credits beating the LAST example, see rlao.w4s)."""
    examples = tuple(examples)
    best = None
    for entry in examples:
        if best is None or entry.val_accuracy > best.val_accuracy:
            best = entry
    previous = examples[0].val_accuracy if examples else 0.0
    return State(benchmark, task_description, examples, best, previous)


def choose(candidates: Sequence[Candidate]) -> int | None:
    """Position of the best valid, fully evaluated candidate; ties go to the lowest index."""
    best_pos = None
    for pos, cand in enumerate(candidates):
        if not cand.valid or cand.stopped:
            continue
        if best_pos is None or cand.val_accuracy > candidates[best_pos].val_accuracy:
            best_pos = pos
    return best_pos


def reward_context(state: State) -> RewardContext:
    """w4s-ray reference points: the best so far and the previous chosen (first example)."""
    return RewardContext(best=state.best_accuracy, previous=state.previous_accuracy)


def rewards(state: State, candidates: Sequence[Candidate], rlao: RLAOConfig) -> list[float]:
    """Rewards of a turn's candidates, all measured against the state BEFORE the turn."""
    ctx = reward_context(state)
    return [reward(c.val_accuracy if c.valid else None, ctx, rlao) for c in candidates]


def failure_reason(candidates: Sequence[Candidate]) -> str:
    for cand in candidates:
        if cand.error:
            return cand.error
    return "no candidate produced a valid workflow"


def advance(state: State, candidates: Sequence[Candidate]) -> tuple[State, int | None]:
    """The transition: (next state, position of the chosen candidate or None)."""
    pos = choose(candidates)
    if pos is None:
        return replace(state, turn=state.turn + 1, last_failure=failure_reason(candidates)), None
    cand = candidates[pos]
    entry = ArchiveEntry(
        name=f"turn {state.turn + 1} candidate {cand.index}",
        code=cand.code or "",
        val_accuracy=float(cand.val_accuracy),
        feedback=cand.feedback or "",
        turn=state.turn + 1,
        candidate=cand.index,
    )
    step = Step(state.turn, cand.action, entry, state.best_accuracy)
    best = state.best
    # Strictly greater: an equal later workflow does not replace an earlier best.
    if best is None or entry.val_accuracy > best.val_accuracy:
        best = entry
    nxt = replace(
        state,
        history=state.history + (step,),
        best=best,
        previous_accuracy=entry.val_accuracy,
        turn=state.turn + 1,
        last_failure=None,
    )
    return nxt, pos
