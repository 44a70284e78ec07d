"""RWR examples: label masking, weights, filters, truncation, bad input."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.train.synth import make_rows, write_trajectories
from w4s_ray.errors import DataError
from w4s_ray.train.rwr import (
    IGNORE_INDEX,
    build_examples,
    examples_to_table,
    read_trajectories,
    rwr_weights,
    tokenize_example,
)


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


MSGS = [
    {"role": "system", "content": "You write workflows."},
    {"role": "user", "content": "Improve the gsm8k workflow."},
]
ACTION = "def solver(agent, task):\n    return {'answer': task}"


def test_labels_cover_exactly_the_action_and_end_of_turn(tok):
    ids, labels, truncated = tokenize_example(tok, MSGS, ACTION, 4096)
    assert not truncated and len(ids) == len(labels)
    prompt_ids = tok.apply_chat_template(MSGS, add_generation_prompt=True, tokenize=True,
                                         return_dict=True)["input_ids"]
    action_ids = tok(ACTION, add_special_tokens=False)["input_ids"]
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    # token by token: prompt masked, then the action tokens, then the end-of-turn token
    assert ids == list(prompt_ids) + action_ids + [eot]
    assert labels == [IGNORE_INDEX] * len(prompt_ids) + action_ids + [eot]
    assert tok.decode([t for t in labels if t != IGNORE_INDEX]) == ACTION + "<|im_end|>"


def test_mask_agrees_with_template_generation_mask(tok):
    ids, labels, _ = tokenize_example(tok, MSGS, ACTION, 4096)
    ref = tok.apply_chat_template(
        [*MSGS, {"role": "assistant", "content": ACTION}], tokenize=True, return_dict=True,
        return_assistant_tokens_mask=True,
    )
    n = len(ids)
    assert ref["input_ids"][:n] == ids
    assert [int(m) for m in ref["assistant_masks"][:n]] == [int(t != IGNORE_INDEX) for t in labels]


def test_earlier_assistant_turns_in_history_stay_masked(tok):
    history = MSGS + [{"role": "assistant", "content": "def solver(agent, task): pass"},
                      {"role": "user", "content": "accuracy 0.1"}]
    ids, labels, _ = tokenize_example(tok, history, ACTION, 4096)
    unmasked = [t for t in labels if t != IGNORE_INDEX]
    assert tok.decode(unmasked) == ACTION + "<|im_end|>"


@pytest.mark.parametrize("loss_on", ["candidate", "all_assistant"])
def test_special_token_text_in_messages_is_encoded_as_the_sampler_encodes_it(tok, loss_on):
    """A feedback message quoting "<|im_end|>" (and a candidate printing it) trains on the ids the
    sampler sees (`encode_chat`: plain text), not on a control token that ends the turn early."""
    from w4s_ray.models.chat import encode_chat
    from w4s_ray.train.rwr import tokenize_sample

    eot = tok.convert_tokens_to_ids("<|im_end|>")
    history = MSGS + [{"role": "assistant", "content": "def solver(agent, task): pass"},
                      {"role": "user", "content": "The executor replied '<|im_end|>' and stopped."}]
    action = "def solver(agent, task):\n    return {'answer': '<|im_end|>'}"
    ids, labels, truncated, start = tokenize_sample(tok, history, action, 4096, loss_on=loss_on)
    assert not truncated
    assert ids[:start] == encode_chat(tok, history, add_generation_prompt=True)
    assert ids[:start].count(eot) == len(history)  # one per turn: the quoted one is text
    # the candidate's labels: its text as plain tokens, then ONE real end-of-turn at the end
    assert labels[start:].count(eot) == 1 and labels[-1] == eot
    assert tok.decode(ids[start:-1]) == action
    # fitted to a small budget, the same rule and encoder as the sampler's
    ids2, _, truncated2, start2 = tokenize_sample(tok, history, action, start - 5,
                                                  loss_on=loss_on)
    assert truncated2 and len(ids2) <= start - 5 and ids2[start2:] == ids[start:]


def test_all_assistant_labels_every_assistant_turn_with_its_end_of_turn(tok):
    """loss_on=all_assistant (upstream): earlier assistant turns of the sample are labels too,
    each up to its end-of-turn token; users, system and template glue are not."""
    from w4s_ray.train.rwr import tokenize_sample

    earlier = "Analysis: vote.\n```python\ndef solver(agent, task): pass\n```"
    history = MSGS + [{"role": "assistant", "content": earlier},
                      {"role": "user", "content": "accuracy 0.1"}]
    ids, labels, _, start = tokenize_sample(tok, history, ACTION, 4096, "all_assistant")
    spans, cur = [], []
    for t in labels:
        if t == IGNORE_INDEX:
            if cur:
                spans.append(cur)
            cur = []
        else:
            cur.append(t)
    spans.append(cur)
    assert [tok.decode(x) for x in spans] == [earlier + "<|im_end|>", ACTION + "<|im_end|>"]
    assert tok.decode(ids[start:]) == ACTION + "<|im_end|>"
    # The same ids as the candidate-only tokenisation; only the labels differ.
    assert ids == tokenize_example(tok, history, ACTION, 4096)[0]
    ref = tok.apply_chat_template(
        [*history, {"role": "assistant", "content": ACTION}], tokenize=True, return_dict=True,
        return_assistant_tokens_mask=True)
    assert [int(m) for m in ref["assistant_masks"][:len(ids)]] == \
        [int(t != IGNORE_INDEX) for t in labels]


def test_dropped_candidates_are_left_out_by_every_filter(tok):
    rows = make_rows()
    for r in rows[:4]:
        r["dropped"], r["reward"], r["valid"] = True, None, False
    for how in ("all", "success", "selected", "valid"):
        exs, st = build_examples(rows, tok, temperature=0.4, filter=how)
        assert st.dropped_candidates == 4
        assert not any(e.meta.get("dropped") for e in exs)


def test_weights_are_exp_r_over_t_and_normalise_to_mean_one():
    rewards = [1.0, 0.0, -0.5, 0.5]
    ws = rwr_weights(rewards, 0.4, normalize=False)
    assert ws == pytest.approx([math.exp(r / 0.4) for r in rewards])
    wn = rwr_weights(rewards, 0.4, normalize=True)
    assert sum(wn) / len(wn) == pytest.approx(1.0)
    assert wn[0] / wn[1] == pytest.approx(math.exp(1.0 / 0.4))
    with pytest.raises(DataError, match="temperature"):
        rwr_weights(rewards, 0.0, normalize=False)


def test_build_examples_weights_and_filters(tok):
    rows = make_rows()
    exs, st = build_examples(rows, tok, temperature=0.4, filter="all")
    assert st.rows == len(rows) == st.kept == len(exs)
    for ex, row in zip(exs, rows, strict=True):
        assert ex.weight == pytest.approx(math.exp(row["reward"] / 0.4))
    succ, st_s = build_examples(rows, tok, temperature=0.4, filter="success")
    assert st_s.kept == sum(r["reward"] > 0 for r in rows)
    assert st_s.dropped_filter == len(rows) - st_s.kept
    assert all(e.reward > 0 for e in succ)
    sel, st_c = build_examples(rows, tok, temperature=0.4, filter="selected")
    assert st_c.kept == sum(r["chosen"] for r in rows) and all(e.meta["chosen"] for e in sel)
    norm, _ = build_examples(rows, tok, temperature=0.4, normalize=True)
    assert sum(e.weight for e in norm) / len(norm) == pytest.approx(1.0)


def test_empty_actions_are_dropped_and_counted(tok):
    rows = make_rows()
    rows[0]["action"] = ""
    rows[1]["action"] = "   \n"
    rows[2]["action"] = None
    rows[3]["code"] = None  # a reply from which no workflow could be extracted
    exs, st = build_examples(rows, tok, temperature=0.4)
    assert st.dropped_no_action == 4 and st.kept == len(rows) - 4 == len(exs)
    rows[4]["valid"] = False
    val, st_v = build_examples(rows, tok, temperature=0.4, filter="valid")
    assert st_v.dropped_filter == 1 and st_v.kept == len(rows) - 5


def test_truncation_drops_old_history_and_keeps_system_task_and_action(tok):
    long_history = MSGS + [{"role": "user", "content": "old feedback " * 300},
                           {"role": "user", "content": "LATEST"}]
    full_ids, full_labels, t0 = tokenize_example(tok, long_history, ACTION, 100_000)
    assert not t0
    n_action = sum(t != IGNORE_INDEX for t in full_labels)
    short_ids, _, _ = tokenize_example(tok, [*MSGS, long_history[-1]], ACTION, 100_000)
    budget = len(short_ids) + 5
    ids, labels, truncated = tokenize_example(tok, long_history, ACTION, budget)
    # the old feedback message went whole; system prompt, task, latest message and action stay
    assert truncated and ids == short_ids and len(ids) <= budget
    assert labels[-n_action:] == full_labels[-n_action:]
    text = tok.decode(ids)
    assert "old feedback" not in text
    assert all(m["content"] in text for m in (*MSGS, long_history[-1]))

    row = make_rows()[0]
    row["prompt_messages"] = json.dumps(long_history)
    row["action"] = ACTION
    too_long = dict(row, action="x " * 500)
    exs, st = build_examples([row, too_long], tok, temperature=0.4, max_seq_len=budget)
    assert st.truncated == 1 and st.dropped_too_long == 1 and st.kept == 1
    assert len(exs[0].input_ids) <= budget


def test_read_trajectories_and_bad_input(tmp_path, tok):
    path = write_trajectories(tmp_path / "t" / "part-0.parquet")
    rows = read_trajectories(tmp_path / "t")
    assert len(rows) == len(make_rows()) and rows[0]["_source"] == "part-0.parquet:0"
    exs = build_examples(rows, tok, temperature=0.4)[0]
    assert examples_to_table(exs).num_rows == 4  # one packed sequence per (episode, turn)
    assert examples_to_table(exs, share_prompts=False).num_rows == len(rows)

    with pytest.raises(DataError, match="not found"):
        read_trajectories(tmp_path / "nope")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match="no .parquet"):
        read_trajectories(tmp_path / "empty_dir")
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"prompt_messages": ["[]"], "reward": [1.0]}), bad)
    with pytest.raises(DataError, match="missing trajectory column.*action"):
        read_trajectories(bad)
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.Table.from_pylist([], schema=pa.schema(
        [("prompt_messages", pa.string()), ("action", pa.string()), ("reward", pa.float64())])), empty)
    with pytest.raises(DataError, match="no rows"):
        read_trajectories(empty)
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="not a readable Parquet"):
        read_trajectories(garbage)
    assert path.exists()


def test_malformed_prompt_messages_name_the_row(tok):
    rows = make_rows()
    rows[1]["prompt_messages"] = "{not json"
    rows[1]["_source"] = "x.parquet:1"
    with pytest.raises(DataError, match=r"x.parquet:1: prompt_messages is not valid JSON"):
        build_examples(rows, tok, temperature=0.4)
    rows[1]["prompt_messages"] = json.dumps([{"role": "user"}])
    with pytest.raises(DataError, match="list of"):
        build_examples(rows, tok, temperature=0.4)


def test_pack_examples_shares_prompts_and_keeps_positions(tok):
    from w4s_ray.train.rwr import pack_examples

    exs, _ = build_examples(make_rows(n_episodes=1, turns=1, candidates=3), tok, temperature=0.4)
    n_prompt = exs[0].labels.index(next(t for t in exs[0].labels if t != IGNORE_INDEX))
    acts = [e.input_ids[n_prompt:] for e in exs]
    (row,) = pack_examples(exs, 100_000)
    assert row.input_ids == exs[0].input_ids[:n_prompt] + acts[0] + acts[1] + acts[2]
    assert row.weights == [e.weight for e in exs]
    start = n_prompt + len(acts[0])  # the second action
    assert row.src[start] == n_prompt - 1  # first token predicted from the prompt's end
    assert row.src[start + 1] == start
    assert row.pos[start:start + len(acts[1])] == list(range(n_prompt, n_prompt + len(acts[1])))
    assert row.seg[start] == 2 and row.seg[n_prompt - 1] == 0
    # a length cap splits the group into rows that each repeat the prompt
    rows = pack_examples(exs, n_prompt + max(map(len, acts)) + 1)
    assert len(rows) == 3 and all(r.input_ids[:n_prompt] == row.input_ids[:n_prompt] for r in rows)
    assert len(pack_examples(exs, 100_000, share_prompts=False)) == 3


def test_truncated_candidates_of_one_prompt_still_share_it(tok):
    from w4s_ray.train.rwr import pack_examples

    rows = make_rows(n_episodes=1, turns=1, candidates=3)
    rows[0]["prompt_messages"] = json.dumps(MSGS + [{"role": "user", "content": "history " * 400}])
    for r in rows[1:]:
        r["prompt_messages"] = rows[0]["prompt_messages"]
    rows[1]["action"] = ACTION  # shorter than the others: its own prompt budget is larger
    exs, st = build_examples(rows, tok, temperature=0.4, max_seq_len=400)
    # fitted to the longest action's budget, all three prompts are the same tokens
    assert st.truncated == 3 and len({tuple(e.input_ids[:e.action_start]) for e in exs}) == 1
    assert "You write workflows." in tok.decode(exs[0].input_ids)  # the system prompt stayed
    (row,) = pack_examples(exs, 10_000)
    n_prompt = row.seg.count(0)
    assert n_prompt == min(len(e.input_ids) - e.num_action_tokens for e in exs)
    assert max(row.pos) < 400  # every action still sits within max_seq_len positions


def _w4s_like_chat(turns: int) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": "SYSTEMPROMPT you improve agentic workflows. " * 40},
            {"role": "user", "content": "THETASK benchmark gsm-hard, API, current workflow. " * 40}]
    for k in range(turns):
        msgs += [{"role": "assistant", "content": f"REPLY{k} def solver(agent, task): " * 30},
                 {"role": "user", "content": f"FEEDBACK{k} accuracy 0.{k} failures " * 30}]
    return msgs


@pytest.mark.parametrize("loss_on", ["all_assistant", "candidate"])
def test_every_sequence_of_a_long_multi_turn_sample_holds_system_prompt_and_task(tok, loss_on):
    """A W4S-shaped chat far longer than max_seq_len: each training sequence keeps the system
    prompt's and the task's tokens; the dropped history is the oldest; the labels are exactly
    the assistant turns still present (each with its end-of-turn) plus the candidate."""
    from w4s_ray.train.rwr import tokenize_sample

    msgs = _w4s_like_chat(6)
    sys_ids = tok(msgs[0]["content"], add_special_tokens=False)["input_ids"]
    task_ids = tok(msgs[1]["content"], add_special_tokens=False)["input_ids"]
    full, _, _, _ = tokenize_sample(tok, msgs, ACTION, 100_000, loss_on)
    for max_len in (len(full) // 2, len(full) // 3, len(sys_ids) + len(task_ids) + 200):
        ids, labels, truncated, start = tokenize_sample(tok, msgs, ACTION, max_len, loss_on)
        assert truncated and len(ids) <= max_len
        text = tok.decode(ids)
        assert msgs[0]["content"] in text and msgs[1]["content"] in text
        assert str(sys_ids)[1:-1] in str(ids) and str(task_ids)[1:-1] in str(ids)
        kept = [k for k in range(6) if f"REPLY{k}" in text]
        assert "FEEDBACK5" in text  # the latest message stays
        # the oldest turns went first: what is left is a contiguous most-recent run
        assert kept == list(range(6 - len(kept), 6))
        spans, cur = [], []
        for t in labels:
            if t != IGNORE_INDEX:
                cur.append(t)
            elif cur:
                spans.append(cur)
                cur = []
        spans.append(cur)
        want = ([msgs[2 + 2 * k]["content"] + "<|im_end|>" for k in kept]
                if loss_on == "all_assistant" else [])
        assert [tok.decode(sp) for sp in spans] == [*want, ACTION + "<|im_end|>"]
        assert tok.decode(ids[start:]) == ACTION + "<|im_end|>"


def test_prompt_longer_than_budget_even_without_history_keeps_head_and_end(tok):
    """System prompt + task + latest message alone exceed the budget: tokens go from the
    middle, the head (system prompt first) and the generation prompt's end stay."""
    from w4s_ray.meta_agent import context
    from w4s_ray.train.rwr import tokenize_sample

    msgs = _w4s_like_chat(0) + [{"role": "user", "content": "LATEST " * 400}]
    sys_ids = tok(msgs[0]["content"], add_special_tokens=False)["input_ids"]
    full, _, _, n_prompt = tokenize_sample(tok, msgs, ACTION, 100_000, "candidate")
    max_len = len(sys_ids) + 300
    ids, _, truncated, start = tokenize_sample(tok, msgs, ACTION, max_len, "candidate")
    assert truncated and len(ids) == max_len
    assert msgs[0]["content"] in tok.decode(ids[:start])
    assert ids[start - context.MIN_TAIL:] == full[n_prompt - context.MIN_TAIL:]


def _candidates(codes_rewards, prompt=MSGS):
    return [{"prompt_messages": json.dumps(prompt), "action": f"```python\n{code}\n```",
             "code": code, "reward": reward, "valid": True, "chosen": i == 0}
            for i, (code, reward) in enumerate(codes_rewards)]


def test_repeats_once_trains_each_program_of_a_prompt_once_at_its_mean_reward(tok):
    seed = "def solver(agent, task):\n    return agent(task)"
    seed_again = "def solver(agent, task):\n    # the seed, reformatted\n    return agent( task )"
    novel = "def solver(agent, task):\n    return agent(task + ' Think step by step.')"
    rows = _candidates([(seed, 0.5), (seed_again, 0.7), (novel, 0.4), (seed, 0.6)])
    other_prompt = _candidates([(seed, 0.2)], prompt=[*MSGS, {"role": "user", "content": "t2"}])
    kept, st = build_examples(rows + other_prompt, tok, temperature=0.4)
    assert len(kept) == 5 and st.merged_repeats == 0  # the default keeps every copy (upstream)
    once, st = build_examples(rows + other_prompt, tok, temperature=0.4, repeats="once")
    assert st.merged_repeats == 2 and st.kept == len(once) == 3
    assert [e.reward for e in once] == pytest.approx([0.6, 0.4, 0.2])
    assert [e.weight for e in once] == pytest.approx([math.exp(r / 0.4) for r in (0.6, 0.4, 0.2)])
    assert once[0].meta["chosen"] is True  # a group holding the chosen candidate stays chosen
    # the novel program now weighs as much against the seed as one copy does, not a third
    share = once[1].weight / (once[0].weight + once[1].weight)
    share_kept = kept[2].weight / sum(e.weight for e in kept[:4])
    assert share > 2 * share_kept


def test_repeats_once_needs_the_code_column(tok):
    rows = _candidates([("def solver(agent, task):\n    return task", 0.1)])
    del rows[0]["code"]
    with pytest.raises(DataError, match="repeats=once needs a 'code' column"):
        build_examples(rows, tok, temperature=0.4, repeats="once")
    with pytest.raises(DataError, match="train.repeats must be one of"):
        build_examples(rows, tok, temperature=0.4, repeats="twice")
