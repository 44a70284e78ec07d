"""A quiet console (issue #14): no third-party banners, Ray Data progress off unless --verbose."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=180, env=dict(os.environ, **env))


@pytest.mark.parametrize("flags, enabled", [([], False), (["quiet"], False), (["verbose"], True)])
def test_ray_data_progress_bars_only_with_verbose(flags, enabled):
    code = ("from w4s_ray import console; "
            f"console.configure(verbose={'verbose' in flags}, quiet={'quiet' in flags}); "
            "import ray.data; "
            "print(ray.data.DataContext.get_current().enable_progress_bars)")
    env = {k: v for k, v in os.environ.items() if k != "RAY_DATA_DISABLE_PROGRESS_BARS"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=180, env=env)
    assert out.stdout.strip().splitlines()[-1] == str(enabled), out.stderr


def test_litellm_error_paths_print_no_banner(tmp_path):
    """An unplaceable model name and a failing litellm call are where litellm prints its red
    'Provider List' and 'Give Feedback' lines; the CLI must show only its own error line."""
    wf = tmp_path / "wf.py"
    wf.write_text("def solver(agent, task):\n    return {'answer': '1'}\n")
    out = subprocess.run(
        [sys.executable, "-m", "w4s_ray", "eval", "-w", str(wf), "-b", "gsm8k",
         "--set", "executor.model=no-such-provider-model", "--set", "executor.api_base=null"],
        cwd=REPO, capture_output=True, text=True, timeout=180)
    text = out.stdout + out.stderr
    assert out.returncode == 2
    assert "Provider List" not in text and "Give Feedback" not in text
    assert out.stderr.strip().count("\n") == 0
    code = ("import asyncio, litellm\n"
            "from w4s_ray.executor.providers import import_litellm\n"
            "import_litellm()\n"
            "try:\n"
            "    asyncio.run(litellm.acompletion(model='x-unknown', messages=[{'role': 'user', "
            "'content': 'hi'}]))\n"
            "except Exception as exc:\n"
            "    print(type(exc).__name__)\n")
    out = _run(code)
    assert "BadRequestError" in out.stdout
    assert "Provider List" not in out.stdout + out.stderr
    assert "Give Feedback" not in out.stdout + out.stderr


def test_quiet_eval_prints_only_its_result(tmp_path, sim_server):
    """--quiet (before or after the verb): no progress bar, no log line, the result only, and
    the result says the executor was simulated."""
    wf = tmp_path / "wf.py"
    wf.write_text("def solver(agent, task):\n"
                  "    return {'answer': agent.call_llm(messages=[{'role': 'user', "
                  "'content': task}])[0]}\n")
    args = ["eval", "-w", str(wf), "-b", "gsm8k", "--limit", "2",
            "--set", f"executor.api_base={sim_server.url}",
            "--set", f"executor.cache.path={tmp_path / 'c.sqlite'}"]
    for argv in (["-q", *args], [*args, "--quiet"]):
        out = subprocess.run([sys.executable, "-m", "w4s_ray", *argv], cwd=REPO,
                             capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stderr
        assert out.stderr.strip() == ""
        assert out.stdout.startswith("w4s eval [simulated executor: openai/sim-gpt-4o-mini]")
        assert "| executor |" in out.stdout and "(simulated: the w4s simulator" in out.stdout


class _Tty(__import__("io").StringIO):
    def isatty(self) -> bool:
        return True


def test_activity_line_ticks_on_a_terminal_and_is_silent_otherwise(monkeypatch):
    """Ray start, seed evaluation and the final test show a live "what: elapsed" line on a
    terminal; nothing without one, under --quiet or with --no-progress."""
    import sys
    import time

    from w4s_ray import console

    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    monkeypatch.delenv("W4S_NO_PROGRESS", raising=False)
    monkeypatch.setenv("W4S_VERBOSITY", "normal")
    with console.activity("starting a local Ray"):
        time.sleep(1.7)
    assert "starting a local Ray: 00:01" in tty.getvalue()
    for off in ("quiet", "no-progress", "not-a-tty"):
        out = _Tty() if off != "not-a-tty" else __import__("io").StringIO()
        monkeypatch.setattr(sys, "stderr", out)
        if off == "quiet":
            monkeypatch.setenv("W4S_VERBOSITY", "quiet")
        if off == "no-progress":
            monkeypatch.setenv("W4S_VERBOSITY", "normal")
            console.no_progress()
        with console.activity("seed workflows"):
            time.sleep(0.6)
        assert out.getvalue() == "", off
        console.no_progress(False)
