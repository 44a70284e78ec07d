"""Chat messages to prompt token ids with the model's own chat template (no torch, no Ray).

Message contents are user data: text in them that spells a special token (a literal
"<|im_end|>" in a user message, a workflow that prints "<|endoftext|>") must reach the model as
ordinary characters, never as the control token. Tokenizing the rendered template in one piece
would parse such text as the token and let a message end its own turn. So when a content holds
special-token text, the template is rendered with a placeholder per content, the template's own
text is tokenized with special tokens and each content with `split_special_tokens=True`.
Contents without special-token text are tokenized in one piece as before (identical ids).

A template that rejects the messages (role order, ...) raises `PromptFormatError`.
"""

from __future__ import annotations

from typing import Any


class PromptFormatError(ValueError):
    """The chat template refused the messages, or could not be rendered safely."""


def special_texts(tokenizer: Any) -> list[str]:
    """Strings the tokenizer turns into a single added/special token."""
    texts = set(getattr(tokenizer, "all_special_tokens", []) or [])
    try:
        texts |= set(tokenizer.get_added_vocab())
    except Exception:  # slow tokenizers without added vocab
        pass
    return sorted((t for t in texts if t), key=len, reverse=True)


def _render(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    from jinja2 import TemplateError

    try:
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )
    except TemplateError as exc:
        raise PromptFormatError(f"the model's chat template rejected the messages: {exc}") from None


def _ids(tokenizer: Any, text: str, *, split_special: bool) -> list[int]:
    if not text:
        return []
    kwargs: dict[str, Any] = {"add_special_tokens": False}
    if split_special:
        kwargs["split_special_tokens"] = True
    return list(tokenizer(text, **kwargs)["input_ids"])


def encode_chat(
    tokenizer: Any, messages: list[dict[str, str]], *, add_generation_prompt: bool = True
) -> list[int]:
    """Prompt ids for `messages` (+ the assistant generation prompt)."""
    specials = special_texts(tokenizer)
    risky = [i for i, m in enumerate(messages)
             if any(s in (m.get("content") or "") for s in specials)]
    if not risky:
        # The template's text holds every special token the model was trained with.
        return _ids(tokenizer, _render(tokenizer, messages, add_generation_prompt),
                    split_special=False)
    marks = {i: f"\ue000w4s-content-{i}\ue001" for i in risky}
    masked = [dict(m, content=marks[i]) if i in marks else m for i, m in enumerate(messages)]
    rendered = _render(tokenizer, masked, add_generation_prompt)
    ids: list[int] = []
    rest = rendered
    for i in risky:
        before, sep, after = rest.partition(marks[i])
        if not sep or marks[i] in after:
            raise PromptFormatError(
                f"message {i} holds special-token text and the chat template transforms message "
                "contents, so it cannot be encoded as plain text safely"
            )
        ids += _ids(tokenizer, before, split_special=False)
        ids += _ids(tokenizer, messages[i].get("content") or "", split_special=True)
        rest = after
    return ids + _ids(tokenizer, rest, split_special=False)
