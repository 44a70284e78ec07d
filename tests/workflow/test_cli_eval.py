"""`w4s eval`: a summary or one JSON object; bad input is one error line and a non-zero exit."""

from __future__ import annotations

import json
import socket

import pytest

from w4s_ray.cli import main

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


def _one_error_line(capsys, rc, *needles):
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.count("\n") == 0 and err.startswith("w4s: error: "), err
    for n in needles:
        assert n in err
    return err


def test_file_without_solver(tmp_path, capsys):
    f = tmp_path / "wf.py"
    f.write_text("def solve(agent, task):\n    return {}\n")
    rc = main(["eval", "--workflow", str(f), "--benchmark", "gsm8k"])
    _one_error_line(capsys, rc, "no function named solver", str(f))


def test_missing_file(tmp_path, capsys):
    rc = main(["eval", "--workflow", str(tmp_path / "nope.py"), "--benchmark", "gsm8k"])
    _one_error_line(capsys, rc, "workflow file not found")


def test_unknown_benchmark(tmp_path, capsys):
    f = tmp_path / "wf.py"
    f.write_text(WF)
    rc = main(["eval", "--workflow", str(f), "--benchmark", "nosuchbench"])
    _one_error_line(capsys, rc, "unknown benchmark 'nosuchbench'")


def test_simulator_down(tmp_path, capsys):
    f = tmp_path / "wf.py"
    f.write_text(WF)
    url = f"http://127.0.0.1:{_free_port()}/v1"
    rc = main(["eval", "--workflow", str(f), "--benchmark", "gsm8k", "--limit", "2",
               "--set", f"executor.api_base={url}"])
    _one_error_line(capsys, rc, "cannot reach executor at", url, "w4s sim serve")


@pytest.mark.slow
def test_json_and_summary_on_the_simulator(tmp_path, capsys, wf_sim):
    f = tmp_path / "reply.md"
    f.write_text(f"Here is my workflow:\n```python\n{WF}```\n")
    common = ["--workflow", str(f), "--benchmark", "gsm8k", "--limit", "4",
              "--set", f"executor.api_base={wf_sim.url}",
              "--set", f"executor.cache.path={tmp_path / 'c.sqlite'}"]
    rc = main(["eval", *common, "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    data = json.loads(out)
    assert data["n"] == 4 and data["calls"] == 4 and data["errors"] == {}
    assert data["scoring"] == "official"
    assert 0.0 <= data["accuracy"] <= 1.0 and data["cost_usd"] > 0
    rc = main(["eval", *common])
    text = capsys.readouterr().out
    assert rc == 0 and "| accuracy |" in text and "4 cached samples" in text
    assert "| scoring | official |" in text
    rc = main(["eval", *common, "--json", "--set", "eval.scoring=lenient"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["scoring"] == "lenient"
