"""The one prompt-fitting rule (`meta_agent.context.fit_chat`), on a word-level encoder."""

from __future__ import annotations

from w4s_ray.meta_agent import context


def _encode(messages, generation_prompt):
    """One token per word; each message opens with its role, the generation prompt is 'GEN'."""
    ids = []
    for m in messages:
        ids += [m["role"].upper()] + m["content"].split() + ["END"]
    return ids + (["GEN"] if generation_prompt else [])


def _chat(turns, task_words=20):
    msgs = [{"role": "system", "content": "sys " * 10},
            {"role": "user", "content": "task " * task_words}]
    for k in range(turns):
        msgs += [{"role": "assistant", "content": f"reply{k} " * 10},
                 {"role": "user", "content": f"fb{k} " * 10}]
    return msgs


def test_a_chat_that_fits_is_untouched():
    msgs = _chat(2)
    fit = context.fit_chat(msgs, _encode, 1000)
    assert not fit.truncated and fit.fitted_ids() == _encode(msgs, True)


def test_oldest_history_turns_go_first_and_the_chat_keeps_alternating():
    msgs = _chat(5)
    full = len(_encode(msgs, True))
    fit = context.fit_chat(msgs, _encode, full - 20)  # one turn (24 tokens) must go
    assert fit.truncated and fit.dropped == 2
    assert [m["content"].split()[0] for m in fit.messages[2:]] == [
        "reply1", "fb1", "reply2", "fb2", "reply3", "fb3", "reply4", "fb4"]
    assert fit.fitted_ids() == _encode(fit.messages, True)  # whole messages, no token cut


def test_head_and_end_stay_when_the_middle_must_be_cut():
    msgs = _chat(3, task_words=200)
    budget = 12 + 50 + context.MIN_TAIL  # the system prompt and part of the task fit
    fit = context.fit_chat(msgs, _encode, budget)
    ids = fit.fitted_ids()
    assert len(ids) == budget
    assert fit.dropped == 5  # history first: all but the latest message went
    assert fit.messages == [*msgs[:2], msgs[-1]]
    head = _encode(msgs[:2], False)
    assert fit.head == len(head) and ids[:fit.keep_head] == head[:fit.keep_head]
    assert ids[:12] == _encode(msgs[:1], False)  # the whole system prompt
    assert ids[-fit.keep_tail:] == _encode(fit.messages, True)[-fit.keep_tail:]
    assert ids[-1] == "GEN" and fit.keep_tail >= context.MIN_TAIL


def test_a_budget_below_the_minimum_tail_keeps_the_last_tokens():
    msgs = _chat(1)
    fit = context.fit_chat(msgs, _encode, 10)
    assert fit.fitted_ids() == _encode(fit.messages, True)[-10:]


def test_a_template_that_requires_alternating_roles_keeps_the_last_reply():
    """An encoder that refuses two messages of one role side by side (as `encode_chat` does
    for such a template): the last reply stays between the task and the feedback and the
    middle is cut by tokens instead."""
    def strict(messages, generation_prompt):
        roles = [m["role"] for m in messages if m["role"] != "system"]
        if any(a == b for a, b in zip(roles, roles[1:], strict=False)):
            raise ValueError("roles must alternate")
        return _encode(messages, generation_prompt)

    msgs = _chat(3, task_words=200)
    budget = 12 + 50 + context.MIN_TAIL
    fit = context.fit_chat(msgs, strict, budget)
    assert fit.dropped == 4 and fit.messages == [*msgs[:2], *msgs[-2:]]
    ids = fit.fitted_ids()
    assert len(ids) == budget and ids[:12] == _encode(msgs[:1], False) and ids[-1] == "GEN"
