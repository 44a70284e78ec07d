"""Time the platform holds a workflow's call back, so that it is not charged to the workflow.

A workflow's item has a wall-clock limit (`sandbox.item_timeout_s`). Time an executor call
spends waiting for the platform itself — a grant of the run's shared rate limit, a slot of the
evaluator's in-flight cap or of the client's concurrency cap — is not the workflow's doing;
under a tight provider limit it can exceed the item limit, and the item would be scored as a
timeout (a silent wrong accuracy). The code that waits wraps the wait in `held()`; the sandbox
runner binds, per item call, a hook that pauses that item's clock while any of its calls is
held. Without a bound hook (a plain `w4s eval`-less use of the client) `held()` does nothing.

A context variable carries the hook: each RPC the runner answers runs in its own asyncio task,
which copies the context, so the hook reaches the executor client without any parameter
threading through the evaluation code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

Hook = Callable[[bool], None]  # called with True when a wait starts, False when it ends

_hook: ContextVar[Hook | None] = ContextVar("w4s_held_hook", default=None)


def bind(hook: Hook | None) -> None:
    """Bind `hook` for the current task (and the tasks it creates from now on)."""
    _hook.set(hook)


@contextlib.contextmanager
def held() -> Iterator[None]:
    hook = _hook.get()
    if hook is None:
        yield
        return
    hook(True)
    try:
        yield
    finally:
        hook(False)
