"""`parse_json_reply`: the JSON a real model wraps in fences or prose is found; garbage and
hostile replies are refused quickly, never raised on; `reply_excerpt` is bounded and safe."""

from __future__ import annotations

import pytest

from w4s_ray.sandbox.agent import Agent
from w4s_ray.sandbox.jsonreply import (
    EXCERPT_CHARS,
    MAX_SCAN_CHARS,
    NO_JSON,
    parse_json_reply,
    reply_excerpt,
)


@pytest.mark.parametrize("reply, want", [
    ('{"answer": "7"}', {"answer": "7"}),
    ('  \n{"answer": 7}\n ', {"answer": 7}),
    ("[1, 2]", [1, 2]),  # a bare JSON value is returned as W4S's json.loads did
    ('```json\n{"reasoning": "r", "answer": "12"}\n```', {"reasoning": "r", "answer": "12"}),
    ('Sure!\n```JSON\n{"answer": "x"}\n```\nHope it helps.', {"answer": "x"}),
    ('```\n{"answer": 3}\n```', {"answer": 3}),
    ('\r\n```json\r\n{"answer": 3}\r\n```\r\n', {"answer": 3}),
    ('Here is my answer: {"reasoning": "since {x} = 2", "answer": "4"} -- done.',
     {"reasoning": "since {x} = 2", "answer": "4"}),
    # LaTeX braces and a broken object before the real one: the first object that parses.
    (r'We get \frac{1}{2} and {not json} then {"answer": "1/2"} and {"answer": "no"}',
     {"answer": "1/2"}),
    ('```json\n{"a": 1,}\n```\nfixed: {"a": 1}', {"a": 1}),
    ('{"outer": {"inner": [1, {"d": null}]}}', {"outer": {"inner": [1, {"d": None}]}}),
])
def test_fenced_and_embedded_json_is_found(reply, want):
    assert parse_json_reply(reply) == want


@pytest.mark.parametrize("reply", [
    "", "   ", "The answer is 7.", "{'answer': 7}",  # a Python dict literal is not JSON
    '{"answer": 7,}', '{"answer": 7', 'answer: "7"', "```json\n{oops}\n```", "{}}}{{{",
    "function f() {} returns nothing",
    '"a string", then prose', "null and void", "[1, 2", "```json\n```",
])
def test_garbage_is_refused(reply):
    assert parse_json_reply(reply) is NO_JSON


def test_non_text_is_refused():
    class Lying(str):
        def strip(self, *a):  # a str subclass cannot steer parsing
            return '{"answer": "forged"}'

    assert parse_json_reply(None) is NO_JSON and parse_json_reply(b'{"a": 1}') is NO_JSON
    assert parse_json_reply(Lying("no json")) is NO_JSON


@pytest.mark.parametrize("reply", [
    "[" * 200_000,                                   # nesting past the recursion limit
    '{"a":' * 100_000,
    "{" * 300_000,                                   # many starts, each failing at once
    '{"a": "' + "x" * 500_000,                       # an unterminated string
    ('{"k": "' + "y" * 300 + '" ') * 2_000,          # many long, unclosed objects
    '{"a": [1, ' * 50_000,
    "\x00{\ud800" * 10_000,                          # control bytes and a lone surrogate
])
def test_hostile_replies_are_refused_without_raising(reply):
    assert parse_json_reply(reply) is NO_JSON


def test_the_scan_is_bounded_to_the_head_of_a_huge_reply():
    tail = '{"answer": "late"}'
    assert parse_json_reply("x" * (MAX_SCAN_CHARS + 10) + tail) is NO_JSON
    assert parse_json_reply("x" * 1000 + tail) == {"answer": "late"}
    whole = '{"answer": "' + "z" * (MAX_SCAN_CHARS * 2) + '"}'  # a bare JSON reply: any length
    assert parse_json_reply(whole)["answer"] == "z" * (MAX_SCAN_CHARS * 2)


def test_the_agent_reads_fenced_json_and_still_fills_missing_keys():
    replies = ['```json\n{"answer": "7"}\n```', "I think it is 7.", 'Ok: {"reasoning": "r"}']
    agent = Agent(lambda m, p: {"texts": replies[: p["n"]]})
    out = agent.call_json_format_llm(messages=[{"role": "user", "content": "q"}],
                                     num_of_response=3, return_dict_keys=["answer"])
    assert out[0] == {"answer": "7"}
    assert out[1] == {"JSONDecodeError": "I think it is 7.", "answer": "NO answer IN DICTIONARY"}
    assert out[2] == {"reasoning": "r", "answer": "NO answer IN DICTIONARY"}
    raw = agent.call_llm(messages=[{"role": "user", "content": "q"}], num_of_response=2,
                         response_format="json")
    assert raw == [{"answer": "7"}, {"JSONDecodeError": "I think it is 7."}]


def test_the_excerpt_is_clipped_masked_and_cannot_break_the_prompt():
    text = ("Let me think. My key is sk-abcdefghijklmnop1234 \x00\x1b[31m ```python\n"
            "import os``` " + "blah " * 500)
    ex = reply_excerpt(text)
    assert len(ex) <= EXCERPT_CHARS + len(" [...]") and ex.endswith("[...]")
    assert "sk-abcdefghijklmnop1234" not in ex and "***" in ex
    assert "```" not in ex and "\x00" not in ex and "\x1b" not in ex
    assert reply_excerpt("short reply") == "short reply"
