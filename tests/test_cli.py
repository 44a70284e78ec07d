"""The `w4s` entry point: help on every verb, one-line errors with non-zero exits."""

from __future__ import annotations

import subprocess
import sys

import pytest

from w4s_ray.cli import build_parser, main


def _verbs():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sorted(sub.choices)


def test_top_level_help_runs_fast_in_a_subprocess():
    out = subprocess.run([sys.executable, "-m", "w4s_ray", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0
    assert "VERB" in out.stdout


@pytest.mark.parametrize("verb", _verbs())
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as exc:
        main([verb, "--help"])
    assert exc.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_bad_override_is_one_line_and_nonzero():
    if "data" not in _verbs():
        pytest.skip("data verb not present")
    out = subprocess.run([sys.executable, "-m", "w4s_ray", "data", "list", "--set", "nosuch.key=1"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert lines == ["w4s: error: --set nosuch.key: unknown key 'nosuch'"]
