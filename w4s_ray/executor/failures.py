"""The one-line errors a failed executor call becomes, with what to change for fatal ones.

`call_error(failure, endpoint, cfg, attempts)` maps a classified `transport.Failure` to:

- `ExecutorUnreachable` (connection refused / failed after every retry) and `ExecutorFatal`
  (401, 402, 403, 404, exhausted quota, rejected parameter, unknown provider): the run stops;
  the line names the endpoint, the model, the cause and a hint (which env var, which
  `--set` key);
- `ExecutorError` for everything else (the request's own problem, or a transient failure that
  outlasted the retries): this call fails, the workflow's item scores 0, the run goes on.

Keys never appear: callers pass causes through `keys.redact` first.
"""

from __future__ import annotations

from typing import Any

from w4s_ray.errors import ExecutorError, ExecutorFatal, ExecutorUnreachable
from w4s_ray.executor.keys import is_local
from w4s_ray.executor.providers import Endpoint
from w4s_ray.executor.transport import FATAL, Failure


def _key_source(endpoint: Endpoint, cfg: Any) -> str:
    if cfg.api_key_file:
        return f"the key in executor.api_key_file ({cfg.api_key_file})"
    if endpoint.key_env:
        return f"${endpoint.key_env}"
    return f"the {endpoint.provider} credentials"


def hint(reason: str, endpoint: Endpoint, cfg: Any) -> str:
    """What to change, for a fatal failure's reason."""
    key = _key_source(endpoint, cfg)
    if reason == "auth":
        return (f"check {key} (another variable: --set executor.api_key_env=VAR; a key file: "
                f"--set executor.api_key_file=PATH)")
    if reason == "permission":
        return (f"{key} may not use {endpoint.wire_model} at this endpoint; check the key's "
                f"access or --set executor.model=...")
    if reason in ("payment", "quota"):
        return f"the account behind {key} has no credit left; add some or use another key"
    if reason == "not_found":
        if endpoint.provider == "azure":
            return ("check the deployment name (--set executor.model=azure/<deployment>) and "
                    "the resource URL (--set executor.api_base=https://<resource>.openai.azure.com"
                    " or $AZURE_API_BASE)")
        if endpoint.openai_compatible:
            return ("check the model name (--set executor.model=...; the server lists its names "
                    "at <api_base>/models) and the URL (--set executor.api_base=...)")
        return ("check the model name (--set executor.model=...) and the URL "
                "(--set executor.api_base=...)")
    if reason == "param":
        return ("--set executor.transport=litellm sends only the parameters litellm knows this "
                "provider takes; docs/EXECUTOR.md lists them per provider")
    if reason == "provider":
        return (f"prefix the provider (e.g. anthropic/{endpoint.wire_model}) or, for an "
                f"OpenAI-compatible server, --set executor.api_base=URL")
    if reason == "connection":
        if is_local(endpoint.api_base):
            return ("is the server running? start the simulator with `w4s sim serve`, or "
                    "--set executor.api_base=URL")
        return "check --set executor.api_base=... and the network"
    if reason == "rejected":
        return ("check what the endpoint takes: the model's context length against the "
                "max_tokens workflows ask for (--set executor.max_tokens=N is the default per "
                "call; the agent API's is 4096), and the parameters")
    if reason == "preflight":
        return "the endpoint does not answer a minimal chat request; check it by hand"
    if reason == "unavailable":
        return ("the endpoint stopped answering (an outage outlasting the retries?); when it is "
                "back, rerun the same command with --resume: finished work is kept")
    return "see docs/EXECUTOR.md \"Errors\""


def call_error(failure: Failure, endpoint: Endpoint, cfg: Any, attempts: int) -> ExecutorError:
    """The exception a call that ended with `failure` after `attempts` attempts raises."""
    if failure.reason == "connection":
        return ExecutorUnreachable(
            f"cannot reach executor at {endpoint.where}: {failure.cause} (after {attempts} "
            f"attempts); {hint('connection', endpoint, cfg)}")
    if failure.kind == FATAL:
        return fatal_error(failure.cause, failure.reason, endpoint, cfg)
    return ExecutorError(f"executor call to {cfg.model} at {endpoint.where} failed after "
                         f"{attempts} attempts: {failure.cause}")


def fatal_error(cause: str, reason: str, endpoint: Endpoint, cfg: Any) -> ExecutorFatal:
    return ExecutorFatal(f"executor {cfg.model} at {endpoint.where}: {cause}; "
                         f"{hint(reason, endpoint, cfg)}")
