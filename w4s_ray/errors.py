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


class ExecutorUnreachable(ExecutorError):
    """No connection to the executor after all retries: the environment failed, not the
    workflow, so an evaluation stops (like a spent budget) instead of failing the candidate."""


class BudgetExceeded(W4SError):
    """The run's dollar budget is spent; state up to the last safe point is written."""

    exit_code = 3
