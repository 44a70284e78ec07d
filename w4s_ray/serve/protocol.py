"""The OpenAI chat-completions subset the server speaks (pydantic models, no Ray, no torch).

Every request field is either honoured, accepted only at a value that changes nothing, or
refused with a 400 naming it; nothing is silently ignored:

- honoured: `model`, `messages`, `n`, `temperature`, `top_p`, `top_k` (vLLM-style extension,
  0 or -1 = off), `max_tokens` / `max_completion_tokens`, `seed`, `stop`, `frequency_penalty`,
  `presence_penalty`, `repetition_penalty` (extension), `response_format` (`text`,
  `json_object`, `json_schema`), `stream`, `stream_options.include_usage`;
- accepted because they do not change the output: `user`, `metadata`, and at their neutral
  values `logprobs: false`, `top_logprobs: 0`, `logit_bias: {}`, `tools: []`, `tool_choice:
  "none"|"auto"` (without tools), `parallel_tool_calls`, `store: false`, `service_tier:
  "auto"|"default"`, `modalities: ["text"]`;
- anything else (a non-empty `logit_bias`, `logprobs: true`, tools, audio, unknown keys) is a
  400 `unsupported_parameter` naming the field.

`parse_chat_request` turns raw bytes into a validated `ChatCompletionRequest` or raises
`ProtocolError` (HTTP status + OpenAI-style body `{"error": {"message", "type", "param",
"code"}}`). Response models, including the streaming chunk, are at the end.
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

HONOURED = {
    "model", "messages", "n", "temperature", "top_p", "top_k", "max_tokens",
    "max_completion_tokens", "seed", "stop", "frequency_penalty", "presence_penalty",
    "repetition_penalty", "response_format", "stream", "stream_options",
}
# Fields accepted only at values that change nothing about the reply.
_NEUTRAL: dict[str, Any] = {
    "user": lambda v: v is None or isinstance(v, str),
    "metadata": lambda v: v is None or isinstance(v, dict),
    "logprobs": lambda v: v in (None, False),
    "top_logprobs": lambda v: v in (None, 0),
    "logit_bias": lambda v: v in (None, {}),
    "tools": lambda v: v in (None, []),
    "functions": lambda v: v in (None, []),
    "tool_choice": lambda v: v in (None, "none", "auto"),
    "function_call": lambda v: v in (None, "none", "auto"),
    "parallel_tool_calls": lambda v: v is None or isinstance(v, bool),
    "store": lambda v: v in (None, False),
    "service_tier": lambda v: v in (None, "auto", "default"),
    "modalities": lambda v: v in (None, ["text"]),
}


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
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def error_body(
    message: str, *, type: str = "invalid_request_error", param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class ChatMessage(BaseModel):
    # Message-level extras (`name`, ...) do not change what a chat template renders here.
    model_config = ConfigDict(extra="ignore")

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


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None

    def schema_dict(self) -> dict[str, Any] | None:
        """The JSON Schema a `json_schema` reply must satisfy."""
        if self.type != "json_schema":
            return None
        if not self.json_schema or not isinstance(self.json_schema.get("schema"), dict):
            raise ValueError("type json_schema needs json_schema.schema (an object)")
        return self.json_schema["schema"]


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: StrictBool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # unknown keys are checked in parse_chat_request

    model: StrictStr | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    n: StrictInt = Field(default=1, ge=1)
    temperature: StrictFloat | StrictInt | None = Field(default=None, ge=0.0, le=2.0)
    top_p: StrictFloat | StrictInt | None = Field(default=None, gt=0.0, le=1.0)
    top_k: StrictInt | None = Field(default=None, ge=-1)
    max_tokens: StrictInt | None = Field(default=None, ge=1)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1)
    # torch.manual_seed's range; outside it a seed cannot be honoured.
    seed: StrictInt | None = Field(default=None, ge=-(2**63), le=2**64 - 1)
    stop: StrictStr | list[StrictStr] | None = None
    frequency_penalty: StrictFloat | StrictInt | None = Field(default=None, ge=-2.0, le=2.0)
    presence_penalty: StrictFloat | StrictInt | None = Field(default=None, ge=-2.0, le=2.0)
    repetition_penalty: StrictFloat | StrictInt | None = Field(default=None, gt=0.0, le=10.0)
    response_format: ResponseFormat | None = None
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None

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

    def token_limit(self) -> int | None:
        """`max_completion_tokens` (the newer name) wins over `max_tokens`."""
        return self.max_completion_tokens or self.max_tokens

    def json_mode(self) -> str | None:
        """"json_object", "json_schema" or None (plain text)."""
        rf = self.response_format
        return None if rf is None or rf.type == "text" else rf.type

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
    elif first["type"] == "extra_forbidden":
        return ProtocolError(f"'{param}' is not supported by this server", param=param,
                             code="unsupported_parameter")
    else:
        got = first.get("input")
        got_txt = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
        msg = f"'{param}': {msg}{got_txt}" if param else f"{msg}{got_txt}"
    return ProtocolError(msg, param=param, code="invalid_value" if param else None)


def _refuse_unsupported(payload: dict[str, Any]) -> None:
    for key, value in payload.items():
        if key in HONOURED:
            continue
        ok = _NEUTRAL.get(key)
        if ok is None or not ok(value):
            what = "is not supported by this server" if ok is None else \
                f"is not supported by this server (only a neutral value is accepted, got {value!r:.60})"
            raise ProtocolError(f"'{key}' {what}", param=key, code="unsupported_parameter")


def parse_chat_request(body: bytes, *, max_n: int) -> ChatCompletionRequest:
    """Validate a raw request body; raises `ProtocolError` (400) naming the bad parameter."""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"request body is not valid JSON ({exc})", code="invalid_json") from None
    if not isinstance(payload, dict):
        raise ProtocolError("request body must be a JSON object", code="invalid_json")
    _refuse_unsupported(payload)
    try:
        req = ChatCompletionRequest.model_validate(payload)
    except ValidationError as err:
        raise _validation_message(err) from None
    if req.n > max_n:
        raise ProtocolError(
            f"'n': must be at most {max_n} on this server (got {req.n})",
            param="n", code="invalid_value",
        )
    if req.stream_options is not None and not req.stream:
        raise ProtocolError("'stream_options' is only allowed with stream: true",
                            param="stream_options", code="invalid_value")
    if req.response_format is not None:
        try:
            schema = req.response_format.schema_dict()
        except ValueError as exc:
            raise ProtocolError(f"'response_format': {exc}", param="response_format",
                                code="invalid_value") from None
        if schema is not None:
            check_json_schema(schema)
    return req


def check_json_schema(schema: dict[str, Any]) -> None:
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - jsonschema ships with ray[default]
        raise ProtocolError("response_format json_schema needs the jsonschema package on the "
                            "server", param="response_format", code="unsupported_parameter") from None
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ProtocolError(f"'response_format': invalid JSON schema ({exc.message})",
                            param="response_format", code="invalid_value") from None


def json_reply_error(text: str, schema: dict[str, Any] | None) -> str | None:
    """Why `text` is not an acceptable JSON-mode reply (None when it is)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg})"
    if not isinstance(value, dict):
        return "not a JSON object"
    if schema is not None:
        import jsonschema

        try:
            jsonschema.validate(value, schema)
        except jsonschema.ValidationError as exc:
            return f"does not match the schema ({exc.message[:120]})"
    return None


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


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


class ChatCompletionResponse(BaseModel):
    id: str = Field(default_factory=_completion_id)
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "w4s-ray"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
