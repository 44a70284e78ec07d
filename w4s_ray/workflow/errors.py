"""Errors of the workflow runtime that a user (or the meta-agent's repair loop) can act on."""

from __future__ import annotations

from w4s_ray.errors import W4SError


class WorkflowError(W4SError):
    """Workflow code is unusable: no code block, a syntax error, or no `solver(agent, task)`."""


class TestSplitLeak(WorkflowError, ValueError):
    """Test-split results were about to reach the meta-agent (feedback is validation-only)."""

    __test__ = False  # not a pytest test class, despite the name
