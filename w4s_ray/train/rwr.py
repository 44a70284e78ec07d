"""Reward-weighted regression examples from RLAO trajectory Parquet (no Ray).

One example per trajectory row (one candidate action): the conversation the meta-agent saw
(`prompt_messages`) plus the candidate's `action` as the assistant turn, tokenised with the
tokenizer's own chat template. Labels are -100 everywhere except the action's tokens and the
end-of-turn token that closes it (anything the template adds after that token, e.g. Qwen's
trailing newline, is not part of the sequence). The weight is w = exp(r / T), optionally
normalised to mean 1 over the kept examples.

Dropped rows are counted, never silently lost: filtered out (`all` / `success` = reward > 0 /
`selected` = chosen only / `valid` = valid only), no valid action (empty, or `code` null: no
workflow could be extracted from it), or an action that alone does not fit `max_seq_len`.
A too-long prompt is cut from the LEFT (oldest history first, at token level), never the action.

Malformed input (missing column, unreadable Parquet, a `prompt_messages` that is not a JSON
list of {role, content}) raises `DataError` naming the file/row. Nothing here trains.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from w4s_ray.errors import DataError

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
# Columns training needs; the rest of the trajectory schema is carried along when present.
REQUIRED_COLUMNS = ("prompt_messages", "action", "reward")
OPTIONAL_COLUMNS = ("benchmark", "episode_id", "turn", "candidate", "chosen", "valid", "code")
FILTERS = ("all", "success", "selected", "valid")


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]
    weight: float
    reward: float
    truncated: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_action_tokens(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE_INDEX)


@dataclass
class BuildStats:
    rows: int = 0
    kept: int = 0
    dropped_filter: int = 0
    dropped_no_action: int = 0
    dropped_too_long: int = 0
    truncated: int = 0
    action_tokens: int = 0
    total_tokens: int = 0
    mean_raw_weight: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        return (
            f"rows {self.rows}: kept {self.kept}, dropped by filter {self.dropped_filter}, "
            f"no action {self.dropped_no_action}, action too long {self.dropped_too_long}; "
            f"history truncated {self.truncated}"
        )


# ----------------------------------------------------------------------------- reading


def parquet_files(path: str | Path) -> list[Path]:
    p = Path(path)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(f for f in p.rglob("*.parquet") if not f.name.startswith("."))
        if files:
            return files
        raise DataError(f"no .parquet files under {p}")
    raise DataError(f"trajectory data not found: {p}")


def read_trajectories(path: str | Path) -> list[dict[str, Any]]:
    """All rows of a trajectory Parquet file or directory, as dicts; checks the columns."""
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for f in parquet_files(path):
        try:
            table = pq.read_table(f)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise DataError(f"{f}: not a readable Parquet file ({type(exc).__name__})") from None
        missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
        if missing:
            raise DataError(
                f"{f}: missing trajectory column(s) {', '.join(missing)} "
                f"(see docs/TRAJECTORIES.md)"
            )
        keep = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in table.column_names]
        for i, row in enumerate(table.select(keep).to_pylist()):
            row["_source"] = f"{f.name}:{i}"
            rows.append(row)
    if not rows:
        raise DataError(f"trajectory data at {path} has no rows")
    return rows


def parse_messages(raw: Any, where: str) -> list[dict[str, str]]:
    """`prompt_messages` as stored (JSON string) -> list of {role, content}."""
    try:
        msgs = json.loads(raw) if isinstance(raw, str | bytes) else raw
    except json.JSONDecodeError:
        raise DataError(f"{where}: prompt_messages is not valid JSON") from None
    ok = isinstance(msgs, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in msgs
    )
    if not ok or not msgs:
        raise DataError(f"{where}: prompt_messages must be a non-empty JSON list of {{role, content}}")
    return [{"role": m["role"], "content": m["content"]} for m in msgs]


# ----------------------------------------------------------------------------- weights


def rwr_weights(rewards: Sequence[float], temperature: float, normalize: bool) -> list[float]:
    """w_i = exp(r_i / T); with `normalize`, divided by their mean so they average 1."""
    if temperature <= 0:
        raise DataError(f"train.temperature must be > 0 (got {temperature})")
    ws = [math.exp(float(r) / temperature) for r in rewards]
    if normalize and ws:
        mean = sum(ws) / len(ws)
        ws = [w / mean for w in ws]
    return ws


def keep_row(row: dict[str, Any], how: str) -> bool:
    if how == "all":
        return True
    if how == "success":
        return row.get("reward") is not None and float(row["reward"]) > 0
    if how == "valid":
        if "valid" not in row:
            raise DataError(f"{row.get('_source', 'row')}: filter 'valid' needs a 'valid' column")
        return bool(row["valid"])
    if how == "selected":
        if "chosen" not in row:
            raise DataError(f"{row.get('_source', 'row')}: filter 'selected' needs a 'chosen' column")
        return bool(row["chosen"])
    raise DataError(f"train.filter must be one of {', '.join(FILTERS)} (got {how!r})")


# ----------------------------------------------------------------------------- tokenising


class _TooLong(Exception):
    pass


def _eot_ids(tokenizer) -> set[int]:
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    for tok in ("<|im_end|>", "<|eot_id|>", "<|end|>"):
        tid = tokenizer.convert_tokens_to_ids(tok) if tok in tokenizer.get_vocab() else None
        if tid is not None:
            ids.add(int(tid))
    return ids


def tokenize_example(
    tokenizer, messages: list[dict[str, str]], action: str, max_seq_len: int
) -> tuple[list[int], list[int], bool]:
    """(input_ids, labels, truncated) for `messages` + assistant `action`.

    The prompt is the template rendered with `add_generation_prompt=True`, exactly what the
    model sees at sampling time; the completion is the rest of the fully rendered conversation
    up to and including the first end-of-turn token. Tokenising the two texts separately keeps
    the boundary identical to generation. Raises `_TooLong` if the completion alone needs the
    whole budget.
    """
    prompt_text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    full_text = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": action}], tokenize=False
    )
    if not full_text.startswith(prompt_text):
        raise DataError(
            "the chat template renders the prompt differently with and without the assistant "
            "turn; cannot locate the action tokens"
        )
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(full_text[len(prompt_text):], add_special_tokens=False)["input_ids"]
    eot = _eot_ids(tokenizer)
    for i, tid in enumerate(completion_ids):
        if tid in eot:
            completion_ids = completion_ids[: i + 1]
            break
    # At least one prompt token must remain: the first action token is predicted from it.
    budget = max_seq_len - len(completion_ids)
    if budget < 1:
        raise _TooLong
    truncated = len(prompt_ids) > budget
    if truncated:
        prompt_ids = prompt_ids[-budget:]
    input_ids = list(prompt_ids) + list(completion_ids)
    labels = [IGNORE_INDEX] * len(prompt_ids) + list(completion_ids)
    return input_ids, labels, truncated


def build_examples(
    rows: list[dict[str, Any]],
    tokenizer,
    *,
    temperature: float,
    normalize: bool = False,
    filter: str = "all",
    max_seq_len: int = 2048,
) -> tuple[list[Example], BuildStats]:
    """Trajectory rows -> weighted, masked examples, plus counts of what was dropped and why."""
    stats = BuildStats(rows=len(rows))
    kept: list[Example] = []
    for row in rows:
        where = row.get("_source", "row")
        if not keep_row(row, filter):
            stats.dropped_filter += 1
            continue
        action = row.get("action")
        # No valid action: an empty reply, or one from which no workflow could be extracted
        # (`code` null). Imitating those, even with a small weight, teaches unusable output.
        no_code = "code" in row and row["code"] is None
        if not isinstance(action, str) or not action.strip() or no_code:
            stats.dropped_no_action += 1
            continue
        if row.get("reward") is None or not math.isfinite(float(row["reward"])):
            raise DataError(f"{where}: reward is missing or not finite")
        messages = parse_messages(row["prompt_messages"], where)
        try:
            ids, labels, truncated = tokenize_example(tokenizer, messages, action, max_seq_len)
        except _TooLong:
            stats.dropped_too_long += 1
            continue
        stats.truncated += int(truncated)
        meta = {k: row[k] for k in OPTIONAL_COLUMNS if k in row and k != "code"}
        meta["prompt_key"] = hashlib.sha1(str(row["prompt_messages"]).encode()).hexdigest()
        kept.append(Example(ids, labels, 0.0, float(row["reward"]), truncated, meta))
    raw = rwr_weights([e.reward for e in kept], temperature, normalize=False)
    stats.mean_raw_weight = sum(raw) / len(raw) if raw else 0.0
    weights = rwr_weights([e.reward for e in kept], temperature, normalize)
    for ex, w in zip(kept, weights, strict=True):
        ex.weight = w
    stats.kept = len(kept)
    stats.action_tokens = sum(e.num_action_tokens for e in kept)
    stats.total_tokens = sum(len(e.input_ids) for e in kept)
    log.info("rwr examples: %s", stats.line())
    return kept, stats


# ----------------------------------------------------------------------------- packing


@dataclass
class PackedRow:
    """One training sequence: a prompt followed by one or more actions that share it.

    All m candidates of a W4S turn were sampled on the same prompt, so the prompt is encoded
    once and each action attends to it and to itself only (a block mask built in
    `loss.collate_packed`); each action's positions continue from the prompt's end, exactly as
    if it followed the prompt alone. `src[t]` is the position whose logits predict token t
    (-1 where t is not a label): the first token of every action is predicted from the
    prompt's last position.
    """

    input_ids: list[int]
    labels: list[int]
    src: list[int]
    seg: list[int]  # 0: prompt; k >= 1: the k-th action
    pos: list[int]
    weights: list[float]  # one per action


def _split(ex: Example) -> tuple[list[int], list[int]]:
    n_prompt = next(i for i, t in enumerate(ex.labels) if t != IGNORE_INDEX)
    return ex.input_ids[:n_prompt], ex.input_ids[n_prompt:]


def pack_examples(
    examples: list[Example], max_seq_len: int, share_prompts: bool = True
) -> list[PackedRow]:
    """Examples -> rows; with `share_prompts`, examples sampled on the same prompt (same
    `prompt_messages`, else identical prompt tokens) share a row, greedily up to `max_seq_len`
    tokens per row. Order of first appearance is kept."""
    groups: dict[Any, list[Example]] = {}
    for i, ex in enumerate(examples):
        prompt, _ = _split(ex)
        key = ex.meta.get("prompt_key") or tuple(prompt) if share_prompts else i
        groups.setdefault(key, []).append(ex)
    rows: list[PackedRow] = []
    for group in groups.values():
        # Left truncation made each member's prompt a suffix of the same full prompt; the
        # shortest one is shared (history cut a little more for short actions, never an action).
        prompt = min((_split(ex)[0] for ex in group), key=len)
        alone = [ex for ex in group if _split(ex)[0][len(_split(ex)[0]) - len(prompt):] != prompt]
        if alone:
            group = [ex for ex in group if ex not in alone]
            rows.extend(pack_examples(alone, max_seq_len, share_prompts=False))
        row: PackedRow | None = None
        for ex in group:
            _, action = _split(ex)
            if row is None or len(row.input_ids) + len(action) > max_seq_len:
                n = len(prompt)
                row = PackedRow(list(prompt), [IGNORE_INDEX] * n, [-1] * n, [0] * n,
                                list(range(n)), [])
                rows.append(row)
            start, k, n = len(row.input_ids), len(row.weights) + 1, len(prompt)
            row.input_ids += action
            row.labels += action
            row.src += [n - 1] + list(range(start, start + len(action) - 1))
            row.seg += [k] * len(action)
            row.pos += list(range(n, n + len(action)))
            row.weights.append(ex.weight)
    return rows


def rows_to_table(rows: list[PackedRow]):
    """Packed rows as an Arrow table (what the Ray Train workers read)."""
    import pyarrow as pa

    ints = pa.list_(pa.int32())
    schema = pa.schema([("input_ids", ints), ("labels", ints), ("src", ints), ("seg", ints),
                        ("pos", ints), ("weights", pa.list_(pa.float64()))])
    cols = {name: [getattr(r, name) for r in rows] for name in schema.names}
    return pa.table(cols, schema=schema)


def examples_to_table(examples: list[Example], max_seq_len: int = 1 << 30,
                      share_prompts: bool = True):
    return rows_to_table(pack_examples(examples, max_seq_len, share_prompts))
