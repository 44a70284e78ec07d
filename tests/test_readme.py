"""The README's "Using real models" commands, run as written against fake provider servers.

Each `w4s ...` command of that section is taken from README.md itself and run as a fresh
process (its own Ray, as a user's shell would start it) in a fresh directory where
`runs/demo/train/model` is a tiny model (what `make demo` leaves there). The
fakes stand in for the providers through the same environment variables litellm reads
(`OPENAI_BASE_URL`, `ANTHROPIC_API_BASE`) plus the provider's key variable; the local-server
example's fixed URL is the one thing replaced (tests never bind fixed ports). Test-size
overrides are appended (`--set` later wins): one turn, one candidate, three items.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.providers import KEY

REPO = Path(__file__).resolve().parent.parent
SMALL = ["rlao.turns=1", "rlao.candidates=1", "eval.limit=3", "rlao.test_limit=3",
         "rlao.report_seed_test=false", "eval.num_evaluators=1", "rlao.max_repairs=0",
         "meta_agent.max_tokens=48", "executor.max_retries=1",
         # A 48-token reply never holds a working workflow: under the default w4s protocol the
         # turn would be re-sampled three times and the run stop (by design, rlao.w4s
         # TurnFailed); these tests are about the providers, so the turn may pass without one.
         "rlao.protocol=w4s-ray"]


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Using real models", 1)[1].split("\n## ", 1)[0]
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        joined = block.replace("\\\n", " ")
        cmds += [ln.strip() for ln in joined.splitlines() if ln.strip().startswith("w4s ")]
    return cmds


def test_the_section_has_the_four_examples():
    cmds = readme_commands()
    assert len(cmds) == 4
    assert "executor.model=gpt-4o-mini" in cmds[0] and "meta_agent.model=runs/demo" in cmds[0]
    assert "anthropic/" in cmds[1]
    assert "executor.api_base=http://127.0.0.1:8001/v1" in cmds[2]
    assert "meta_agent.backend=litellm" in cmds[3]


# Each run is a fresh process with its own Ray (~35 s here): the OpenAI and Anthropic examples
# run in `make test`; the local-server and API-meta-agent ones in `make test-slow`.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("index", [
    pytest.param(0, id="openai"), pytest.param(1, id="anthropic"),
    pytest.param(2, id="vllm", marks=pytest.mark.slow),
    pytest.param(3, id="api-meta", marks=pytest.mark.slow)])
def test_readme_example_runs_against_the_fakes(index, fake_provider, tiny_model_dir, tmp_path):
    cmd = readme_commands()[index]
    env = {k: v for k, v in os.environ.items() if k not in (
        "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE",
        "ANTHROPIC_API_BASE", "RAY_ADDRESS")}
    (tmp_path / "runs" / "demo" / "train").mkdir(parents=True)
    (tmp_path / "runs" / "demo" / "train" / "model").symlink_to(tiny_model_dir)
    if index in (0, 3):
        fake = fake_provider("openai", served=("gpt-4o-mini",))
        env.update(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=fake.url)
    elif index == 1:
        fake = fake_provider("anthropic")
        env.update(ANTHROPIC_API_KEY=KEY, ANTHROPIC_API_BASE=fake.root)
    else:
        fake = fake_provider("vllm", served=("Qwen/Qwen2.5-7B-Instruct",))
        cmd = cmd.replace("http://127.0.0.1:8001/v1", fake.url)
    argv = shlex.split(cmd)[1:] + [a for s in SMALL + [
        f"executor.cache.path={tmp_path / 'cache.sqlite'}"] for a in ("--set", s)]
    proc = subprocess.run([sys.executable, "-m", "w4s_ray", *argv, "--no-progress"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc
    run = tmp_path / "runs" / "optimize" / "gsm8k"
    final = json.loads((run / "final.json").read_text())
    executor = json.loads((run / "executor.json").read_text())
    seeds = {s["name"]: s for s in json.loads((run / "seeds" / "gsm8k.json").read_text())}
    assert executor["simulated"] is False and final["simulated"] is False
    # Every item of the Chain-of-Thought seeds (one sample, and five voted: n=5, which the
    # Anthropic example serves as five requests) was answered with the gold answer and scored.
    for name in ("cot", "cot_sc"):
        assert seeds[name]["val_accuracy"] == 1.0 and seeds[name]["error"] is None, seeds[name]
        assert "raised errors" not in seeds[name]["feedback"]
    sent = fake.chat_requests()
    assert len(sent) > 3 and "simulated" not in out.stdout
    if index == 1:
        assert executor["provider"] == "anthropic"
        assert all(r["path"] == "/v1/messages" and "seed" not in r["body"] for r in sent)
    if index in (0, 1):  # priced from litellm's map as the model itself
        assert executor["price_model"] in ("gpt-4o-mini", "claude-haiku-4-5")
        assert final["dollars"] > 0
    if index == 2:
        assert all(r["body"]["model"] == "Qwen/Qwen2.5-7B-Instruct" for r in sent)
    if index == 3:  # the meta-agent went to the (fake) provider as well, and wrote a workflow
        metas = [r for r in sent if "def solver" in json.dumps(r["body"])]
        assert metas and final["best"]
