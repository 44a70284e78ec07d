"""Time the platform holds a workflow's executor call back (a rate-limit grant, an in-flight
cap; utils/held.py) is not charged to the item's or the evaluation's time limit; time the
call itself takes is."""

from __future__ import annotations

import asyncio
import threading

from w4s_ray.config import SandboxConfig
from w4s_ray.sandbox.base import make_sandbox
from w4s_ray.utils.held import held

CODE = ("def solver(agent, task):\n"
        "    r = agent.call_llm(messages=[{'role': 'user', 'content': task}])\n"
        "    return {'answer': r[0]}\n")


def _run(wait_s: float, *, platform: bool, on_io_thread: bool = False):
    cfg = SandboxConfig(item_timeout_s=1.5, workflow_timeout_s=2.5, memory_mb=512,
                        cpu_seconds=30)
    io = asyncio.new_event_loop()
    threading.Thread(target=io.run_forever, daemon=True).start()

    async def wait() -> None:
        if platform:
            with held():
                await asyncio.sleep(wait_s)
        else:
            await asyncio.sleep(wait_s)

    async def handler(method, params, idx):
        if on_io_thread:  # as the executor client does: its own loop on another thread
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(wait(), io))
        else:
            await wait()
        return {"texts": [f"answer {idx}"]}

    items = [(k, f"q{k}", {}) for k in range(3)]
    try:
        return asyncio.run(make_sandbox(cfg).run_workflow(CODE, items, threads=3,
                                                          handler=handler))
    finally:
        io.call_soon_threadsafe(io.stop)


def test_a_wait_held_by_the_platform_past_the_item_limit_is_not_a_timeout():
    run = _run(3.0, platform=True)
    assert {k: o.kind for k, o in run.outcomes.items()} == {0: None, 1: None, 2: None}
    assert [run.outcomes[k].answer for k in range(3)] == ["answer 0", "answer 1", "answer 2"]


def test_the_hold_reaches_the_runner_from_the_executors_io_thread():
    run = _run(3.0, platform=True, on_io_thread=True)
    assert all(o.kind is None for o in run.outcomes.values()) and len(run.outcomes) == 3


def test_a_slow_call_that_is_not_held_still_times_out():
    run = _run(3.0, platform=False)
    assert {o.kind for o in run.outcomes.values()} == {"timeout"}
