"""Errors a user can act on.

Every stage raises a subclass of `W4SError` for bad input or an unusable environment; the CLI
prints its message as one line (`w4s: error: ...`) and exits non-zero. Anything else is a bug
and keeps its traceback.
"""


class W4SError(Exception):
    """A problem with the user's input or environment, reported as one clear line."""

    exit_code = 2


class ConfigError(W4SError):
    """The experiment config (YAML or a --set override) is malformed or invalid."""


class DataError(W4SError):
    """A data file is missing, corrupt, or a benchmark/split name is unknown."""


class ExecutorError(W4SError):
    """The strong executor could not be reached or answered with something unusable."""


class ExecutorFatal(ExecutorError):
    """The executor endpoint cannot serve this run at all (bad key, unknown model or provider,
    a parameter it rejects, nothing listening): every further call would fail the same way.
    Not the workflow's fault, so an evaluation stops (like a spent budget) instead of scoring
    items 0, and the run ends with this one line (endpoint, model, cause, what to change).
    See docs/EXECUTOR.md "Errors"."""


class ExecutorUnreachable(ExecutorFatal):
    """No connection to the executor after all retries (refused, DNS, reset)."""


class BudgetExceeded(W4SError):
    """The run's dollar budget is spent; state up to the last safe point is written."""

    exit_code = 3
