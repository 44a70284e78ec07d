"""Your own benchmarks and seeds (`include`, `--include`, entry points): loaded in the driver,
in processes that only inherit $W4S_INCLUDE (what a Ray worker gets), from a shipped copy when
the directory is not there, and optimized through Ray from a temp directory (slow).

Every load happens in a child process: a registered benchmark stays for the life of a process,
and this test session's registry must keep only the built-in ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

BENCH = '''
import json
from pathlib import Path

from w4s_ray.benchmarks import Item, register_benchmark
from w4s_ray.benchmarks.base import NumericBenchmark

HERE = Path(__file__).parent


@register_benchmark(aliases=("tinyarith",))
class TinyArith(NumericBenchmark):
    name = "tiny_arith"
    files = ()
    split_sizes = {"valid": 6, "test": 6}
    source = "twelve generated word problems (a test plugin)"
    task_description = "Short word problems that add or subtract whole numbers."

    def build(self, data_dir):
        rows = [json.loads(line) for line in (HERE / "items.jsonl").read_text().splitlines()]
        items = [Item(r["id"], r["question"], r["answer"], {"gold_value": float(r["answer"])})
                 for r in rows]
        return {"valid": items[:6], "test": items[6:]}
'''

SEEDS = '''
from pathlib import Path

from w4s_ray.benchmarks import register_seed_workflow

register_seed_workflow("tinyarith", "direct", Path(__file__).parent / "workflows" / "direct.py")
'''

DIRECT = '''
def solver(agent, task):
    replies = agent.call_llm(messages=[{"role": "user", "content": task}], temperature=0.0)
    return replies[0]
'''

NAMES = ["Mia", "Omar", "Lena", "Ravi", "Sofia", "Tom", "Aiko", "Ben", "Chloe", "Dev", "Eva",
         "Finn"]


def plugin_items() -> list[dict]:
    out = []
    for i, who in enumerate(NAMES):
        a, b = 10 + 3 * i, 4 + i
        out.append({"id": f"ta-{i}", "answer": str(a + b),
                    "question": f"{who} has {a} red marbles in a jar and then buys {b} more "
                                f"marbles at the corner store. How many marbles does {who} "
                                "have now?"})
    return out


def make_plugin(root: Path, name: str = "my_benchmarks") -> Path:
    d = root / name
    (d / "workflows").mkdir(parents=True)
    (d / "tiny_arith.py").write_text(BENCH)
    (d / "seeds.py").write_text(SEEDS)
    (d / "workflows" / "direct.py").write_text(DIRECT)
    (d / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in plugin_items()))
    return d


def run_py(code: str, env_extra: dict | None = None, cwd: Path = REPO):
    env = {k: v for k, v in os.environ.items() if k != "W4S_INCLUDE"}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=180, env=env, cwd=cwd)


def w4s(args: list[str], **kw):
    env = {k: v for k, v in os.environ.items() if k != "W4S_INCLUDE"}
    return subprocess.run([sys.executable, "-m", "w4s_ray", *args], capture_output=True,
                          text=True, timeout=kw.pop("timeout", 180), env=env, **kw)


CHECK = '''
    import json, os
    from w4s_ray.benchmarks import get_benchmark, list_benchmarks
    bm = get_benchmark("tiny_arith")
    seeds = bm.seed_workflows()
    items = bm.load("valid")
    print(json.dumps({"last": list_benchmarks()[-1], "seeds": sorted(seeds),
                      "n": [len(items), len(bm.load("test"))],
                      "score": bm.score(items[0], "The answer is " + items[0].answer),
                      "module": type(bm).__module__}))
'''


def test_include_registers_benchmark_and_seeds(tmp_path):
    d = make_plugin(tmp_path)
    proc = run_py(f'''
    from w4s_ray.benchmarks import load_includes
    from w4s_ray.benchmarks.plugins import runtime_env
    load_includes([{str(d)!r}])
    load_includes([{str(d)!r}])  # twice: a no-op, not "registered twice"
    env = runtime_env(ship=True)
    assert env["py_modules"] == [{str(d)!r}], env
    assert json.loads(env["env_vars"]["W4S_INCLUDE"]) == [{{"name": "my_benchmarks",
                                                          "path": {str(d)!r}}}]
    ''' .replace("from w4s_ray.benchmarks import load_includes",
                 "import json\n    from w4s_ray.benchmarks import load_includes") + CHECK)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out == {"last": "tiny_arith", "seeds": ["code_generation", "cot", "cot_sc", "direct"],
                   "n": [6, 6], "score": 1.0, "module": "my_benchmarks.tiny_arith"}


def test_a_worker_loads_what_the_driver_exported(tmp_path):
    """A Ray worker gets only $W4S_INCLUDE: by path where the directory exists, else the copy
    Ray shipped (py_modules puts it on sys.path under its name)."""
    d = make_plugin(tmp_path)
    here = json.dumps([{"name": "my_benchmarks", "path": str(d)}])
    proc = run_py(CHECK, {"W4S_INCLUDE": here})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["seeds"][-1] == "direct"
    shipped = json.dumps([{"name": "my_benchmarks", "path": "/nonexistent/my_benchmarks"}])
    proc = run_py(CHECK, {"W4S_INCLUDE": shipped, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["module"] == "my_benchmarks.tiny_arith"


def test_an_installed_entry_point_is_found(tmp_path):
    site = tmp_path / "site"
    make_plugin(site, "ep_benchmarks")
    dist = site / "ep_benchmarks-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-benchmarks\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[w4s_ray.benchmarks]\ntiny = ep_benchmarks.tiny_arith\nseeds = ep_benchmarks.seeds\n")
    proc = run_py(CHECK, {"PYTHONPATH": str(site)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["module"] == "ep_benchmarks.tiny_arith"


@pytest.mark.parametrize("setup, error", [
    (lambda t: str(t / "missing"), "no such directory"),
    (lambda t: (t / "f.py").write_text("x = 1\n") and str(t / "f.py"), "not a directory"),
    (lambda t: (t / "my-benchmarks").mkdir() or str(t / "my-benchmarks"),
     "must be a Python identifier"),
    (lambda t: (t / "colorsys").mkdir() or str(t / "colorsys"), "would shadow an installed module"),
    (lambda t: ((t / "broken").mkdir(), (t / "broken" / "b.py").write_text(
        "raise RuntimeError('boom')\n"))[0] or str(t / "broken"),
     "importing failed: RuntimeError: boom"),
    (lambda t: "no_such_module_w4s", "no module named 'no_such_module_w4s'"),
])
def test_a_bad_include_is_one_error_line(tmp_path, setup, error):
    spec = setup(tmp_path)
    proc = w4s(["optimize", "-b", "gsm8k", "--include", spec, "--run-dir",
                str(tmp_path / "run")])
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith(f"w4s: error: include {spec}") and error in lines[0], lines[0]
    assert not (tmp_path / "run").exists()


def test_a_seed_that_is_not_a_workflow_is_refused(tmp_path):
    d = make_plugin(tmp_path)
    (d / "workflows" / "direct.py").write_text("def solve(task):\n    return task\n")
    proc = w4s(["optimize", "-b", "gsm8k", "--include", str(d), "--run-dir",
                str(tmp_path / "run")])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "seed workflow 'direct' for tinyarith: source does not define solver" in proc.stderr


@pytest.mark.slow
def test_optimize_a_benchmark_from_a_temp_dir_through_ray(tmp_path):
    from w4s_ray.config import SimConfig
    from w4s_ray.executor.sim.launch import start_sim

    d = make_plugin(tmp_path)
    items = tmp_path / "sim_items.jsonl"
    items.write_text("".join(json.dumps({"benchmark": "tiny_arith", "kind": "math", **r}) + "\n"
                             for r in plugin_items()))
    run = tmp_path / "run"
    with start_sim(SimConfig(latency="none"), items_file=items) as sim:
        sets = {"executor.api_base": sim.url, "executor.cache.path": tmp_path / "c.sqlite",
                "meta_agent.backend": "scripted", "meta_agent.model": "seed-variants",
                "eval.num_evaluators": 1, "rlao.candidates": 2, "rlao.turns": 1,
                "rlao.report_seed_test": False}
        args = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
        proc = w4s(["optimize", "-b", "tiny_arith", "--include", str(d), "--run-dir", str(run),
                    "--no-progress", *args], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = json.loads((run / "final.json").read_text())
    assert final["benchmark"] == "tiny_arith" and final["test_n"] == 6
    assert "direct" in final["seed_baselines"]
    # the simulator knows these items: evaluator actors scored real answers, not load errors
    assert final["valid_accuracy"] > 0 and final["test_accuracy"] is not None
    assert (run / "report.md").exists()
