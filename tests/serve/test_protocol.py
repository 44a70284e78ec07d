"""Request validation of the OpenAI chat-completions subset: what clients may send and get."""

from __future__ import annotations

import json

import pytest

from w4s_ray.serve.protocol import (
    ChatCompletionResponse,
    Choice,
    ProtocolError,
    ResponseMessage,
    Usage,
    parse_chat_request,
)

USER = [{"role": "user", "content": "hi"}]


def _body(**kw) -> bytes:
    return json.dumps({"model": "m", "messages": USER, **kw}).encode()


def _err(raw: bytes, max_n: int = 16) -> ProtocolError:
    with pytest.raises(ProtocolError) as exc:
        parse_chat_request(raw, max_n=max_n)
    err = exc.value
    body = err.body()["error"]
    assert set(body) == {"message", "type", "param", "code"}
    assert 400 <= err.status < 500
    return err


def test_valid_request_with_all_sampling_fields():
    req = parse_chat_request(
        _body(n=3, temperature=0.7, top_p=0.9, max_tokens=20, seed=5, stop=["\n\n", "END"]),
        max_n=16,
    )
    assert (req.n, req.temperature, req.top_p, req.max_tokens, req.seed) == (3, 0.7, 0.9, 20, 5)
    assert req.stop == ["\n\n", "END"]
    assert req.plain_messages() == USER


def test_defaults_and_single_stop_string():
    req = parse_chat_request(_body(stop="###"), max_n=4)
    assert req.n == 1 and req.temperature is None and req.stop == ["###"]
    assert req.token_limit() is None


def test_max_completion_tokens_wins_over_max_tokens():
    req = parse_chat_request(_body(max_tokens=10, max_completion_tokens=30), max_n=4)
    assert req.token_limit() == 30


def test_text_content_parts_are_joined_and_openai_client_extras_ignored():
    msgs = [{"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "a"},
                                         {"type": "text", "text": "b"}]}]
    raw = json.dumps({"model": "m", "messages": msgs, "user": "u", "stream": False,
                      "logprobs": False, "presence_penalty": 0}).encode()
    req = parse_chat_request(raw, max_n=4)
    assert req.plain_messages() == [{"role": "system", "content": "sys"},
                                    {"role": "user", "content": "ab"}]


def test_bad_json_and_non_object():
    assert _err(b"{not json").code == "invalid_json"
    assert _err(b"\xff\xfe").code == "invalid_json"
    assert "JSON object" in _err(b"[1, 2]").message


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (json.dumps({"model": "m"}).encode(), "messages"),
        (json.dumps({"messages": []}).encode(), "messages"),
        (json.dumps({"messages": "hi"}).encode(), "messages"),
        (json.dumps({"messages": [{"role": "robot", "content": "x"}]}).encode(),
         "messages[0].role"),
        (json.dumps({"messages": [{"role": "user", "content": 5}]}).encode(),
         "messages[0].content"),
        (json.dumps({"messages": [{"role": "user",
                                   "content": [{"type": "image_url", "image_url": {}}]}]}).encode(),
         "messages[0].content"),
        (_body(n="3"), "n"),
        (_body(n=True), "n"),
        (_body(n=0), "n"),
        (_body(temperature="hot"), "temperature"),
        (_body(temperature=2.5), "temperature"),
        (_body(top_p=0), "top_p"),
        (_body(max_tokens=0), "max_tokens"),
        (_body(max_tokens=1.5), "max_tokens"),
        (_body(seed="x"), "seed"),
        (_body(stop=["a", "b", "c", "d", "e"]), "stop"),
        (_body(stop=[""]), "stop"),
        (_body(stop=5), "stop"),
        (_body(stream="yes"), "stream"),
        (_body(top_k=-2), "top_k"),
        (_body(frequency_penalty=2.5), "frequency_penalty"),
        (_body(presence_penalty=-3), "presence_penalty"),
        (_body(repetition_penalty=0), "repetition_penalty"),
        (_body(response_format={"type": "xml"}), "response_format.type"),
        (_body(response_format={"type": "json_schema"}), "response_format"),
        (_body(stream_options={"include_usage": True}), "stream_options"),
        (_body(model=7), "model"),
    ],
)
def test_malformed_requests_name_the_parameter(raw, param):
    err = _err(raw)
    assert err.status == 400
    assert err.param == param
    assert param.split("[")[0] in err.message


def test_missing_messages_says_missing():
    assert "missing required parameter 'messages'" in _err(b'{"model": "m"}').message


def test_n_above_server_limit():
    err = _err(_body(n=9), max_n=8)
    assert err.param == "n" and "at most 8" in err.message


def test_response_shape_is_openai_chat_completion():
    resp = ChatCompletionResponse(
        model="m",
        choices=[Choice(index=0, message=ResponseMessage(content="x"), finish_reason="stop")],
        usage=Usage(prompt_tokens=3, completion_tokens=1, total_tokens=4),
    ).model_dump()
    assert resp["object"] == "chat.completion" and resp["id"].startswith("chatcmpl-")
    assert resp["choices"][0]["message"] == {"role": "assistant", "content": "x"}
    assert resp["usage"]["total_tokens"] == 4
