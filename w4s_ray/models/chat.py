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

import re
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


def mask_contents(tokenizer: Any, messages: list[dict[str, str]]
                  ) -> tuple[list[dict[str, str]], dict[str, str]]:
    """`messages` with every content that holds special-token text replaced by a unique
    placeholder, and {placeholder: content}. Render the masked messages with the template and
    tokenize the result with `encode_masked`."""
    specials = special_texts(tokenizer)
    marks: dict[str, str] = {}
    masked = []
    for i, m in enumerate(messages):
        content = m.get("content") or ""
        if any(s in content for s in specials):
            mark = f"\ue000w4s-content-{i}\ue001"
            marks[mark] = content
            m = dict(m, content=mark)
        masked.append(m)
    return masked, marks


def encode_masked(tokenizer: Any, text: str, marks: dict[str, str]) -> list[int]:
    """Ids of `text` (a template rendered from `mask_contents` messages, or a slice of it that
    does not cut a placeholder): the template's own text with special tokens, each placeholder's
    content as plain text."""
    if not marks:
        return _ids(tokenizer, text, split_special=False)
    ids: list[int] = []
    pos = 0
    for m in re.finditer("|".join(map(re.escape, marks)), text):
        ids += _ids(tokenizer, text[pos:m.start()], split_special=False)
        ids += _ids(tokenizer, marks[m.group()], split_special=True)
        pos = m.end()
    return ids + _ids(tokenizer, text[pos:], split_special=False)


def encode_chat(
    tokenizer: Any, messages: list[dict[str, str]], *, add_generation_prompt: bool = True
) -> list[int]:
    """Prompt ids for `messages` (+ the assistant generation prompt)."""
    masked, marks = mask_contents(tokenizer, messages)
    rendered = _render(tokenizer, masked, add_generation_prompt)
    for i, m in enumerate(masked):
        if m.get("content") in marks and rendered.count(m["content"]) != 1:
            raise PromptFormatError(
                f"message {i} holds special-token text and the chat template transforms message "
                "contents, so it cannot be encoded as plain text safely"
            )
    return encode_masked(tokenizer, rendered, marks)
