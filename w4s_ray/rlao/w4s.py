"""The authors' decision process (`rlao.protocol: w4s`, the default) as plain data and pure
functions (no Ray, no I/O). Source: fannie1208/W4S `src/main.py` (`SystemOptimizer`) and
`src/agent/meta_agent.py` (`improve_system`); docs/FIDELITY.md cites the lines.

- **Archive**: the example workflows (the benchmark's seeds, with VALIDATION accuracy and
  feedback) and every generated workflow chosen so far, in order.
- **Trajectory**: every `rlao.history_window` turns (upstream `context_window`, 2) the chat is
  reset to a system message and one user message over the archive's examples plus the LAST
  generated workflow (only that last entry shows its feedback). Within a trajectory the chat
  grows by the chosen reply and its observation after each turn. Trajectories are chained for
  `rlao.turns` turns.
- **Reference best**: at each reset, the best validation accuracy of that archive (examples +
  last generated); it stays FIXED for the whole trajectory (upstream updates it in a line that
  is commented out). Rewards and observations are measured against it.
- **Rewards** (`rewards.py`): 1 above the reference best; 0.5 above the last archive entry (the
  previous chosen workflow, or the last example before any was generated) or, while nothing
  has been generated, above the first example; 0 otherwise; -0.1 below 0.3. Continuous:
  (acc - best) / best, and 1 when best is 0.
- **Candidates**: m per turn; one that never runs without an exception (after its repairs) or
  scores <= `rlao.drop_accuracy` (0.05) is DROPPED: no reward, never chosen, never trained on
  (its row is still logged, `dropped = true`). A turn whose candidates are all dropped is
  sampled again, up to `rlao.max_turn_attempts` (3) times; then the episode stops
  (`TurnFailed`).
- **Transition**: the surviving candidate with the highest validation accuracy (ties: the first)
  is appended to the archive and to the chat.
- **Final choice** (optimize): the archive entry with the best VALIDATION accuracy (upstream
  selects by test accuracy, a leak this project does not reproduce).

Nothing here holds a test-split number that a prompt could show.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from w4s_ray.errors import W4SError
from w4s_ray.rlao.mdp import ArchiveEntry, Candidate
from w4s_ray.rlao.rewards import RewardContext, reward


class TurnFailed(W4SError):
    """Every candidate of a turn was dropped in every attempt (upstream stops the run)."""


@dataclass(frozen=True)
class Step:
    """One completed turn of the current trajectory: the chosen (spliced) reply and workflow."""

    turn: int
    action: str
    entry: ArchiveEntry
    reference_best: float


@dataclass(frozen=True)
class State:
    benchmark: str
    task_description: str
    examples: tuple[ArchiveEntry, ...]
    trajectory_turns: int = 2
    generated: tuple[ArchiveEntry, ...] = ()
    # The current trajectory: its archive (as shown in its first user message), the frozen
    # reference best, and the turns completed in it.
    archive: tuple[ArchiveEntry, ...] = ()
    reference_best: float = 0.0
    steps: tuple[Step, ...] = field(default_factory=tuple)
    trajectory: int = 0
    turn: int = 0

    @property
    def best(self) -> ArchiveEntry | None:
        """The final choice: the best VALIDATION accuracy over examples and generated (first
        wins ties)."""
        best = None
        for entry in (*self.examples, *self.generated):
            if best is None or entry.val_accuracy > best.val_accuracy:
                best = entry
        return best

    @property
    def best_accuracy(self) -> float:
        return self.best.val_accuracy if self.best is not None else 0.0

    @property
    def last_entry(self) -> ArchiveEntry | None:
        """Upstream's `eval_history[-1]`: the last generated workflow, else the last example."""
        if self.generated:
            return self.generated[-1]
        return self.examples[-1] if self.examples else None


def reset(state: State) -> State:
    """A new trajectory: archive = examples + the last generated workflow; best frozen."""
    archive = state.examples + state.generated[-1:]
    ref = max((e.val_accuracy for e in archive), default=0.0)
    return replace(state, archive=archive, reference_best=ref, steps=())


def initial_state(benchmark: str, task_description: str, examples: Sequence[ArchiveEntry],
                  trajectory_turns: int = 2) -> State:
    return reset(State(benchmark, task_description, tuple(examples),
                       trajectory_turns=max(1, trajectory_turns)))


def reward_context(state: State) -> RewardContext:
    """The reference points of the turn about to run (see module docstring)."""
    last = state.last_entry
    first = state.examples[0].val_accuracy if state.examples and not state.generated else None
    return RewardContext(best=state.reference_best,
                         previous=last.val_accuracy if last is not None else 0.0,
                         first_example=first, zero_best_reward=1.0)


def rewards(state: State, candidates: Sequence[Candidate], rlao) -> list[float | None]:
    """Rewards of the surviving candidates; None for dropped ones (not valid)."""
    ctx = reward_context(state)
    return [reward(c.val_accuracy, ctx, rlao) if c.valid else None for c in candidates]


def choose(candidates: Sequence[Candidate]) -> int | None:
    """Position of the surviving candidate with the highest accuracy (ties: the first)."""
    best_pos = None
    for pos, cand in enumerate(candidates):
        if not cand.valid:
            continue
        if best_pos is None or cand.val_accuracy > candidates[best_pos].val_accuracy:
            best_pos = pos
    return best_pos


def advance(state: State, candidates: Sequence[Candidate]) -> tuple[State, int]:
    """The transition after a turn with at least one survivor: (next state, chosen position).
    Raises `TurnFailed` when none survived (the caller re-samples first)."""
    pos = choose(candidates)
    if pos is None:
        raise TurnFailed(f"{state.benchmark}: turn {state.turn + 1}: every candidate was dropped")
    cand = candidates[pos]
    entry = ArchiveEntry(name=f"turn {state.turn + 1} candidate {cand.index}", code=cand.code or "",
                         val_accuracy=float(cand.val_accuracy), feedback=cand.feedback or "",
                         turn=state.turn + 1, candidate=cand.index)
    step = Step(state.turn, cand.action, entry, state.reference_best)
    nxt = replace(state, generated=state.generated + (entry,), steps=state.steps + (step,),
                  turn=state.turn + 1)
    if nxt.turn % nxt.trajectory_turns == 0:
        nxt = replace(reset(nxt), trajectory=nxt.trajectory + 1)
    return nxt, pos
