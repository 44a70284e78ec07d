"""Meta-agent backends: scripted, litellm against a local OpenAI-compatible server, local
transformers (tiny model) in-process and hosted in a Ray actor, and the factory."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.fixtures.providers import KEY
from w4s_ray.config import load_config
from w4s_ray.errors import ConfigError, ExecutorError, MetaAgentFatal, W4SError
from w4s_ray.meta_agent import make_meta_agent, preflight_meta_agent
from w4s_ray.meta_agent.scripted import (
    ScriptedMetaAgent,
    SeedVariantsMetaAgent,
    load_replies,
    mutate,
)
from w4s_ray.rlao import mdp
from w4s_ray.rlao.prompts import PromptSpec, build_messages

MSGS = [{"role": "system", "content": "You write workflows."},
        {"role": "user", "content": "Write solver(agent, task)."}]


# -- scripted ---------------------------------------------------------------------------------
def test_scripted_seeded_replies_are_stable_and_unseeded_cycle():
    agent = ScriptedMetaAgent(["a", "b", "c"])
    assert agent.generate(MSGS, 2, seed=4) == ["b", "c"]
    assert agent.generate(MSGS, 2, seed=4) == ["b", "c"]  # a restart reproduces it
    assert agent.generate(MSGS, 4) == ["a", "b", "c", "a"]
    with pytest.raises(W4SError, match="message 0"):
        agent.generate([{"role": "robot", "content": "x"}], 1)


def test_scripted_reply_files(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps(["x", "y"]))
    assert load_replies(tmp_path / "r.json") == ["x", "y"]
    (tmp_path / "r.jsonl").write_text('"x"\n{"text": "y"}\n')
    assert load_replies(tmp_path / "r.jsonl") == ["x", "y"]
    d = tmp_path / "dir"
    d.mkdir()
    (d / "a.py").write_text("def solver(agent, task):\n    return {'answer': 1}\n")
    (d / "b.txt").write_text("prose")
    got = load_replies(d)
    assert "```python\ndef solver" in got[0] and got[1] == "prose"
    with pytest.raises(ConfigError, match="not found"):
        load_replies(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="bad.json"):
        load_replies(tmp_path / "bad.json")


def test_seed_variants_edit_workflows_from_the_prompt():
    from w4s_ray.workflow.extract import extract_workflow

    code = ("def solver(agent, task):\n    r = agent.call_llm(messages=[{'role': 'user', "
            "'content': task}], temperature=0.7, num_of_response=3)\n    return {'answer': r[0]}\n")
    state = mdp.initial_state("gsm8k", "math", [mdp.ArchiveEntry("SC", code, 0.5, "fb")])
    msgs = build_messages(state, PromptSpec("math"))
    agent = SeedVariantsMetaAgent()
    outs = agent.generate(msgs, 5, seed=11)
    assert outs == agent.generate(msgs, 5, seed=11)
    codes = [extract_workflow(o) for o in outs]
    assert all("def solver(agent, task)" in c for c in codes)
    assert any(c != code for c in codes)
    import random
    new, what = mutate(code, random.Random(0))
    assert new != code and what


# -- litellm ----------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        n = body.get("n", 1)
        resp = {
            "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": i, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"reply {i}"}}
                        for i in range(min(n, 2))],  # a server that caps n at 2
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        }
        data = json.dumps(resp).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.fixture()
def openai_server():
    _Handler.requests = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


def test_litellm_backend_against_openai_compatible_server(openai_server):
    cfg = load_config(None, ["meta_agent.backend=litellm",
                             "meta_agent.model=openai/w4s-test-meta-agent",
                             f"meta_agent.api_base={openai_server}", "meta_agent.temperature=0.3",
                             "meta_agent.top_p=0.9", "meta_agent.max_tokens=77"])
    agent = make_meta_agent(cfg)
    out = agent.generate(MSGS, 3, seed=5)
    assert out == ["reply 0", "reply 1", "reply 0"]  # the third came from a follow-up call
    first = _Handler.requests[0]
    assert first["model"] == "w4s-test-meta-agent" and first["n"] == 3
    assert first["temperature"] == 0.3 and first["top_p"] == 0.9 and first["max_tokens"] == 77
    assert first["seed"] == 5 and _Handler.requests[1]["seed"] == 7
    assert first["messages"] == MSGS
    assert agent.usage.calls == 2 and agent.usage.prompt_tokens == 22
    assert agent.usage.cost_usd == 0.0  # unknown model registered at zero cost
    import litellm

    assert "openai/w4s-test-meta-agent" in litellm.model_cost


def test_litellm_backend_unreachable_server_is_executor_error():
    cfg = load_config(None, ["meta_agent.backend=litellm", "meta_agent.model=openai/nobody",
                             "meta_agent.api_base=http://127.0.0.1:9/v1",
                             "meta_agent.max_retries=0", "meta_agent.timeout_s=5"])
    with pytest.raises(ExecutorError, match="meta-agent openai/nobody"):
        make_meta_agent(cfg).generate(MSGS, 1)


def _api_meta(url: str, *extra: str):
    return load_config(None, ["meta_agent.backend=litellm", "meta_agent.model=openai/meta",
                              f"meta_agent.api_base={url}", "meta_agent.max_retries=0", *extra])


@pytest.mark.parametrize("mode, words", [
    ("401", ["401 authentication failed", "$OPENAI_API_KEY", "--set meta_agent.api_key_env"]),
    ("404", ["404", "does not exist", "--set meta_agent.model", "--set meta_agent.api_base"]),
])
def test_litellm_meta_agent_rejecting_every_call_is_fatal(fake_provider, monkeypatch, mode,
                                                          words):
    monkeypatch.setenv("OPENAI_API_KEY", KEY + "-wrong" if mode == "401" else KEY)
    fake = fake_provider("openai", mode=mode, served=("meta",))
    cfg = _api_meta(fake.url)
    for attempt in (lambda: preflight_meta_agent(cfg),
                    lambda: make_meta_agent(cfg).generate(MSGS, 2, seed=1)):
        with pytest.raises(MetaAgentFatal) as exc:
            attempt()
        msg = str(exc.value)
        assert msg.startswith(f"meta-agent openai/meta at {fake.url}: ") and "\n" not in msg
        assert all(w in msg for w in words), msg
        assert KEY not in msg


def test_litellm_meta_agent_preflight_is_one_cheap_uncounted_call(fake_provider, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    fake = fake_provider("openai", served=("meta",))
    cfg = _api_meta(fake.url, "meta_agent.max_tokens=900")
    preflight_meta_agent(cfg)
    (req,) = fake.chat_requests()
    assert req["body"]["max_tokens"] <= 16 and req["body"]["n"] == 1
    agent = make_meta_agent(cfg)
    assert agent.usage.calls == 0 and "def solver" in agent.generate(MSGS + [
        {"role": "user", "content": "def solver(agent, task): ..."}], 1)[0]


def test_litellm_meta_agent_per_request_error_is_not_fatal(fake_provider, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    fake = fake_provider("openai", mode="context", served=("meta",))
    with pytest.raises(ExecutorError, match="context too long") as exc:
        make_meta_agent(_api_meta(fake.url)).generate(MSGS, 1)
    assert not isinstance(exc.value, MetaAgentFatal)


# -- local transformers -----------------------------------------------------------------------
def _local_cfg(path, **kw):
    sets = {"meta_agent.backend": "local", "meta_agent.model": str(path),
            "meta_agent.max_tokens": 24, **kw}
    return load_config(None, [f"{k}={v}" for k, v in sets.items()])


def test_local_backend_samples_with_seeds(tiny_model_dir):
    agent = make_meta_agent(_local_cfg(tiny_model_dir))
    a = agent.generate(MSGS, 2, seed=3)
    assert len(a) == 2 and all(isinstance(t, str) for t in a)
    # sample i depends only on seed + i, not on n
    assert agent.generate(MSGS, 1, seed=4) == [a[1]]
    assert agent.generate(MSGS, 2, seed=3) == a
    assert agent.usage.completion_tokens > 0


def test_local_backend_fits_long_prompts_keeping_system_and_task(tiny_model_dir):
    agent = make_meta_agent(_local_cfg(tiny_model_dir))
    long = [{"role": "user", "content": "word " * 20000}]
    out = agent.generate(long, 1, seed=0)
    assert len(out) == 1 and agent.truncated_prompts == 1
    # A W4S-shaped chat: the oldest history goes, the system prompt, task and latest stay.
    chat = [{"role": "system", "content": "SYSTEMPROMPT"}, {"role": "user", "content": "THETASK"}]
    for k in range(40):
        chat += [{"role": "assistant", "content": f"OLDREPLY{k} " + "x " * 60},
                 {"role": "user", "content": f"FEEDBACK{k} " + "y " * 60}]
    ids = agent.encode(chat)
    text = agent.tokenizer.decode(ids)
    assert agent.truncated_prompts == 2
    assert len(ids) <= agent.model.config.max_position_embeddings - agent.reply_room
    assert "SYSTEMPROMPT" in text and "THETASK" in text and "FEEDBACK39" in text
    assert "OLDREPLY0 " not in text
    assert ids[-8:] == agent._ids(chat)[-8:]  # the generation prompt's end is intact


def test_local_backend_missing_model_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="meta_agent.model"):
        make_meta_agent(_local_cfg(tmp_path / "nope"))


@pytest.mark.ray
def test_local_backend_hosted_in_ray_actor(ray_session, tiny_model_dir):
    from w4s_ray.runtime.meta_agent_actor import RemoteMetaAgent, make_hosted_meta_agent, stop

    cfg = _local_cfg(tiny_model_dir, **{"meta_agent.num_cpus": 0.25})
    agent = make_hosted_meta_agent(cfg)
    try:
        assert isinstance(agent, RemoteMetaAgent)
        local = make_meta_agent(cfg)
        assert agent.generate(MSGS, 2, seed=9) == local.generate(MSGS, 2, seed=9)
    finally:
        stop(agent)


@pytest.mark.ray
def test_hosted_missing_model_is_config_error(ray_session, tmp_path):
    from w4s_ray.runtime.meta_agent_actor import make_hosted_meta_agent

    with pytest.raises(ConfigError, match="meta_agent.model"):
        make_hosted_meta_agent(_local_cfg(tmp_path / "nope"))
