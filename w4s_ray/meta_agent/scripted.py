"""A scripted meta-agent: canned replies, for tests and offline demos.

Two sources:
- a list of replies (in Python, or a file: `.json` list of strings, `.jsonl` lines of strings or
  {"text": ...}, or a directory whose sorted `*.txt`/`*.md` files are replies and `*.py` files
  are workflows wrapped in a python block). With a seed, sample i returns
  replies[(seed + i) % len(replies)], so the same seed gives the same reply after a restart;
  without one, replies are handed out in order.
- `seed-variants`: reads the workflows shown in its own prompt (the archive and earlier actions)
  and returns one of them with a sampling knob changed (`num_of_response`, `temperature`),
  chosen by the seed; ADAS and AFlow prompts get answers in their formats
  (`optimizer_sim`). It is a cheap, deterministic stand-in for a policy that makes small
  edits, not a model; it never looks at anything but its prompt.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from pathlib import Path

from w4s_ray.errors import ConfigError
from w4s_ray.meta_agent import optimizer_sim
from w4s_ray.meta_agent.base import MetaAgent, check_messages

SEED_VARIANTS = "seed-variants"
_CODE_BLOCK = re.compile(r"```python\s*\n(.*?)```", re.DOTALL)
_ARCHIVE = re.compile(r"#+ \**Archive[^\n]*\n")


def load_replies(path: str | Path) -> list[str]:
    """Replies from a .json/.jsonl file or a directory (see module doc)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"meta_agent.model: scripted replies not found: {p}")
    replies: list[str] = []
    if p.is_dir():
        for f in sorted(p.iterdir()):
            if f.suffix == ".py":
                replies.append(f"Analysis: scripted workflow {f.stem}.\n```python\n"
                               f"{f.read_text(encoding='utf-8')}\n```")
            elif f.suffix in (".txt", ".md"):
                replies.append(f.read_text(encoding="utf-8"))
    elif p.suffix == ".jsonl":
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                raise ConfigError(f"{p}: line {n} is not JSON") from None
            replies.append(obj["text"] if isinstance(obj, dict) and "text" in obj else str(obj))
    else:
        try:
            obj = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            raise ConfigError(f"{p}: not a JSON list of replies") from None
        if not isinstance(obj, list) or not all(isinstance(x, str) for x in obj):
            raise ConfigError(f"{p}: expected a JSON list of strings")
        replies = obj
    if not replies:
        raise ConfigError(f"{p}: no scripted replies")
    return replies


class ScriptedMetaAgent(MetaAgent):
    def __init__(self, replies: Sequence[str], name: str = "scripted") -> None:
        super().__init__()
        if not replies:
            raise ConfigError("scripted meta-agent: no replies")
        self.replies = list(replies)
        self.name = name
        self._next = 0

    def generate(self, messages, n, *, seed=None):
        check_messages(messages)
        out = []
        for i in range(n):
            if seed is None:
                idx = self._next % len(self.replies)
                self._next += 1
            else:
                idx = (seed + i) % len(self.replies)
            out.append(self.replies[idx])
        self.usage.calls += 1
        return out


def _workflows_in_prompt(messages: list[dict[str, str]]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for msg in messages:
        if msg["role"] == "user":
            m = _ARCHIVE.search(msg["content"])
            start = msg["content"].find("[", m.end()) if m else -1
            if start >= 0:
                try:
                    entries, _ = json.JSONDecoder().raw_decode(msg["content"][start:])
                    for entry in entries:
                        found.append((str(entry.get("name", "example")), str(entry["code"])))
                except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                    pass
        elif msg["role"] == "assistant":
            for code in _CODE_BLOCK.findall(msg["content"]):
                found.append(("earlier workflow", code))
    return found


def mutate(code: str, rng: random.Random) -> tuple[str, str]:
    """One knob change; returns (new code, what changed)."""
    knobs = []
    if re.search(r"num_of_response\s*=\s*\d+", code):
        knobs.append("samples")
    if re.search(r"temperature\s*=\s*[\d.]+", code):
        knobs.append("temperature")
    if not knobs:
        return code, "kept the workflow unchanged"
    knob = rng.choice(knobs)
    if knob == "samples":
        k = rng.choice([1, 3, 5, 7, 9])
        return (re.sub(r"num_of_response\s*=\s*\d+", f"num_of_response={k}", code),
                f"set the number of sampled responses to {k}")
    t = rng.choice([0.0, 0.3, 0.5, 0.8, 1.0])
    return (re.sub(r"temperature\s*=\s*[\d.]+", f"temperature={t}", code),
            f"set the sampling temperature to {t}")


class SeedVariantsMetaAgent(MetaAgent):
    """Edits one workflow from its prompt per sample (see module doc)."""

    name = SEED_VARIANTS

    def __init__(self) -> None:
        super().__init__()
        self._next = 0

    def generate(self, messages, n, *, seed=None):
        check_messages(messages)
        pool = _workflows_in_prompt(messages)
        out = []
        for i in range(n):
            if seed is None:
                s, self._next = self._next, self._next + 1
            else:
                s = seed + i
            rng = random.Random(s)
            if optimizer_sim.is_adas(messages):
                out.append(optimizer_sim.adas_reply(messages, rng))
                continue
            if optimizer_sim.is_aflow(messages):
                out.append(optimizer_sim.aflow_reply(messages, rng))
                continue
            if not pool:
                out.append("Analysis: the prompt shows no workflow to start from.")
                continue
            name, code = pool[rng.randrange(len(pool))]
            new_code, change = mutate(code.strip("\n"), rng)
            out.append(f"Analysis: starting from '{name}', I {change} to trade cost for "
                       f"accuracy.\n\n```python\n{new_code}\n```")
        self.usage.calls += 1
        return out
