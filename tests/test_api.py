"""The Python API (`import w4s_ray as w4s`): cheap import, config building, callable stage
names, in-process evaluation with per-item results, and the docs/API.md notebook run as is
against the simulator (slow)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import w4s_ray as w4s
from w4s_ray.config import ExperimentConfig
from w4s_ray.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent

COT = '''
def solver(agent, task):
    replies = agent.call_llm(messages=[{"role": "user", "content": "Solve step by step and end "
                                        "with 'The answer is N'.\\n" + task}], temperature=0.0)
    return replies[0]
'''


def test_import_is_cheap_and_names_resolve_lazily():
    code = ("import sys, w4s_ray as w4s\n"
            "assert 'ray' not in sys.modules and 'litellm' not in sys.modules\n"
            "f = w4s.optimize; c = w4s.config(overrides={'eval.limit': 3})\n"
            "assert 'ray' not in sys.modules and 'litellm' not in sys.modules, 'eager'\n"
            "assert callable(w4s.train) and callable(w4s.sweep) and w4s.eval is w4s.evaluate\n"
            "print(c.eval.limit)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "3"


def test_config_takes_objects_paths_dicts_and_overrides():
    base = w4s.config()
    assert isinstance(base, ExperimentConfig)
    cfg = w4s.config(base, {"eval.limit": 5, "rlao": {"turns": 1}})
    assert cfg.eval.limit == 5 and cfg.rlao.turns == 1
    # a section given as a dict merges: its other fields keep their values
    assert cfg.rlao.candidates == base.rlao.candidates
    assert base.eval.limit is None and base.rlao.turns == 10  # the input is not changed
    assert w4s.config(base, ["eval.limit=7"]).eval.limit == 7
    assert w4s.config("demo", {"eval.limit": 2}).eval.limit == 2
    assert w4s.config({"benchmark": "svamp"}).benchmark == "svamp"
    with pytest.raises(ConfigError, match=r"override eval\.limit: eval\.limit: .*-1"):
        w4s.config(overrides={"eval.limit": -1})
    with pytest.raises(ConfigError, match="unknown key 'eval.nope'"):
        w4s.config(overrides={"eval.nope": 1})
    with pytest.raises(ConfigError, match="config dict: unknown key 'bogus'"):
        w4s.config({"bogus": 1})
    with pytest.raises(ConfigError, match="expected an ExperimentConfig"):
        w4s.config(42)


def test_stage_subpackages_stay_modules_and_call_the_stage(tmp_path):
    import w4s_ray.sweep.layout
    import w4s_ray.train.loss  # noqa: F401 - the subpackage is imported: still callable

    assert w4s.train.loss.__name__ == "w4s_ray.train.loss"
    assert w4s.sweep.layout is w4s_ray.sweep.layout
    with pytest.raises(ConfigError, match="no benchmark names"):
        w4s.sweep(overrides={"run_dir": str(tmp_path)}, benchmarks=" , ")
    with pytest.raises(ConfigError, match="unknown benchmark"):
        w4s.optimize(benchmark="nosuch", run_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def _sim_cfg(sim, tmp_path, **over):
    return w4s.config(overrides={"executor.api_base": sim.url,
                                 "executor.cache.path": str(tmp_path / "cache.sqlite"),
                                 "eval.num_evaluators": 1, **over})


def test_a_workflow_file_whose_strings_hold_fences_is_read_as_python(tmp_path):
    from w4s_ray.workflow.errors import WorkflowError

    code = ('def solver(agent, task):\n'
            '    note = "reply as ```json {\\"answer\\": ...}``` please"\n'
            '    return {"answer": note}\n')
    (tmp_path / "wf.py").write_text(code)
    assert w4s.read_workflow(tmp_path / "wf.py") == code
    # The same text saved as a reply file is Python too; a real reply is still extracted.
    (tmp_path / "wf.txt").write_text(code)
    assert w4s.read_workflow(tmp_path / "wf.txt") == code
    (tmp_path / "reply.md").write_text(f"Here it is:\n```python\n{code}```\nDone.")
    assert w4s.read_workflow(tmp_path / "reply.md").strip() == code.strip()
    (tmp_path / "bad.py").write_text("def solver(agent):\n    '```'\n")
    with pytest.raises(WorkflowError, match="bad.py: solver must take"):
        w4s.read_workflow(tmp_path / "bad.py")


def test_evaluate_returns_per_item_results(sim_server, tmp_path):
    cfg = _sim_cfg(sim_server, tmp_path)
    res = w4s.evaluate(COT, cfg, benchmark="gsm8k", split="valid", limit=3, progress=False)
    assert res.n == 3 and len(res.item_ids) == len(res.scores) == len(res.answers) == 3
    assert all(s in (0.0, 1.0) for s in res.scores) and res.accuracy == sum(res.scores) / 3
    assert res.calls >= 3 and res.error is None
    path = tmp_path / "wf.py"
    path.write_text(COT)
    again = w4s.evaluate(path, cfg, benchmark="gsm8k", limit=3, progress=False)
    assert again.scores == res.scores and again.cache_hits >= 3  # same items, answered from cache


async def test_evaluate_inside_a_running_event_loop(sim_server, tmp_path):
    # A notebook cell runs inside an event loop; evaluate must not call asyncio.run on it.
    asyncio.get_running_loop()
    res = w4s.evaluate(COT, _sim_cfg(sim_server, tmp_path), benchmark="gsm8k", limit=2,
                       progress=False)
    assert res.n == 2


def api_example() -> str:
    text = (REPO / "docs" / "API.md").read_text(encoding="utf-8")
    section = text.split("<!-- api-example:start -->", 1)[1].split("<!-- api-example:end -->")[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) >= 4, "the API example lost its cells"
    return "\n".join(blocks)


@pytest.mark.slow
def test_the_api_doc_example_runs(tmp_path):
    """docs/API.md's notebook cells, unchanged, in a fresh interpreter (own Ray, own sim)."""
    script = tmp_path / "notebook.py"
    script.write_text(api_example(), encoding="utf-8")
    env = dict(os.environ, HOME=str(tmp_path))  # the completion cache under ~ stays in tmp
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err[-4000:]
    lines = out.splitlines()
    m = re.match(r"chose (\S+): valid ([\d.]+), test ([\d.]+) on 8 items, \$([\d.]+)", lines[0])
    assert m, out
    assert 0 <= float(m.group(2)) <= 1 and 0 <= float(m.group(3)) <= 1 and float(m.group(4)) > 0
    run = tmp_path / "runs" / "notebook"
    assert (run / "optimize" / "gsm8k" / "final.json").exists()
    assert (run / "collect" / "trajectories").is_dir()
    assert (run / "sweep_report.md").exists()
    assert "w4s_test" in out and "svamp" in out
