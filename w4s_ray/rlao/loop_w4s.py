"""One turn of the authors' decision process (`rlao.protocol: w4s`), driven by an `Episode`
(no Ray). Source: fannie1208/W4S `src/agent/meta_agent.py` `improve_system` and `src/main.py`
`optimize_system`; docs/FIDELITY.md cites the lines.

A turn, attempt by attempt (at most `rlao.max_turn_attempts`, 3):

1. sample m replies on the trajectory's chat (`prompts_w4s.build_messages`); attempt a > 0
   draws with its own derived seed;
2. every candidate gets up to 1 + `rlao.max_repairs` (3) evaluated attempts, in rounds: extract
   the workflow (the last python block defining `solver`), evaluate it on the FULL validation
   split (plus `eval.extra_random_items` noise items when set) in one concurrent evaluator
   call for all candidates of the round. A candidate whose extraction failed, whose workflow
   did not load, or any of whose items raised (anything but a malformed return value, which
   upstream scores 0) is repaired: the meta-agent sees upstream's repair chat (the turn's LAST
   user message, then its own reply and the error with the no-try/except instruction, growing
   with each round) and replies once. Upstream asks for one more repair after the last
   evaluated attempt and never evaluates it; this loop does not ask for it;
3. a candidate that ran cleanly survives unless its accuracy is <= `rlao.drop_accuracy`
   (0.05); the rest are dropped. A survivor's stored action is the ORIGINAL reply with the
   final (possibly repaired) code spliced into its last python block;
4. no survivor: the next attempt samples m new replies; after the last attempt the turn fails
   with `TurnFailed` (upstream stops the run) and no row of it is written.

The survivors are rewarded against the trajectory's frozen reference points
(`w4s.reward_context`), the best one is chosen and appended (`w4s.advance`). Rows are returned
for every candidate of every attempt; dropped ones carry `dropped = true` and a null reward.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from w4s_ray.rlao import w4s
from w4s_ray.rlao.candidates import Cand, derive_seed, extract, texts
from w4s_ray.rlao.evaluation import EvalRequest
from w4s_ray.rlao.mdp import Candidate
from w4s_ray.rlao.prompts_w4s import build_messages, repair_message, splice
from w4s_ray.rlao.redraw import draw_distinct, known_codes

if TYPE_CHECKING:
    from w4s_ray.rlao.loop import Episode

# Item failures that upstream does not raise: a return value without "answer" is scored 0.
_NOT_RAISED = {"bad_return"}


def attempt_seed(ep: Episode, turn: int, attempt: int) -> int:
    """Attempt 0 uses the turn seed (as the w4s-ray loop); later attempts their own."""
    if attempt == 0:
        return ep.turn_seed(turn)
    return derive_seed(ep.base_seed, ep.run_id, ep.episode_id, turn, "attempt", attempt)


def run_attempts(ep: Episode) -> tuple[list[dict], list[Cand]]:
    """Sample and evaluate until some candidate survives (module docstring, steps 1-4).
    Returns the chat the candidates were sampled on and every candidate of every attempt."""
    state, s = ep.state, ep.rlao
    messages = build_messages(state, ep.w4s_prompt)
    every: list[Cand] = []
    for attempt in range(s.max_turn_attempts):
        seed = attempt_seed(ep, state.turn, attempt)
        draw = draw_distinct(ep.meta_agent.generate, messages, s.candidates, seed,
                             known_codes(state) + [c.code for c in every if c.code],
                             s.redraw_repeats, extract)
        cands = [Cand(attempt * s.candidates + i, draw.seeds[i], draw.replies[i],
                      attempt=attempt, redrawn=draw.seeds[i] != seed + i)
                 for i in range(s.candidates)]
        for c in cands:
            c.text = c.action
            c.chat = [messages[-1]]
        _evaluate_with_repairs(ep, cands, state.turn)
        every += cands
        if any(not c.dropped for c in cands):
            return messages, every
    reasons = "; ".join(f"candidate {c.index}: {c.error}" for c in every[:3])
    raise w4s.TurnFailed(
        f"{ep.spec.name} episode {ep.episode_id} turn {state.turn + 1}: all {len(every)} candidates "
        f"of {s.max_turn_attempts} attempt(s) were dropped (no working workflow above "
        f"{s.drop_accuracy} validation accuracy); the run stops here as upstream's does. "
        f"First reasons: {reasons}")


def _evaluate_with_repairs(ep: Episode, cands: list[Cand], turn: int) -> None:
    s = ep.rlao
    pending = list(cands)
    for rnd in range(s.max_repairs + 1):
        for c in pending:
            c.code, c.error, _ = extract(c.text) if c.text else (
                None, "no code: the meta-agent returned no reply", False)
            c.failure = c.error
        ready = [c for c in pending if c.code is not None]
        outs = ep.evaluator.evaluate([
            EvalRequest(c.code, ep.spec.name, ep.split, tag=f"{ep.episode_id}:t{turn}:"
                        f"cand{c.index}" + (f":r{rnd}" if rnd else ""),
                        extra_items=ep.extra_items) for c in ready]) if ready else []
        for c, out in zip(ready, outs, strict=True):
            c.add_cost(out)
            failure = out.first_failure if out.error else out.first_exception
            if failure is not None:
                c.failure, c.error = failure, f"evaluation raised: {failure.get('error')}"
                continue
            c.outcome, c.failure, c.error = out, None, None
        done = [c for c in pending if c.outcome is not None]
        for c in done:
            if c.outcome.accuracy <= s.drop_accuracy:
                c.dropped = True
                c.error = (f"dropped: validation accuracy {c.outcome.accuracy:.3f} <= "
                           f"{s.drop_accuracy}")
            else:
                c.action = splice(c.action, c.code)
        pending = [c for c in pending if c.outcome is None]
        if not pending:
            return
        if rnd == s.max_repairs:
            break
        for c in pending:
            c.chat = c.chat + [{"role": "assistant", "content": c.text},
                               repair_message(c.failure)]
            rseed = derive_seed(ep.base_seed, ep.run_id, ep.episode_id, turn, c.index,
                                "repair", rnd)
            reply = texts(ep.meta_agent.generate(c.chat, 1, seed=rseed))
            c.repairs += 1
            c.text = reply[0] if reply else ""
    for c in pending:
        c.dropped = True
        c.error = f"dropped after {c.repairs} repair(s): {c.error}"


def model_candidates(cands: list[Cand]) -> list[Candidate]:
    """The decision process's view: survivors are valid, dropped candidates are not."""
    return [
        Candidate(c.index, c.action, c.code,
                  c.outcome.accuracy if c.outcome is not None else None,
                  c.outcome.feedback if c.outcome is not None else None,
                  c.error if c.dropped else None)
        for c in cands
    ]
