"""The OpenAI chat-completions subset the meta-agent server speaks (pydantic models, no Ray).

Requests: `POST /v1/chat/completions` with `model`, `messages`, `n`, `temperature`, `top_p`,
`max_tokens` (or `max_completion_tokens`), `seed`, `stop`. Other OpenAI fields that clients
send by default (`user`, `logprobs: false`, `stream: false`, penalties at 0, ...) are accepted
and ignored; fields that would change the output and that this server cannot honour
(`stream: true`, `logprobs: true`, tools, non-text content parts) are rejected with a 400
instead of being silently dropped.

`parse_chat_request` turns raw request bytes into a validated `ChatCompletionRequest` or raises
`ProtocolError`, which carries the HTTP status and an OpenAI-style error body
(`{"error": {"message", "type", "param", "code"}}`). Nothing here generates text.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_STOP_SEQUENCES = 4  # the OpenAI API limit; clients are written against it


class ProtocolError(Exception):
    """A request the server refuses; `body()` is the JSON error the client receives."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def error_body(
    message: str, *, type: str = "invalid_request_error", param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class _Lenient(BaseModel):
    # Unknown keys are ignored: OpenAI clients add fields (user, metadata, ...) freely.
    model_config = ConfigDict(extra="ignore")


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    # str, or a list of text parts (the newer OpenAI content format); None only for assistant
    # turns that carried tool calls, which this server does not produce.
    content: StrictStr | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _content_text(cls, v: Any) -> Any:
        if not isinstance(v, list):
            return v
        texts = []
        for part in v:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            if kind != "text" or not isinstance(part.get("text"), str):
                raise ValueError(f"only text content parts are supported (got {kind!r})")
            texts.append(part["text"])
        return "".join(texts)

    def text(self) -> str:
        return self.content or ""


class ChatCompletionRequest(_Lenient):
    model: StrictStr | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    n: StrictInt = Field(default=1, ge=1)
    temperature: StrictFloat | StrictInt | None = Field(default=None, ge=0.0, le=2.0)
    top_p: StrictFloat | StrictInt | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: StrictInt | None = Field(default=None, ge=1)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1)
    # torch.manual_seed's range; outside it a seed cannot be honoured.
    seed: StrictInt | None = Field(default=None, ge=-(2**63), le=2**64 - 1)
    stop: StrictStr | list[StrictStr] | None = None
    stream: StrictBool | None = None
    logprobs: StrictBool | None = None
    tools: list[Any] | None = None

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, v: Any) -> list[str] | None:
        if v is None:
            return None
        stops = [v] if isinstance(v, str) else list(v)
        if len(stops) > MAX_STOP_SEQUENCES:
            raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed")
        if any(s == "" for s in stops):
            raise ValueError("stop sequences must be non-empty strings")
        return stops or None

    @field_validator("stream", "logprobs", "tools")
    @classmethod
    def _unsupported(cls, v: Any, info: Any) -> Any:
        # Silently ignoring these would hand the client something other than it asked for.
        if v:
            raise ValueError(f"{info.field_name} is not supported by this server")
        return v

    def token_limit(self) -> int | None:
        """`max_completion_tokens` (the newer name) wins over `max_tokens`."""
        return self.max_completion_tokens or self.max_tokens

    def plain_messages(self) -> list[dict[str, str]]:
        """Messages as the plain `{role, content}` dicts a chat template expects."""
        return [{"role": m.role, "content": m.text()} for m in self.messages]


_FIELD = re.compile(r"^[a-z_]+$")


def _param_of(err: dict[str, Any]) -> str | None:
    """`messages[0].role` from a pydantic loc; union-member tags ('float', 'str', ...) dropped."""
    out = ""
    for part in err.get("loc", ()):
        if isinstance(part, int):
            out += f"[{part}]"
        elif _FIELD.match(part) and part not in {"str", "int", "float", "bool", "list"}:
            out += f".{part}" if out else part
        else:
            break
    return out or None


def _validation_message(err: ValidationError) -> ProtocolError:
    first = err.errors()[0]
    param = _param_of(first)
    msg = first["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if first["type"] == "missing":
        msg = f"missing required parameter '{param}'"
    else:
        got = first.get("input")
        got_txt = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
        msg = f"'{param}': {msg}{got_txt}" if param else f"{msg}{got_txt}"
    return ProtocolError(msg, param=param, code="invalid_value" if param else None)


def parse_chat_request(body: bytes, *, max_n: int) -> ChatCompletionRequest:
    """Validate a raw request body; raises `ProtocolError` (400) naming the bad parameter."""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"request body is not valid JSON ({exc})", code="invalid_json") from None
    if not isinstance(payload, dict):
        raise ProtocolError("request body must be a JSON object", code="invalid_json")
    try:
        req = ChatCompletionRequest.model_validate(payload)
    except ValidationError as err:
        raise _validation_message(err) from None
    if req.n > max_n:
        raise ProtocolError(
            f"'n': must be at most {max_n} on this server (got {req.n})",
            param="n", code="invalid_value",
        )
    return req


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int
    message: ResponseMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletionResponse(BaseModel):
    id: str = Field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "w4s-ray"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
