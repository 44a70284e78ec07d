"""Host any object in a Ray actor and call its methods from anywhere, as if it were local.

    proxy = host(EvaluatorPool, cfg)          # the pool lives in one actor
    proxy.evaluate(requests)                  # ray.get(actor.call.remote("evaluate", ...))
    proxy.close()                             # calls the object's close(), kills the actor

`ActorProxy` pickles (it holds the actor handle only), so episodes or sweep tasks running in
other actors share the one hosted object. The host is threaded (`max_concurrency`), so callers
overlap; a user error raised by the object comes back as the plain `W4SError`
(`ray_init.user_error`). Private names (`_x`) are not forwarded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import ray

from w4s_ray.env import apply_offline_defaults
from w4s_ray.runtime.ray_init import reraise_user_error


@ray.remote(num_cpus=0, max_concurrency=32)
class ObjectHost:
    def __init__(self, factory: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        apply_offline_defaults()
        self.obj = factory(*args, **kwargs)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.obj, method)(*args, **kwargs)


class ActorProxy:
    def __init__(self, handle: Any, timeout_s: float | None = None) -> None:
        self._handle = handle
        self._timeout_s = timeout_s

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)

        def method(*args: Any, **kwargs: Any) -> Any:
            ref = self._handle.call.remote(name, *args, **kwargs)
            try:
                return ray.get(ref, timeout=self._timeout_s)
            except (ray.exceptions.RayTaskError, ray.exceptions.RayActorError) as exc:
                reraise_user_error(exc)

        return method

    def close(self, timeout_s: float = 60.0) -> None:
        """Close the hosted object (best effort) and stop its actor."""
        with contextlib.suppress(Exception):
            ray.get(self._handle.call.remote("close"), timeout=timeout_s)
        with contextlib.suppress(Exception):
            ray.kill(self._handle, no_restart=True)


def host(factory: Callable[..., Any], *args: Any, **kwargs: Any) -> ActorProxy:
    """Build `factory(*args, **kwargs)` inside a new actor; return a proxy to it."""
    return ActorProxy(ObjectHost.remote(factory, *args, **kwargs))
