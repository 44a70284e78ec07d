"""The JSON value in an executor reply, as the `agent` API reads it (`call_llm(response_format=
"json")`, `call_json_format_llm`), and a short, safe excerpt of a reply that had none.

Real models asked for JSON often wrap it: in a ```json fence, or inside prose ("Sure! Here is
the answer: {...} Hope it helps"). `parse_json_reply` tries, in order:
1. the whole reply (stripped) as JSON - any JSON value, as W4S's plain `json.loads` did;
2. each fenced block (```json, ```JSON or a bare ```) - the first whose body is JSON;
3. the first balanced `{...}` in the text that parses as a non-empty JSON object.
Anything else (Python dict literals, single quotes, trailing commas, truncated objects) is
refused: `NO_JSON` is returned and the caller reports the reply as undecodable. Steps 2-3
are bounded (`MAX_SCAN_CHARS` of text, `MAX_STARTS` opening braces tried) so a hostile or huge
reply costs little. NaN/Infinity are read as Python's `json` reads them (as W4S did).

Pure stdlib and no w4s imports beyond this package: it runs in the sandbox child (the agent)
and in the parent (the evaluation, which decides which replies to quote in feedback).
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_SCAN_CHARS = 200_000  # a longer reply is searched in its first this-many characters
MAX_STARTS = 512  # opening braces tried as the start of an embedded object
EXCERPT_CHARS = 400

NO_JSON: Any = object()  # sentinel: the reply holds no usable JSON

_FENCE = re.compile(r"```[ \t]*(?:json|JSON|Json)?[ \t]*\r?\n(.*?)\r?\n?[ \t]*```", re.DOTALL)
_DECODER = json.JSONDecoder()
_KEYLIKE = re.compile(r"\b(sk|pk|rk|key)-[A-Za-z0-9_\-]{8,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _loads(text: str) -> Any:
    """`json.loads`, NO_JSON on any failure."""
    try:
        value, end = _DECODER.raw_decode(text)
    except (ValueError, RecursionError):
        return NO_JSON
    return value if not text[end:].strip() else NO_JSON


def parse_json_reply(text: Any) -> Any:
    """The reply's JSON value (module docstring), or `NO_JSON`."""
    if not isinstance(text, str):
        return NO_JSON
    text = str.__str__(text)
    stripped = text.strip()
    if not stripped:
        return NO_JSON
    value = _loads(stripped)  # one linear pass, whatever the length
    if value is not NO_JSON:
        return value
    text = text[:MAX_SCAN_CHARS]
    for m in _FENCE.finditer(text):
        value = _loads(m.group(1).strip())
        if value is not NO_JSON:
            return value
    return _first_object(text)


def _first_object(text: str) -> Any:
    start, tried = text.find("{"), 0
    while start != -1 and tried < MAX_STARTS:
        tried += 1
        try:
            value, _ = _DECODER.raw_decode(text, start)
        except RecursionError:  # nesting no model writes: a pathological reply, stop here
            return NO_JSON
        except ValueError:
            value = None
        if isinstance(value, dict) and value:  # `{}` in prose is code (a JS body), not a reply
            return value
        start = text.find("{", start + 1)
    return NO_JSON


def reply_excerpt(text: Any, limit: int = EXCERPT_CHARS) -> str:
    """At most `limit` characters of a reply for the meta-agent to read: key-like strings
    masked, control characters and code fences neutralised (the excerpt sits inside a prompt
    whose own fences must stay intact), the cut marked."""
    s = str.__str__(text) if isinstance(text, str) else repr(type(text))
    s = _KEYLIKE.sub("***", s[: limit * 4])
    s = _CONTROL.sub(" ", s).replace("```", "'''").strip()
    if len(s) > limit:
        s = s[:limit].rstrip() + " [...]"
    return s
