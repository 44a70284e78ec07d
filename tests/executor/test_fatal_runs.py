"""An executor endpoint that rejects every call stops the run with one line (issue #14).

`w4s eval`, `w4s optimize`, `w4s collect` and `w4s sweep` against endpoints answering 401, 404
or naming a model no provider claims: exit 2 within seconds, one `w4s: error:` line naming
the endpoint, the model, the cause and what to change, before Ray starts and before the
meta-agent (a recording fake here) is asked anything. And when the endpoint breaks mid-run,
the run stops at once, keeps what it wrote, and `--resume` finishes it once fixed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.providers import KEY
from w4s_ray.cli import main

REPO = Path(__file__).resolve().parents[2]
WF = '''
def solver(agent, task):
    r = agent.call_json_format_llm(messages=[{"role": "user", "content": "# Your Task:\\n" + task}],
                                   return_dict_keys=["reasoning", "answer"], temperature=0.0)
    return {"answer": r[0]["answer"]}
'''


def _cases(fake_provider):
    """(name, executor --set args, words the error line must hold) per failing endpoint."""
    e401 = fake_provider("openai", mode="401", served=("gpt-4o-mini",))
    e404 = fake_provider("vllm", mode="404", served=("other-model",))
    return [
        ("401", ["executor.model=gpt-4o-mini", f"executor.api_base={e401.url}"],
         ["401", "authentication failed", "$OPENAI_API_KEY", e401.url, "gpt-4o-mini"]),
        ("404", ["executor.model=hosted_vllm/fake-model", f"executor.api_base={e404.url}"],
         ["404", "does not exist", "--set executor.model", e404.url]),
        ("provider", ["executor.model=claude-3-haiku-20240307", "executor.api_base=null"],
         ["cannot tell which provider", "anthropic/claude-3-haiku-20240307",
          "--set executor.api_base=URL"]),
    ]


def _meta_sets(meta) -> list[str]:
    return ["meta_agent.backend=litellm", "meta_agent.model=openai/meta",
            f"meta_agent.api_base={meta.url}"]


def _sets(items: list[str]) -> list[str]:
    return [a for s in items for a in ("--set", s)]


def _one_line(capsys, rc: int, words: list[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert err.count("\n") == 0 and err.startswith("w4s: error: "), err
    for w in words:
        assert w in err, (w, err)
    return err


@pytest.mark.parametrize("verb", ["eval", "optimize", "collect", "sweep"])
def test_failing_endpoint_stops_every_stage_before_it_starts(
        verb, fake_provider, tmp_path, capsys, monkeypatch):
    import ray

    ray_was_up = ray.is_initialized()  # (a session Ray of other tests may be running)
    monkeypatch.setenv("OPENAI_API_KEY", KEY + "-wrong")
    meta = fake_provider("openai", served=("meta",))
    wf = tmp_path / "wf.py"
    wf.write_text(WF)
    for name, executor, words in _cases(fake_provider):
        run_dir = tmp_path / f"{verb}-{name}"
        common = _sets([*executor, *_meta_sets(meta), f"run_dir={run_dir}",
                        "executor.max_retries=1", "rlao.turns=1", "eval.limit=2"])
        argv = {
            "eval": ["eval", "--workflow", str(wf), "--benchmark", "gsm8k"],
            "optimize": ["optimize", "--benchmark", "gsm8k"],
            "collect": ["collect", "--benchmarks", "gsm8k,svamp"],
            "sweep": ["sweep", "--benchmarks", "gsm8k,svamp"],
        }[verb]
        t0 = time.monotonic()
        rc = main([*argv, *common])
        _one_line(capsys, rc, words)
        assert time.monotonic() - t0 < 30  # seconds, on a loaded 2-core box
        assert ray.is_initialized() == ray_was_up  # stopped before Ray started
    assert meta.requests == []  # no meta-agent call was made


def test_missing_meta_agent_checkpoint_is_one_line_before_ray(tmp_path, capsys, sim_server):
    import ray

    ray_was_up = ray.is_initialized()
    rc = main(["optimize", "--benchmark", "gsm8k", "--set", f"run_dir={tmp_path}",
               "--set", f"executor.api_base={sim_server.url}"])  # default: local backend
    err = _one_line(capsys, rc, ["meta_agent.model runs/tiny-meta-agent/model",
                                 "no such model directory", "make demo"])
    assert "runs/demo/train/model" in err and ray.is_initialized() == ray_was_up


def test_cli_subprocess_prints_one_line_and_no_traceback(fake_provider, tmp_path):
    bad = fake_provider("anthropic", mode="401")
    env = dict(os.environ, ANTHROPIC_API_KEY="sk-ant-wrong-0000000000")
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "w4s_ray", "optimize", "--benchmark", "gsm8k",
         *_sets(["executor.model=anthropic/claude-haiku-4-5", f"executor.api_base={bad.url}",
                 "meta_agent.backend=scripted", "meta_agent.model=seed-variants",
                 f"run_dir={tmp_path / 'r'}"])],
        cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0, out.stderr
    assert out.stderr.startswith("w4s: error: executor anthropic/claude-haiku-4-5 at "
                                 f"{bad.url}: HTTP 401")
    assert "$ANTHROPIC_API_KEY" in out.stderr and "sk-ant-wrong" not in out.stderr
    assert time.monotonic() - t0 < 90 and not (tmp_path / "r").exists()


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_endpoint_breaking_mid_run_stops_it_and_resume_finishes(fake_provider, tmp_path, capsys,
                                                                monkeypatch, umask_022):
    """Seeds and a first turn succeed, then the key is revoked (401): the run stops with one
    line at once, the completed work stays on disk, and `--resume` completes it. (The key is
    in a file: evaluator actors of a Ray started earlier do not see env vars set now.)"""
    key_file = tmp_path / "key"
    key_file.write_text(KEY)
    ex = fake_provider("openai", served=("gpt-4o-mini",), fail_after=16)
    run_dir = tmp_path / "opt"
    argv = ["optimize", "--benchmark", "gsm8k", "--no-progress", *_sets([
        "executor.model=gpt-4o-mini", f"executor.api_base={ex.url}", "executor.max_retries=1",
        f"executor.api_key_file={key_file}",
        f"executor.cache.path={tmp_path / 'c.sqlite'}", "meta_agent.backend=scripted",
        "meta_agent.model=seed-variants", f"run_dir={tmp_path}", "eval.limit=3",
        "rlao.turns=3", "rlao.candidates=2", "rlao.test_limit=3", "rlao.max_repairs=0",
        "rlao.report_seed_test=false", "eval.num_evaluators=1"]), "--run-dir", str(run_dir)]
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("w4s: error: executor gpt-4o-mini at "), err
    assert "401" in err[-1] and not any("Traceback" in ln for ln in err)
    assert (run_dir / "config.yaml").exists() and (run_dir / "seeds" / "gsm8k.json").exists()
    cost = json.loads((run_dir / "cost.json").read_text())
    parts = sorted((run_dir / "trajectories").glob("part-*.parquet"))
    assert parts and not (run_dir / "final.json").exists()
    ex.mode, ex.fail_after = "gold", None  # the key is fixed
    assert main([*argv, "--resume"]) == 0
    final = json.loads((run_dir / "final.json").read_text())
    assert final["turns"] == 3 and final["simulated"] is False
    resumed = sorted((run_dir / "trajectories").glob("part-*.parquet"))
    assert resumed[: len(parts)] == parts and len(resumed) == 3
    assert cost["total_usd"] <= final["dollars"]
    # Results, reports and trajectories are readable by others (the umask's 0644), not 0600.
    modes = {p.relative_to(run_dir).as_posix(): p.stat().st_mode & 0o777
             for p in run_dir.rglob("*") if p.is_file()}
    assert modes["final.json"] == modes["report.md"] == modes["cost.json"] == 0o644
    assert all(m & 0o044 == 0o044 for m in modes.values()), modes
