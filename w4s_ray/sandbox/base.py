"""The `Sandbox` interface (what evaluation receives) and its registry of backends.

Modelled on DSPy's `CodeInterpreter`: evaluation hands untrusted code to a sandbox and gets
results back; it never starts a process itself. Three operations:

- `run_workflow(code, items, threads=, handler=, ...)`: load a workflow and run `solver(agent,
  task)` on each item, answering its `agent` calls through `handler` (coroutine
  `(method, params, item_index) -> value`); returns a `SandboxRun` (per-item answers or
  failures, load error, captured output);
- `execute_code(code, timeout)`: `agent.execute_code` in a nested sandbox;
- `run_tests(solution, tests, entry_point=, ...)`: the scoring judge (public tests).

Backends (`sandbox.backend` in the config): "process" and "bwrap" run children on this machine
(`LocalSandbox` with the matching `isolation.py` backend); "auto" picks bwrap where it runs.
A remote or container backend is one new module with a `Sandbox` subclass registered under a
new name (`@register_sandbox("name")`) plus that name in `SandboxConfig.backend`.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from w4s_ray.config import SandboxConfig
from w4s_ray.errors import ConfigError
from w4s_ray.sandbox import judge, nested
from w4s_ray.sandbox.isolation import BwrapIsolation, ProcessIsolation, bwrap_status
from w4s_ray.sandbox.judge import ExecResult
from w4s_ray.sandbox.runner import RpcHandler, SandboxRun, WorkflowRunner


class Sandbox(ABC):
    name: str = "sandbox"

    def __init__(self, cfg: SandboxConfig) -> None:
        self.cfg = cfg

    @abstractmethod
    async def run_workflow(self, code: str, items: list[tuple[int, str, dict]], *,
                           threads: int, handler: RpcHandler, hide: tuple[bytes, ...] = (),
                           strict: bool = False,
                           on_item: Callable[[int], Any] | None = None) -> SandboxRun:
        """Run the workflow `code` on `items` ([index, question, public meta])."""

    @abstractmethod
    async def execute_code(self, code: str, timeout: float,
                           hide: tuple[bytes, ...] = ()) -> dict[str, Any]:
        """{"ok": True, "value": v} or {"ok": False, "error": text}."""

    @abstractmethod
    def run_tests(self, solution: str, tests: str, *, entry_point: str | None = None,
                  timeout_s: float, cpu_s: float | None = None,
                  memory_mb: int = judge.DEFAULT_MEMORY_MB) -> ExecResult:
        """The verdict of `tests` on `solution` (blocking; call it off the event loop)."""

    def status(self) -> dict[str, Any]:
        return {"backend": self.name}


SANDBOXES: dict[str, Callable[[SandboxConfig], Sandbox]] = {}


def register_sandbox(name: str) -> Callable:
    """Class (or factory) decorator: the backend `sandbox.backend=name` builds."""
    def deco(factory):
        SANDBOXES[name] = factory
        return factory
    return deco


class LocalSandbox(Sandbox):
    """Children are processes on this machine, wrapped by an isolation backend."""

    def __init__(self, cfg: SandboxConfig, isolation: Any) -> None:
        super().__init__(cfg)
        self.isolation = isolation
        self.name = isolation.name

    async def run_workflow(self, code, items, *, threads, handler, hide=(), strict=False,
                           on_item=None) -> SandboxRun:
        runner = WorkflowRunner(self.cfg, self.isolation, threads=threads, handler=handler,
                                hide=hide, strict=strict, on_item=on_item)
        return await runner.run(code, items)

    async def execute_code(self, code, timeout, hide=()) -> dict[str, Any]:
        return await nested.execute_code(code, timeout, self.cfg, self.isolation, hide)

    def run_tests(self, solution, tests, *, entry_point=None, timeout_s, cpu_s=None,
                  memory_mb=judge.DEFAULT_MEMORY_MB) -> ExecResult:
        return judge.run_tests(solution, tests, entry_point=entry_point, timeout_s=timeout_s,
                               cpu_s=cpu_s, memory_mb=memory_mb, isolation=self.isolation)

    def status(self) -> dict[str, Any]:
        return self.isolation.status()


@register_sandbox("process")
def _process(cfg: SandboxConfig) -> Sandbox:
    return LocalSandbox(cfg, ProcessIsolation())


@register_sandbox("bwrap")
def _bwrap(cfg: SandboxConfig) -> Sandbox:
    return LocalSandbox(cfg, BwrapIsolation())


def make_sandbox(cfg: SandboxConfig) -> Sandbox:
    """The backend `cfg.backend` names ("auto": bwrap where it runs here, else process)."""
    name = cfg.backend
    if name == "auto":
        name = "bwrap" if bwrap_status()["available"] else "process"
    if name not in SANDBOXES:
        raise ConfigError(f"sandbox.backend {cfg.backend!r}: no such backend "
                          f"(known: auto, {', '.join(SANDBOXES)})")
    return SANDBOXES[name](cfg)


def as_sandbox(sandbox: Sandbox | SandboxConfig) -> Sandbox:
    """A `Sandbox` as is; a `SandboxConfig` builds its configured backend."""
    return sandbox if isinstance(sandbox, Sandbox) else make_sandbox(sandbox)


async def run_tests_async(sandbox: Sandbox, *args: Any, **kwargs: Any) -> ExecResult:
    """`sandbox.run_tests` off the event loop."""
    return await asyncio.to_thread(sandbox.run_tests, *args, **kwargs)
