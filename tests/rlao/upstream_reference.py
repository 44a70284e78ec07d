"""An independent re-statement of the authors' reward bookkeeping, for tests only.

Written from a reading of fannie1208/W4S `src/main.py` (`SystemOptimizer.reset_messages` and the
reward loop of `optimize_system`) and `src/agent/meta_agent.py` (`improve_system`: which
candidates reach the reward at all), NOT from this project's `rlao.w4s`: it keeps upstream's
own data structure, a flat `eval_history` list of dicts whose `iteration` is a string for an
example and an int for a generated workflow, and recomputes everything from it the way the
upstream loop does. The tests compare `rlao.w4s` / the Episode rows against it.
"""

from __future__ import annotations


def upstream_rewards(example_accs: list[float], turns: list[list[float | None]], *,
                     window: int = 2, reward_type: str = "discrete",
                     drop: float = 0.05) -> tuple[list[list[float]], list[int | None]]:
    """Rewards of the surviving candidates of each turn, and the position (among ALL the
    turn's candidates) of the chosen one.

    `turns[j]` holds the validation accuracy of each candidate of turn j in sampling order;
    None = the candidate never produced a working evaluation (upstream: its debug loop ran out).
    """
    eval_history = [{"iteration": f"Example {k} system", "valid_acc": a}
                    for k, a in enumerate(example_accs)]
    all_rewards: list[list[float]] = []
    chosen: list[int | None] = []
    for i in range(0, len(turns), window):
        # reset_messages: examples + the last generated entry; best over that history, and
        # it is NOT updated inside the trajectory (the update is commented out upstream).
        examples = [e for e in eval_history
                    if isinstance(e["iteration"], str) and "Example" in e["iteration"]]
        generated = [e for e in eval_history if isinstance(e["iteration"], int)]
        history = examples + generated[-1:] if generated else examples
        best_valid_acc = max(e["valid_acc"] for e in history)
        for j in range(i, min(i + window, len(turns))):
            # improve_system: a candidate reaches valid_accs only if it evaluated without an
            # exception and scored above 0.05.
            kept = [(pos, a) for pos, a in enumerate(turns[j]) if a is not None and a > drop]
            rewards = []
            for _, acc in kept:
                if reward_type == "continuous":
                    r = (acc - best_valid_acc) / best_valid_acc if best_valid_acc > 0 else 1
                else:
                    if acc > best_valid_acc:
                        r = 1
                    elif (all(isinstance(e["iteration"], str) for e in eval_history)
                          and acc > eval_history[0]["valid_acc"]) \
                            or acc > eval_history[-1]["valid_acc"]:
                        r = 0.5
                    else:
                        r = 0
                    if acc < 0.3:
                        r -= 0.1
                rewards.append(r)
            best = {"valid_acc": 0, "pos": None}
            for pos, acc in kept:
                if acc > best["valid_acc"]:
                    best = {"valid_acc": acc, "pos": pos}
            all_rewards.append(rewards)
            chosen.append(best["pos"])
            if best["pos"] is not None:
                eval_history.append({"iteration": j + 1, "valid_acc": best["valid_acc"]})
    return all_rewards, chosen
