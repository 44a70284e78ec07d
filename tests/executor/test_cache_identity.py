"""A cached answer is reused only for the endpoint that gave it (issue #14).

The completion cache is machine-wide by default, so the trap was: run the simulator, then a
real server with the same model name, and get the simulator's answers back from the cache.
Here the simulator runs, then a server that answers every question wrongly takes over the
SAME port, with the same cache file and the same model name: no answer may come from the
cache, and the accuracy must be the wrong server's (0), not the simulator's.
"""

from __future__ import annotations

import json
import socket

import pytest

from tests.fixtures.providers import KEY, FakeProvider
from w4s_ray.cli import main
from w4s_ray.config import CacheConfig, ExecutorConfig, SimConfig
from w4s_ray.errors import ExecutorFatal
from w4s_ray.executor.client import ExecutorClient

WF = '''
def solver(agent, task):
    r = agent.call_json_format_llm(messages=[{"role": "user", "content": "# Your Task:\\n" + task}],
                                   return_dict_keys=["reasoning", "answer"], temperature=0.0,
                                   instructions="Think step by step.")
    return {"answer": r[0]["answer"]}
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _eval(capsys, wf, url: str, cache, *extra: str) -> dict:
    rc = main(["eval", "--workflow", str(wf), "--benchmark", "gsm8k", "--limit", "6", "--json",
               "--set", f"executor.api_base={url}", "--set", f"executor.cache.path={cache}",
               "--set", "executor.max_retries=1", *extra])
    out = capsys.readouterr().out
    assert rc == 0, out
    return json.loads(out)


def test_simulator_then_a_wrong_server_on_the_same_port_share_nothing(
        tmp_path, capsys, sim_items_file, gsm8k_answers):
    from w4s_ray.executor.sim.launch import start_sim

    wf = tmp_path / "wf.py"
    wf.write_text(WF)
    cache = tmp_path / "completions.sqlite"
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1"
    sim = start_sim(SimConfig(latency="none"), items_file=sim_items_file, port=port)
    try:
        first = _eval(capsys, wf, url, cache)
        again = _eval(capsys, wf, url, cache)
    finally:
        sim.stop()
    assert first["simulated"] is True and first["accuracy"] > 0 and first["cache_hits"] == 0
    assert again["cache_hits"] == 6 and again["scores"] == first["scores"]  # same endpoint: reused
    assert again["cached_usd"] == pytest.approx(first["cost_usd"]) and again["cost_usd"] == 0

    wrong = FakeProvider("vllm", "wrong", gsm8k_answers, served=("sim-gpt-4o-mini",), port=port)
    try:
        other = _eval(capsys, wf, url, cache)  # same URL, same model name, same cache file
    finally:
        wrong.stop()
    assert other["simulated"] is False
    assert other["cache_hits"] == 0 and other["accuracy"] == 0.0 and other["errors"] == {}
    assert len(wrong.chat_requests()) == 1 + 6  # the preflight, then every item asked


async def test_same_model_name_at_two_endpoints(fake_provider, tmp_path, gsm8k_answers,
                                                monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    right = fake_provider("openai", "gold", served=("gpt-4o-mini",))
    wrong = fake_provider("openai", "wrong", served=("gpt-4o-mini",))
    q = next(iter(gsm8k_answers))
    msgs = [{"role": "user", "content": q}]

    def client(url: str) -> ExecutorClient:
        return ExecutorClient(ExecutorConfig(model="gpt-4o-mini", api_base=url,
                                             cache=CacheConfig(path=str(tmp_path / "c.sqlite"))))

    a = await client(right.url).chat(msgs)
    b = await client(wrong.url).chat(msgs)
    assert a.texts != b.texts and b.cached == [False]
    assert (await client(right.url).chat(msgs)).cached == [True]


def test_a_real_model_name_at_the_simulator_is_refused(tmp_path, capsys, sim_server):
    """The README's old `--set executor.model=gpt-4o-mini` with api_base still at the
    simulator gave simulated answers priced as the real model; now: one line, no run."""
    wf = tmp_path / "wf.py"
    wf.write_text(WF)
    rc = main(["eval", "--workflow", str(wf), "--benchmark", "gsm8k", "--limit", "2",
               "--set", f"executor.api_base={sim_server.url}",
               "--set", "executor.model=gpt-4o-mini"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and err.startswith("w4s: error: ")
    assert "is the w4s simulator" in err and "not gpt-4o-mini" in err
    assert "--set executor.api_base=null" in err
    assert "--set executor.model=openai/sim-gpt-4o-mini" in err


async def test_a_server_swapped_mid_run_stops_the_run(tmp_path, sim_items_file, gsm8k_answers):
    """The identity is learnt once per client; if the simulator's URL starts answering as
    another server (no simulator header), nothing more is cached under the old identity."""
    from w4s_ray.executor.sim.launch import start_sim

    port = _free_port()
    sim = start_sim(SimConfig(latency="none"), items_file=sim_items_file, port=port)
    c = ExecutorClient(ExecutorConfig(api_base=f"http://127.0.0.1:{port}/v1", max_retries=1,
                                      retry_base_delay_s=0.01,
                                      cache=CacheConfig(path=str(tmp_path / "c.sqlite"))))
    try:
        await c.chat([{"role": "user", "content": "hi"}])
    finally:
        sim.stop()
    assert c.simulated is True
    other = FakeProvider("vllm", "gold", gsm8k_answers, served=("sim-gpt-4o-mini",), port=port)
    try:
        with pytest.raises(ExecutorFatal, match="server behind the URL changed"):
            await c.chat([{"role": "user", "content": "hello"}])
    finally:
        other.stop()
    assert len(c.cache) == 1
