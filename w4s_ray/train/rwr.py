"""Reward-weighted regression examples from RLAO trajectory Parquet (no Ray).

One example per trajectory row (one candidate action): the conversation the meta-agent saw
(`prompt_messages`: under the w4s protocol the trajectory's chat up to the candidate, earlier
chosen replies included) plus the candidate's `action` as the assistant turn, tokenised with the
tokenizer's own chat template. Labels (`train.loss_on`):

- `all_assistant` (default, as upstream `src/convert_data.py` + `src/train.py`): the tokens of
  EVERY assistant turn of the sample, each with the end-of-turn token that closes it: the
  trajectory's earlier chosen replies and the candidate. The example's weight exp(r / T) is the
  candidate's, for all of them (upstream re-weights every assistant turn with the last one's
  reward), and the loss is the mean over all labelled tokens times that weight;
- `candidate`: the candidate's tokens only (the project's earlier loss).

Anything the template adds after an end-of-turn token (e.g. Qwen's trailing newline) is not a
label. The weight is w = exp(r / T), optionally normalised to mean 1 over the kept examples.

Dropped rows are counted, never silently lost: dropped candidates of the w4s protocol (no
reward; left out by every filter), filtered out (`all` / `success` = reward > 0 / `selected` =
chosen only / `valid` = valid only), no valid action (empty, or `code` null: no workflow could
be extracted from it), or an action that alone does not fit `max_seq_len`. A too-long prompt is
fitted by the meta-agent sampler's rule (`meta_agent.context`): the oldest history turns are
dropped first (their labels with them), then tokens from the middle; the system prompt, the
task and the latest message stay, and the action is never cut. Trajectories written
before the w4s protocol (no `dropped` column) load as they are.

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
from w4s_ray.meta_agent import context
from w4s_ray.models.chat import encode_chat, encode_masked, mask_contents
from w4s_ray.workflow.normalize import workflow_key

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
# Columns training needs; the rest of the trajectory schema is carried along when present.
REQUIRED_COLUMNS = ("prompt_messages", "action", "reward")
OPTIONAL_COLUMNS = ("benchmark", "episode_id", "turn", "candidate", "chosen", "valid", "code",
                    "dropped", "attempt", "protocol")
FILTERS = ("all", "success", "selected", "valid")
REPEATS = ("keep", "once")
LOSS_ON = ("all_assistant", "candidate")


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]
    weight: float
    reward: float
    truncated: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    # Index of the candidate's first token; the prompt is input_ids[:action_start] (it may hold
    # labels: earlier assistant turns). None: the first label (no labels in the prompt).
    action_start: int | None = None

    def __post_init__(self) -> None:
        if self.action_start is None:
            self.action_start = next(
                (i for i, t in enumerate(self.labels) if t != IGNORE_INDEX), len(self.labels))

    @property
    def num_action_tokens(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE_INDEX)


@dataclass
class BuildStats:
    rows: int = 0
    kept: int = 0
    dropped_candidates: int = 0
    dropped_filter: int = 0
    dropped_no_action: int = 0
    dropped_too_long: int = 0
    merged_repeats: int = 0  # train.repeats=once: rows folded into an earlier row of their program
    truncated: int = 0
    action_tokens: int = 0
    total_tokens: int = 0
    mean_raw_weight: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        return (
            f"rows {self.rows}: kept {self.kept}, dropped candidates "
            f"{self.dropped_candidates}, dropped by filter {self.dropped_filter}, "
            f"no action {self.dropped_no_action}, action too long {self.dropped_too_long}, "
            f"repeats merged {self.merged_repeats}; history truncated {self.truncated}"
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


def _upto_eot(ids: list[int], eot: set[int]) -> int:
    """How many of `ids` belong to the turn: up to and including the first end-of-turn token."""
    for i, tid in enumerate(ids):
        if tid in eot:
            return i + 1
    return len(ids)


def _render(tokenizer, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False,
                                         add_generation_prompt=generation_prompt)


def _prompt_pieces(tokenizer, messages: list[dict[str, str]], prompt_text: str
                   ) -> list[tuple[str, bool]]:
    """The rendered prompt as (text, is_assistant_turn) pieces, each assistant turn being the
    text the model would have generated after its generation prompt (module docstring)."""
    pieces, pos = [], 0
    for k, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:k], True)
        upto = _render(tokenizer, messages[:k + 1], False)
        if not (upto.startswith(before) and prompt_text.startswith(upto) and len(before) >= pos):
            raise DataError(
                "the chat template does not render earlier assistant turns as a prefix of the "
                "prompt; cannot locate their tokens (use train.loss_on=candidate)")
        pieces += [(prompt_text[pos:len(before)], False), (upto[len(before):], True)]
        pos = len(upto)
    pieces.append((prompt_text[pos:], False))
    return pieces


def tokenize_sample(
    tokenizer, messages: list[dict[str, str]], action: str, max_seq_len: int,
    loss_on: str = "candidate", prompt_budget: int | None = None,
) -> tuple[list[int], list[int], bool, int]:
    """(input_ids, labels, truncated, action_start) for `messages` + assistant `action`.

    The prompt is the template rendered with `add_generation_prompt=True`, exactly what the
    model sees at sampling time; the completion is the rest of the fully rendered conversation
    up to and including the first end-of-turn token. Tokenising the pieces separately keeps
    each boundary identical to generation. With `loss_on="all_assistant"` the prompt's earlier
    assistant turns are labels too. Raises `_TooLong` if the completion alone needs the whole
    budget.
    """
    if loss_on not in LOSS_ON:
        raise DataError(f"train.loss_on must be one of {', '.join(LOSS_ON)} (got {loss_on!r})")
    eot = _eot_ids(tokenizer)
    prompt_ids, prompt_labels, completion_ids = _encode(tokenizer, messages, action, loss_on, eot)
    # At least one prompt token must remain: the first action token is predicted from it.
    budget = max_seq_len - len(completion_ids)
    if budget < 1:
        raise _TooLong
    if prompt_budget is not None:  # candidates of one prompt fitted alike (build_examples)
        budget = max(1, min(budget, prompt_budget))
    truncated = len(prompt_ids) > budget
    if truncated:
        # The sampler's rule (meta_agent.context): oldest history turns go first, then tokens
        # from the middle; the system prompt, the task and the latest message stay.
        def enc(msgs, generation_prompt):  # the sampler's encoder (special-token text safe)
            return encode_chat(tokenizer, msgs, add_generation_prompt=generation_prompt)

        fit = context.fit_chat(messages, enc, budget)
        # Labels follow the kept messages (all_assistant: their assistant turns), cut alike.
        prompt_ids, prompt_labels, _ = _encode(tokenizer, fit.messages, action, loss_on, eot)
        keep = context.head_tail(len(prompt_ids), min(fit.head, len(prompt_ids)), budget)
        prompt_ids, prompt_labels = (context.cut(prompt_ids, *keep),
                                     context.cut(prompt_labels, *keep))
    input_ids = list(prompt_ids) + list(completion_ids)
    labels = list(prompt_labels) + list(completion_ids)
    return input_ids, labels, truncated, len(prompt_ids)


def _encode(tokenizer, messages: list[dict[str, str]], action: str, loss_on: str, eot: set[int]
            ) -> tuple[list[int], list[int], list[int]]:
    """(prompt ids, prompt labels, completion ids) of `messages` + assistant `action`.

    Contents that spell a special token ("<|im_end|>" quoted in feedback or code) are encoded
    as plain text, as the sampler encodes them (`models.chat.encode_chat`): the template is
    rendered with a placeholder per such content and each placeholder tokenized as text."""
    masked, marks = mask_contents(tokenizer, [*messages, {"role": "assistant", "content": action}])
    messages = masked[:-1]
    prompt_text = _render(tokenizer, messages, True)
    full_text = tokenizer.apply_chat_template(masked, tokenize=False)
    if not full_text.startswith(prompt_text):
        raise DataError(
            "the chat template renders the prompt differently with and without the assistant "
            "turn; cannot locate the action tokens"
        )
    prompt_ids: list[int] = []
    prompt_labels: list[int] = []
    pieces = (_prompt_pieces(tokenizer, messages, prompt_text) if loss_on == "all_assistant"
              else [(prompt_text, False)])
    for text, is_turn in pieces:
        ids = encode_masked(tokenizer, text, marks)
        n_label = _upto_eot(ids, eot) if is_turn else 0
        prompt_ids += ids
        prompt_labels += list(ids[:n_label]) + [IGNORE_INDEX] * (len(ids) - n_label)
    completion_ids = encode_masked(tokenizer, full_text[len(prompt_text):], marks)
    return prompt_ids, prompt_labels, completion_ids[:_upto_eot(completion_ids, eot)]


def tokenize_example(
    tokenizer, messages: list[dict[str, str]], action: str, max_seq_len: int
) -> tuple[list[int], list[int], bool]:
    """(input_ids, labels, truncated) with the candidate's tokens as the only labels."""
    ids, labels, truncated, _ = tokenize_sample(tokenizer, messages, action, max_seq_len)
    return ids, labels, truncated


def build_examples(
    rows: list[dict[str, Any]],
    tokenizer,
    *,
    temperature: float,
    normalize: bool = False,
    filter: str = "all",
    max_seq_len: int = 2048,
    loss_on: str = "candidate",
    repeats: str = "keep",
) -> tuple[list[Example], BuildStats]:
    """Trajectory rows -> weighted, masked examples, plus counts of what was dropped and why."""
    stats = BuildStats(rows=len(rows))
    kept: list[Example] = []
    if repeats not in REPEATS:
        raise DataError(f"train.repeats must be one of {', '.join(REPEATS)} (got {repeats!r})")
    trainable = []
    for row in rows:
        if row.get("dropped"):  # a dropped w4s candidate: no reward, never trained on
            stats.dropped_candidates += 1
        elif not keep_row(row, filter):
            stats.dropped_filter += 1
        else:
            trainable.append(row)
    if repeats == "once":
        trainable, stats.merged_repeats = merge_repeats(trainable)
    for row in trainable:
        where = row.get("_source", "row")
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
            ids, labels, truncated, start = tokenize_sample(tokenizer, messages, action,
                                                            max_seq_len, loss_on)
        except _TooLong:
            stats.dropped_too_long += 1
            continue
        meta = {k: row[k] for k in OPTIONAL_COLUMNS if k in row and k != "code"}
        meta["prompt_key"] = prompt_key(row)
        meta["_messages"], meta["_action"] = messages, action
        kept.append(Example(ids, labels, 0.0, float(row["reward"]), truncated, meta, start))
    # Candidates of one prompt whose prompts were fitted to different budgets (different action
    # lengths) are fitted again to the smallest one, so they still share one prompt encoding.
    shortest: dict[str, int] = {}
    for ex in kept:
        key = ex.meta["prompt_key"]
        shortest[key] = min(shortest.get(key, ex.action_start), ex.action_start)
    for i, ex in enumerate(kept):
        msgs, action = ex.meta.pop("_messages"), ex.meta.pop("_action")
        if ex.truncated and ex.action_start > shortest[ex.meta["prompt_key"]]:
            ids, labels, _, start = tokenize_sample(tokenizer, msgs, action, max_seq_len,
                                                    loss_on, shortest[ex.meta["prompt_key"]])
            kept[i] = Example(ids, labels, 0.0, ex.reward, True, ex.meta, start)
    stats.truncated = sum(ex.truncated for ex in kept)
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


def merge_repeats(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """`train.repeats=once`: one row per distinct program per prompt.

    Candidates sampled on one prompt whose workflows are the same program (`workflow_key`:
    comments, formatting and docstrings ignored) become one example: the first such row's
    action, with the mean of their rewards (the same program evaluated again; the mean is the
    better estimate of its worth). Kept as they are, k copies weigh k times one program, and
    RWR pulls the policy onto whatever the model already repeats (a seed, most often). Rows
    without code (no workflow extracted) pass as they are: later steps drop them. Returns the
    rows and how many were folded into another.
    """
    # One group per program per prompt, in first-seen order; a row without code is its own.
    groups: dict[Any, list[dict[str, Any]]] = {}
    for i, row in enumerate(rows):
        if "code" not in row:
            raise DataError(f"{row.get('_source', 'row')}: train.repeats=once needs a 'code' column")
        code = row["code"]
        key = (prompt_key(row), workflow_key(code)) if isinstance(code, str) and code.strip() else i
        groups.setdefault(key, []).append(row)
    out = [group[0] if len(group) == 1 else _merged(group) for group in groups.values()]
    return out, len(rows) - len(out)


def _merged(group: list[dict[str, Any]]) -> dict[str, Any]:
    rewards = [r.get("reward") for r in group]
    if any(r is None or not math.isfinite(float(r)) for r in rewards):
        raise DataError(f"{group[0].get('_source', 'row')}: reward is missing or not finite")
    merged = {**group[0], "reward": sum(float(r) for r in rewards) / len(rewards)}
    if "chosen" in merged:
        merged["chosen"] = any(bool(r.get("chosen")) for r in group)
    return merged


def prompt_key(row: dict[str, Any]) -> str:
    """Identifies the prompt a row's candidate was sampled on (candidates of one turn share it)."""
    return hashlib.sha1(str(row["prompt_messages"]).encode()).hexdigest()


# ----------------------------------------------------------------------------- packing


@dataclass
class PackedRow:
    """One training sequence: a prompt followed by one or more actions that share it.

    All m candidates of a W4S turn were sampled on the same prompt, so the prompt is encoded
    once and each action attends to it and to itself only (a block mask built in
    `loss.collate_packed`); each action's positions continue from the prompt's end, exactly as
    if it followed the prompt alone. `src[t]` is the position whose logits predict token t
    (-1 where t is not a label): the first token of every action is predicted from the
    prompt's last position. Labels inside the prompt (earlier assistant turns, `loss_on:
    all_assistant`) are shared: they count once per action in that action's mean
    (`loss._reduce`), so the loss equals the per-example one.
    """

    input_ids: list[int]
    labels: list[int]
    src: list[int]
    seg: list[int]  # 0: prompt; k >= 1: the k-th action
    pos: list[int]
    weights: list[float]  # one per action


def _split(ex: Example) -> tuple[list[int], list[int]]:
    return ex.input_ids[:ex.action_start], ex.input_ids[ex.action_start:]


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
        # A member whose prompt was fitted to a smaller budget (a longer action) shares only if
        # the shortest prompt is a suffix of its own; the others get rows of their own.
        shortest = min(group, key=lambda ex: ex.action_start)
        prompt = _split(shortest)[0]
        prompt_labels = shortest.labels[:shortest.action_start]
        alone = [ex for ex in group if _split(ex)[0][len(_split(ex)[0]) - len(prompt):] != prompt]
        if alone:
            group = [ex for ex in group if ex not in alone]
            rows.extend(pack_examples(alone, max_seq_len, share_prompts=False))
        row: PackedRow | None = None
        for ex in group:
            _, action = _split(ex)
            if row is None or len(row.input_ids) + len(action) > max_seq_len:
                n = len(prompt)
                # A prompt label is predicted from the position before it (none for the
                # first token, which no example's loss counts either).
                labels = [lab if t > 0 else IGNORE_INDEX for t, lab in enumerate(prompt_labels)]
                src = [t - 1 if lab != IGNORE_INDEX else -1 for t, lab in enumerate(labels)]
                row = PackedRow(list(prompt), labels, src, [0] * n, list(range(n)), [])
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
