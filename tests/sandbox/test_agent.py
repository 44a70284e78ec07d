"""The `agent` object (in-process, with a recording fake RPC): W4S-compatible behaviour."""

from __future__ import annotations

import json

import pytest

from w4s_ray.sandbox.agent import Agent


class FakeRpc:
    def __init__(self, texts=None, public=None):
        self.calls: list[tuple[str, dict]] = []
        self.texts = texts or (lambda p: ["hello"] * p["n"])
        self.public = public or []

    def __call__(self, method, params):
        self.calls.append((method, params))
        if method == "llm":
            return {"texts": self.texts(params)}
        if method == "public_test":
            return self.public.pop(0)
        if method == "exec":
            return {"ok": True, "value": 42}
        raise AssertionError(method)


def test_call_llm_prepends_system_and_returns_texts():
    rpc = FakeRpc()
    agent = Agent(rpc)
    out = agent.call_llm(messages=[{"role": "user", "content": "hi"}], num_of_response=3,
                         agent_role="math expert", instructions="Be brief.", model="gpt-4o")
    assert out == ["hello"] * 3
    method, p = rpc.calls[0]
    assert method == "llm" and p["n"] == 3 and p["response_format"] == "text"
    assert p["messages"][0] == {"role": "system",
                                "content": "You are a helpful math expert.\nBe brief."}
    assert "model" not in p  # the executor model is the parent's config


def test_existing_system_message_is_kept():
    rpc = FakeRpc()
    Agent(rpc).call_llm(messages=[{"role": "system", "content": "S"},
                                  {"role": "user", "content": "u"}])
    assert [m["role"] for m in rpc.calls[0][1]["messages"]] == ["system", "user"]


@pytest.mark.parametrize("messages, match", [
    ("hi", "messages must be a list"),
    ([], "must not be empty"),
    (["hi"], "index 0 must be a dictionary"),
    ([{"role": "user"}], "'role' and 'content'"),
    ([{"role": 1, "content": "x"}], "'role' at index 0 must be a string"),
])
def test_call_llm_validates_messages(messages, match):
    with pytest.raises(ValueError, match=match):
        Agent(FakeRpc()).call_llm(messages=messages)


def test_call_llm_coerces_non_string_content_like_w4s():
    rpc = FakeRpc()
    Agent(rpc).call_llm(messages=[{"role": "user", "content": 12}])
    assert rpc.calls[0][1]["messages"][-1]["content"] == "12"


def test_json_format_is_strict_and_fills_missing_keys():
    rpc = FakeRpc(texts=lambda p: ['{"answer": "7"}', "not json", "[1, 2]"][: p["n"]])
    agent = Agent(rpc)
    with pytest.raises(ValueError, match="exactly two keys"):
        agent.call_json_format_llm(messages=[{"role": "user", "content": "q", "name": "x"}])
    with pytest.raises(ValueError, match="'content' at index 0 must be a string"):
        agent.call_json_format_llm(messages=[{"role": "user", "content": 3}])
    out = agent.call_json_format_llm(messages=[{"role": "user", "content": "q"}],
                                     num_of_response=3, return_dict_keys=["reasoning", "answer"])
    assert out[0] == {"answer": "7", "reasoning": "NO reasoning IN DICTIONARY"}
    assert out[1]["JSONDecodeError"] == "not json"
    assert out[1]["answer"] == "NO answer IN DICTIONARY"
    assert "JSONDecodeError" in out[2]
    p = rpc.calls[-1][1]
    assert p["response_format"] == "json_object"
    assert "['reasoning', 'answer']" in p["messages"][0]["content"]


def test_json_response_format_parses_or_wraps():
    rpc = FakeRpc(texts=lambda p: ['{"a": 1}', "oops"])
    out = Agent(rpc).call_llm(messages=[{"role": "user", "content": "q"}], num_of_response=2,
                              response_format="json")
    assert out == [{"a": 1}, {"JSONDecodeError": "oops"}]


def test_identical_requests_get_distinct_occurrences():
    rpc = FakeRpc()
    agent = Agent(rpc)
    msg = [{"role": "user", "content": "same"}]
    for _ in range(3):
        agent.call_llm(messages=msg, temperature=0.7)
    agent.call_llm(messages=msg, temperature=0.5)
    occ = [p["occurrence"] for _, p in rpc.calls]
    assert occ == [0, 1, 2, 0]
    # a fresh agent (another item, or the same item evaluated again) starts at 0 again
    agent2 = Agent(rpc)
    agent2.call_llm(messages=msg, temperature=0.7)
    assert rpc.calls[-1][1]["occurrence"] == 0


@pytest.mark.parametrize("kwargs, match", [
    ({"response_format": "xml"}, "response_format"),
    ({"temperature": "hot"}, "temperature"),
    ({"num_of_response": 0}, "num_of_response"),
    ({"max_completion_tokens": -1}, "max_completion_tokens"),
])
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Agent(FakeRpc()).call_llm(messages=[{"role": "user", "content": "q"}], **kwargs)


def test_execute_code_forwards_and_raises_on_error():
    class Rpc(FakeRpc):
        def __call__(self, method, params):
            self.calls.append((method, params))
            if "boom" in params["code"]:
                return {"ok": False, "error": "ZeroDivisionError: division by zero"}
            return {"ok": True, "value": 3}

    agent = Agent(Rpc())
    assert agent.execute_code("1 + 2") == 3
    with pytest.raises(Exception, match="ZeroDivisionError"):
        agent.execute_code("boom = 1/0")
    with pytest.raises(ValueError):
        agent.execute_code("1", timeout=0)


def test_public_test_loop_repairs_until_pass():
    rpc = FakeRpc(
        texts=lambda p: [json.dumps({"reflection": "r", "code": "def f():\n    return 2"})],
        public=[{"passed": False, "feedback": "AssertionError: f() == 2", "exec_error": False},
                {"passed": True, "feedback": "no error", "exec_error": False}],
    )
    agent = Agent(rpc)
    out = agent.test_on_public_test("task text", "def f():\n    return 1", "f", test_loop=3)
    assert out == {"result": True, "solution": "def f():\n    return 2",
                   "feedback": "no error", "count": 1}
    llm = [p for m, p in rpc.calls if m == "llm"]
    assert len(llm) == 1
    prompt = llm[0]["messages"][-1]["content"]
    assert "task text" in prompt and "AssertionError: f() == 2" in prompt
    assert llm[0]["temperature"] == 0.3


def test_public_test_loop_gives_up_after_test_loop_rounds():
    fail = {"passed": False, "feedback": "NameError: x", "exec_error": True}
    rpc = FakeRpc(texts=lambda p: [json.dumps({"reflection": "r", "code": "def f(): pass"})],
                  public=[dict(fail) for _ in range(3)])
    out = Agent(rpc).test_on_public_test("t", "def f(): x", "f", test_loop=2)
    assert out["result"] is False and out["count"] == 2 and out["feedback"] == "NameError: x"
    assert sum(1 for m, _ in rpc.calls if m == "public_test") == 3


def test_extract_answer_str_like_w4s():
    a = Agent(FakeRpc())
    assert a.extract_answer_str("so \\boxed{\\frac{1}{2}} done") == "\\frac{1}{2}"
    assert a.extract_answer_str("we get 1,234.5 apples") == "1234.5"
    assert a.extract_answer_str("It is red. The answer is blue!") == "The answer is blue!"
    assert a.extract_answer_str("") == ""


def test_extract_code_block_finds_entry_point():
    text = "```python\nimport os\n```\n```python\ndef add(a, b):\n    return a + b\n```"
    assert Agent(FakeRpc()).extract_code_block(text, "add").startswith("def add")
    assert Agent(FakeRpc()).extract_code_block("no code", "add") == ""
