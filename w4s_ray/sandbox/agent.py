"""The `agent` object a workflow receives — it lives in the sandbox child.

It holds nothing secret: no API key, no executor client, no gold answer. Each method turns its
arguments into a plain request and forwards it over the RPC pipe to the parent, which calls the
executor (model, key and limits come from the parent's config), runs code or public tests, and
counts calls, tokens and cost. Method names, arguments and return shapes follow the W4S
`Agent` so that workflows written for W4S (and W4S prompts) work unchanged; a `model=`
argument is accepted and ignored.

Identical requests inside one item are numbered (`occurrence` 0, 1, 2, ...) so that a workflow
that asks the same question five times gets five distinct samples, and the same five again
when the evaluation is repeated (the completion cache keys on the occurrence).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from typing import Any

REFLECTION_PROMPT = """A Python solution to the programming problem below failed its public tests or \
did not run. Find the cause, then write a corrected solution.

### Problem
{problem}

### Solution that failed
{solution}

### What happened when it ran
{exec_pass}

### Failing test cases
{test_fail}

Reply with a short reflection on why it failed and the complete corrected code, with no extra \
text and no test cases in the code."""

_REPAIR_INSTRUCTIONS = (
    "Requirements:\n1. Give a reflection on the failed tests and the code, then a better, "
    "complete code solution without any additional text or test cases."
)


class ExecutorCallError(RuntimeError):
    """The executor failed after its retries (the item fails with kind "executor")."""


class BudgetStop(RuntimeError):
    """The run's budget is spent; the parent stops the evaluation."""


def _check_messages(messages: Any, *, strict: bool) -> list[dict[str, str]]:
    if not isinstance(messages, list):
        raise ValueError("messages must be a list")
    if not messages:
        raise ValueError("messages must not be empty")
    out = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise ValueError(f"message at index {i} must be a dictionary")
        keys = set(msg.keys())
        if strict and keys != {"role", "content"}:
            extra, missing = keys - {"role", "content"}, {"role", "content"} - keys
            err = f"message at index {i} must contain exactly two keys: 'role' and 'content'."
            if extra:
                err += f" Found extra keys: {sorted(map(str, extra))}."
            if missing:
                err += f" Missing required keys: {sorted(missing)}."
            raise ValueError(err)
        if "role" not in msg or "content" not in msg:
            raise ValueError(f"message at index {i} must have 'role' and 'content'")
        if not isinstance(msg["role"], str):
            raise ValueError(f"'role' at index {i} must be a string")
        content = msg["content"]
        if not isinstance(content, str):
            if strict:
                raise ValueError(f"'content' at index {i} must be a string")
            content = str(content)  # W4S's call_llm coerces content with str()
        out.append({"role": str.__str__(msg["role"]), "content": str.__str__(content)})
    return out


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return {"JSONDecodeError": text}


class Agent:
    """What `solver(agent, task)` gets. One instance per item; safe to use from several threads."""

    def __init__(self, rpc: Callable[[str, dict], Any], entry_point: str | None = None) -> None:
        self._rpc = rpc
        self._occ: dict[str, int] = {}
        self._lock = threading.Lock()
        self.entry_point = entry_point

    def _occurrence(self, request: dict) -> int:
        key = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
        with self._lock:
            n = self._occ.get(key, 0)
            self._occ[key] = n + 1
        return n

    def call_llm(
        self,
        *,
        messages: list[dict[str, str]],
        temperature: float = 1.0,
        max_completion_tokens: int = 4096,
        num_of_response: int = 1,
        response_format: str = "text",
        agent_role: str = "task solver",
        instructions: str = "",
        model: Any = None,  # ignored: the executor model is set by config
        tools: Any = None,  # accepted for W4S compatibility; not forwarded
        tool_choice: Any = None,
    ) -> list:
        msgs = _check_messages(messages, strict=False)
        if response_format not in ("text", "json", "json_object"):
            raise ValueError("response_format must be 'text', 'json' or 'json_object'")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise ValueError("temperature must be a number")
        if isinstance(num_of_response, bool) or not isinstance(num_of_response, int) \
                or num_of_response < 1:
            raise ValueError("num_of_response must be a positive integer")
        if isinstance(max_completion_tokens, bool) or not isinstance(max_completion_tokens, int) \
                or max_completion_tokens < 1:
            raise ValueError("max_completion_tokens must be a positive integer")
        if msgs[0]["role"] != "system":
            system = f"You are a helpful {agent_role}.\n{instructions}".strip()
            msgs = [{"role": "system", "content": system}, *msgs]
        fmt = "json_object" if response_format in ("json", "json_object") else "text"
        request = {
            "messages": msgs, "temperature": float(temperature), "n": int(num_of_response),
            "response_format": fmt, "max_tokens": int(max_completion_tokens),
        }
        request["occurrence"] = self._occurrence(request)
        texts = self._rpc("llm", request)["texts"]
        if fmt == "text":
            return list(texts)
        return [_parse_json(t) for t in texts]

    def call_json_format_llm(
        self,
        *,
        messages: list[dict[str, str]],
        temperature: float = 1.0,
        max_completion_tokens: int = 4096,
        num_of_response: int = 1,
        agent_role: str = "task solver",
        return_dict_keys: list[str] | tuple[str, ...] = (),
        instructions: str = "",
        model: Any = None,  # ignored
    ) -> list[dict]:
        msgs = _check_messages(messages, strict=True)
        keys = [str(k) for k in (return_dict_keys or [])]
        system = (
            f"You are a helpful {agent_role}.\n"
            f"Reply in JSON format, ONLY using the keys {keys}.\n{instructions}"
        ).strip()
        replies = self.call_llm(
            messages=[{"role": "system", "content": system}, *msgs],
            temperature=temperature, max_completion_tokens=max_completion_tokens,
            num_of_response=num_of_response, response_format="json",
        )
        out = []
        for reply in replies:
            if not isinstance(reply, dict):
                reply = {"JSONDecodeError": json.dumps(reply)}
            for key in keys:
                reply.setdefault(key, f"NO {key} IN DICTIONARY")
            out.append(reply)
        return out

    def execute_code(self, code: str, timeout: float = 5) -> Any:
        """Run `code` in a nested, time-limited process (started by the parent). Returns
        `solution()` if defined, else the value of the last line; raises Exception on error."""
        if not isinstance(code, str):
            raise ValueError("code must be a string")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        res = self._rpc("exec", {"code": code, "timeout": float(timeout)})
        if not res.get("ok"):
            raise Exception(f"Error when executing code: {res.get('error', 'unknown error')}")
        return res.get("value")

    def test_on_public_test(
        self, task: str, solution: str, entry_point: str, test_loop: int = 3
    ) -> dict:
        """Run the item's public tests; on failure ask the executor for a repair, up to
        `test_loop` times. Returns {"result", "solution", "feedback", "count"}."""
        if not isinstance(solution, str):
            solution = str(solution)
        entry_point = str(entry_point if entry_point is not None else self.entry_point or "")
        count = 0
        for _ in range(max(0, int(test_loop))):
            res = self._rpc("public_test", {"solution": solution, "entry_point": entry_point})
            if res.get("passed") is None:
                return {"result": False, "solution": solution,
                        "feedback": res.get("feedback", "no public tests"), "count": count}
            if res["passed"]:
                return {"result": True, "solution": solution, "feedback": "no error",
                        "count": count}
            if res.get("exec_error"):
                exec_pass = f"executed unsuccessfully, error: \n {res.get('feedback', '')}"
                test_fail = "executed unsuccessfully"
            else:
                exec_pass, test_fail = "executed successfully", res.get("feedback", "")
            reply = self.call_json_format_llm(
                messages=[{"role": "user", "content": REFLECTION_PROMPT.format(
                    problem=task, solution=solution, exec_pass=exec_pass, test_fail=test_fail)}],
                temperature=0.3, agent_role="Expert Python Programmer",
                return_dict_keys=["reflection", "code"], instructions=_REPAIR_INSTRUCTIONS,
            )[0]
            new = reply.get("code")
            if isinstance(new, str) and new.strip() and not new.startswith("NO code IN"):
                solution = self.extract_code_block(new, entry_point) or new
            count += 1
        res = self._rpc("public_test", {"solution": solution, "entry_point": entry_point})
        passed = bool(res.get("passed"))
        return {"result": passed, "solution": solution,
                "feedback": "no error" if passed else res.get("feedback", ""), "count": count}

    @staticmethod
    def extract_answer_str(answer_str: Any) -> str:
        """The last \\boxed{...}, else the last number, else the last sentence."""
        text = str(answer_str)
        boxed = re.findall(r"\\boxed{((?:[^{}]|{(?:[^{}]|{[^{}]*})*})*)}", text, re.DOTALL)
        if boxed:
            return boxed[-1].strip()
        numbers = re.findall(r"[-+]?\d+(?:,\d{3})*(?:\.\d+)?|\d+\.\d+", text)
        if numbers:
            return numbers[-1].replace(",", "")
        sentences = [s.strip() for s in re.split(r"(?<!\d)[.!?]\s+", text) if s.strip()]
        return sentences[-1] if sentences else ""

    @staticmethod
    def extract_code_block(response: Any, entry_point: str = "solution") -> str:
        """The first fenced code block that defines `entry_point` ("" if none)."""
        text = str(response).replace("\r\n", "\n")
        blocks = re.findall(r"```python\n(.*?)\n```", text, re.DOTALL)
        if not blocks:
            blocks = re.findall(r"```\n(.*?)\n```", text, re.DOTALL)
        for block in blocks:
            if f"def {entry_point}" in block:
                return block
        return ""
