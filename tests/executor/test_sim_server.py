"""The simulator over HTTP: protocol, usage, faults, start-up and the real benchmark data."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.fixtures.sim import SYNTHETIC_ITEMS


def post(url: str, body: dict) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url + "/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_openai_shape_and_real_token_usage(sim_server):
    import tiktoken

    msgs = [{"role": "user", "content": SYNTHETIC_ITEMS[0]["question"]}]
    status, _, raw = post(sim_server.url, {"model": "sim-gpt-4o-mini", "messages": msgs, "n": 2,
                                           "temperature": 0.5, "seed": 1})
    body = json.loads(raw)
    assert status == 200 and body["object"] == "chat.completion"
    assert [c["index"] for c in body["choices"]] == [0, 1]
    enc = tiktoken.get_encoding("cl100k_base")
    texts = [c["message"]["content"] for c in body["choices"]]
    assert body["usage"]["completion_tokens"] == sum(len(enc.encode(t)) for t in texts)
    assert body["usage"]["prompt_tokens"] >= len(enc.encode(msgs[0]["content"]))
    assert sim_server.get("/health")["token_counter"] == "tiktoken-cl100k_base"
    models = sim_server.get("/v1/models")["data"]
    assert {"sim-gpt-4o-mini", "sim-gpt-3.5-turbo", "sim-gpt-4o"} <= {m["id"] for m in models}


def test_max_tokens_truncates_with_length_finish(sim_server):
    msgs = [{"role": "user", "content": SYNTHETIC_ITEMS[0]["question"] + " Think step by step."}]
    _, _, raw = post(sim_server.url, {"model": "sim-gpt-4o-mini", "messages": msgs, "max_tokens": 5})
    body = json.loads(raw)
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 5


def test_simulator_says_what_it_is_and_refuses_real_model_names(sim_server):
    """No client can mistake the simulator for a real model: a header on every reply, its
    /v1/models entries, and a 404 for a real model's name (issue #14)."""
    from w4s_ray.executor.sim.server import SIM_TAG

    msgs = [{"role": "user", "content": "hi"}]
    status, headers, _ = post(sim_server.url, {"model": "openai/sim-gpt-4o", "messages": msgs})
    assert status == 200 and headers.get("X-W4S-Simulator") == SIM_TAG
    models = sim_server.get("/v1/models")["data"]
    assert {m["owned_by"] for m in models} == {"w4s-sim"}
    status, headers, raw = post(sim_server.url, {"model": "gpt-4o-mini", "messages": msgs})
    err = json.loads(raw)["error"]
    assert status == 404 and err["type"] == "model_not_found"
    assert "gpt-4o-mini" in err["message"] and "simulator" in err["message"]
    assert headers.get("X-W4S-Simulator") == SIM_TAG


def test_bad_request_is_400(sim_server):
    status, _, raw = post(sim_server.url, {"model": "sim-gpt-4o-mini", "messages": []})
    assert status == 400 and "messages" in json.loads(raw)["error"]["message"]


def test_faults_are_deterministic_under_seed(sim_factory):
    def sequence(seed: int) -> list[int]:
        h = sim_factory(rate_429=0.2, rate_500=0.2, seed=seed, retry_after_s=0.5, latency="none")
        msgs = [{"role": "user", "content": "hi"}]
        out = []
        for _ in range(30):
            status, headers, _ = post(h.url, {"model": "sim-gpt-4o-mini", "messages": msgs})
            out.append(status)
            if status == 429:
                assert headers.get("Retry-After") == "0.5"
        return out

    a = sequence(1)
    assert a == sequence(1)
    assert a != sequence(2)
    assert {200, 429, 500} <= set(a)


def test_malformed_and_hang_faults(sim_factory):
    h = sim_factory(rate_malformed=1.0, latency="none")
    status, _, raw = post(h.url, {"model": "sim-gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    hang = sim_factory(rate_hang=1.0, hang_s=30.0, latency="none")
    req = urllib.request.Request(hang.url + "/chat/completions", headers={"Content-Type": "application/json"},
                                 data=json.dumps({"model": "sim-gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode())
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        urllib.request.urlopen(req, timeout=0.5)
    assert hang.stats()["fault_hang"] == 1


def test_starts_fast_on_the_full_benchmark_data(data_dir):
    """With the real data directory (via the benchmark API) it listens within 5 s."""
    pytest.importorskip("w4s_ray.benchmarks", reason="benchmark package not present yet")
    from w4s_ray.config import SimConfig
    from w4s_ray.executor.sim.launch import start_sim

    with start_sim(SimConfig(latency="none"), data_dir=data_dir, startup_timeout_s=120) as h:
        assert h.listen_s < 5.0  # the index builds in the background after this
        health = h.get("/health")
        assert health["index_error"] is None
        assert health["items"] > 5000
        # A real item from the benchmark API is recognised and answered in its format.
        from w4s_ray.benchmarks import get_benchmark

        item = get_benchmark("mmlu_pro", data_dir=data_dir).load("valid")[0]
        status, _, raw = post(h.url, {"model": "sim-gpt-4o", "n": 20, "temperature": 1.0,
                                      "messages": [{"role": "user", "content": item.question}]})
        letters = [json.loads(raw)["choices"][j]["message"]["content"].rsplit("Answer: ", 1)[1]
                   for j in range(20)]
        assert status == 200 and item.answer in letters
