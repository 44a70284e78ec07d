"""The P2 baseline: workflow evaluation the way the official W4S code does it.

Modelled on the released W4S code (`src/agent/executor_agent.py`, `src/tasks/*/task_*.py`):

- the workflow source is `exec`'d in the evaluating process and `solver(agent, task)` is called
  directly — no sandbox, no process boundary;
- one `Agent` per evaluation holds a synchronous `openai.OpenAI` client and calls
  `client.chat.completions.create(...)` from the worker threads (the SDK's own default retries,
  no cache, no shared rate limit);
- the items of ONE candidate run on `ThreadPoolExecutor(max_workers=min(len(items), 48))` via
  `executor.map`, and candidates are evaluated one after another;
- `execute_code` runs code with `exec` in-process under one global lock (at most one at a time),
  as W4S does; `test_on_public_test` execs the item's public tests in-process.

Scoring uses this project's `bm.score` so both sides do the same work per answer. This module is
a measuring stick for bench/bench_p2_official.py, not part of the platform: it runs untrusted
code in-process on purpose (that is what is being compared against) and must only be given the
benchmarks' own seed workflows.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

MAX_WORKERS = 48  # the official per-evaluation thread count

_CODE_LOCK = threading.Lock()
_CODE_SEM = threading.BoundedSemaphore(4)

REFLECTION_PROMPT = """Given a code problem and a python code solution which failed to pass test \
or execute, analyze the reason for the failure and propose a better code solution.
### problem
{problem}

### Code Solution
{solution}

### Execution Result
{exec_pass}

#### Failed Test Case
{test_fail}
"""


class W4SAgent:
    """The `agent` of the official code: synchronous OpenAI calls from the worker threads."""

    def __init__(self, api_base: str, model: str, api_key: str = "sim-key",
                 public_tests: dict[str, str] | None = None) -> None:
        import openai

        self.client = openai.OpenAI(base_url=api_base, api_key=api_key)
        self.model = model
        self.public_tests = public_tests or {}  # question -> tests (defines check(candidate))
        self.token_usage = {"prompt_tokens": 0, "completion_tokens": 0}
        self.calls = 0
        self._lock = threading.Lock()

    def call_llm(self, *, messages: list[dict], model: Any = None, temperature: float = 1.0,
                 max_completion_tokens: int = 4096, num_of_response: int = 1,
                 response_format: str = "text", agent_role: str = "task solver",
                 instructions: str = "", tools: Any = None, tool_choice: Any = None) -> list:
        if messages[0]["role"] != "system":
            system = f"You are a helpful {agent_role}.\n{instructions}".strip()
            messages = [{"role": "system", "content": system}, *messages]
        if response_format == "json":
            response_format = "json_object"
        messages = [{"role": m["role"], "content": str(m["content"])} for m in messages]
        resp = self.client.chat.completions.create(
            n=num_of_response, model=self.model, messages=messages,
            response_format={"type": "json_object" if response_format == "json_object"
                             else "text"},
            temperature=temperature, max_completion_tokens=max_completion_tokens,
        ).to_dict()
        with self._lock:
            self.calls += 1
            self.token_usage["prompt_tokens"] += resp["usage"]["prompt_tokens"]
            self.token_usage["completion_tokens"] += resp["usage"]["completion_tokens"]
        texts = [c["message"]["content"] for c in resp["choices"]]
        if response_format != "json_object":
            return texts
        out = []
        for t in texts:
            try:
                out.append(json.loads(t))
            except ValueError:
                out.append({"JSONDecodeError": t})
        return out

    def call_json_format_llm(self, *, messages: list[dict], model: Any = None,
                             temperature: float = 1.0, max_completion_tokens: int = 4096,
                             num_of_response: int = 1, agent_role: str = "task solver",
                             return_dict_keys: list[str] | tuple[str, ...] = (),
                             instructions: str = "") -> list[dict]:
        system = (f"You are a helpful {agent_role}.\n"
                  f"Reply in JSON format, ONLY using the keys {list(return_dict_keys)}.\n"
                  f"{instructions}").strip()
        # The official code sends role "developer"; this project's agent sends "system". The
        # simulator treats both alike; "system" keeps the two sides' prompts identical.
        replies = self.call_llm(messages=[{"role": "system", "content": system}, *messages],
                                temperature=temperature,
                                max_completion_tokens=max_completion_tokens,
                                num_of_response=num_of_response, response_format="json")
        for r in replies:
            if isinstance(r, dict):
                for k in return_dict_keys:
                    r.setdefault(k, f"NO {k} IN DICTIONARY")
        return replies

    def execute_code(self, code: str, timeout: float = 5) -> Any:
        if not _CODE_SEM.acquire(timeout=timeout):
            raise TimeoutError("Failed to acquire execution semaphore")
        try:
            namespace: dict[str, Any] = {}
            with _CODE_LOCK, contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                exec(code, namespace)  # noqa: S102 - the official loop's behaviour, on purpose
                if callable(namespace.get("solution")):
                    return namespace["solution"]()
                last = code.strip().split("\n")[-1].strip()
                if "=" in last:
                    return namespace[last.split("=")[0].strip()]
                return eval(last, namespace)  # noqa: S307
        except Exception as exc:
            raise Exception(f"Error when executing code: {exc}") from exc
        finally:
            _CODE_SEM.release()

    def _exec_test(self, task: str, solution: str, entry_point: str) -> str | dict:
        tests = self.public_tests.get(task)
        if tests is None:
            return "no error"
        ns: dict[str, Any] = {}
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(solution, ns)  # noqa: S102
                exec(tests, ns)  # noqa: S102
                ns["check"](ns[entry_point])
        except AssertionError as exc:
            return f"AssertionError: {exc}"
        except Exception as exc:  # noqa: BLE001 - reported to the repair prompt, as W4S does
            return {"exec_fail_case": str(exc)}
        return "no error"

    def test_on_public_test(self, task: str, solution: str, entry_point: str,
                            test_loop: int = 3) -> dict:
        count = 0
        for _ in range(test_loop):
            result = self._exec_test(task, solution, entry_point)
            if result == "no error":
                return {"result": True, "solution": solution, "feedback": result, "count": count}
            failed_exec = isinstance(result, dict)
            prompt = REFLECTION_PROMPT.format(
                problem=task, solution=solution,
                exec_pass=(f"executed unsuccessfully, error: \n {result['exec_fail_case']}"
                           if failed_exec else "executed successfully"),
                test_fail="executed unsucessfully" if failed_exec else result)
            reply = self.call_json_format_llm(
                messages=[{"role": "user", "content": prompt}], temperature=0.3,
                agent_role="Expert Python Programmer", return_dict_keys=["reflection", "code"])[0]
            solution = str(reply.get("code", solution))
            count += 1
        result = self._exec_test(task, solution, entry_point)
        return {"result": result == "no error", "solution": solution, "feedback": result,
                "count": count}

    @staticmethod
    def extract_answer_str(answer_str: Any) -> str:
        text = str(answer_str)
        boxed = re.findall(r"\\boxed{((?:[^{}]|{(?:[^{}]|{[^{}]*})*})*)}", text, re.DOTALL)
        if boxed:
            return boxed[-1].strip()
        nums = re.findall(r"[-+]?\d+(?:,\d{3})*(?:\.\d+)?|\d+\.\d+", text)
        if nums:
            return nums[-1].replace(",", "")
        sentences = [s.strip() for s in re.split(r"(?<!\d)[.!?]\s+", text) if s.strip()]
        return sentences[-1] if sentences else ""

    @staticmethod
    def extract_code_block(response: Any, entry_point: str = "solution") -> str:
        text = str(response)
        blocks = re.findall(r"```python\n(.*?)\n```", text, re.DOTALL) or \
            re.findall(r"```\n(.*?)\n```", text, re.DOTALL)
        return next((b for b in blocks if f"def {entry_point}" in b), "")


@dataclass
class BaselineResult:
    tag: str
    accuracy: float
    n: int
    calls: int
    errors: int
    wall_s: float
    scores: list[float] = field(default_factory=list)


def evaluate_candidate(code: str, bm: Any, items: list[Any], api_base: str, model: str,
                       tag: str = "", max_workers: int = MAX_WORKERS) -> BaselineResult:
    """One candidate on `items`, the official way (module docstring)."""
    t0 = time.perf_counter()
    tests = {it.question: t for it in items if (t := bm.public_tests(it)) is not None}
    agent = W4SAgent(api_base, model, public_tests=tests)
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 - in-process, as the official loop does
    solver = namespace["solver"]

    def wrapped(task: str) -> Any:
        try:
            return solver(agent, task)
        except Exception as exc:  # noqa: BLE001 - an item's failure scores 0
            return exc

    with ThreadPoolExecutor(max_workers=max(1, min(len(items), max_workers))) as pool:
        outs = list(pool.map(wrapped, [it.question for it in items]))
    scores, errors = [], 0
    for it, out in zip(items, outs, strict=True):
        if isinstance(out, Exception) or not isinstance(out, dict):
            errors += 1
            scores.append(0.0)
        else:
            scores.append(bm.score(it, out.get("answer")))
    return BaselineResult(tag=tag, accuracy=sum(scores) / max(1, len(scores)), n=len(items),
                          calls=agent.calls, errors=errors, wall_s=time.perf_counter() - t0,
                          scores=scores)


def evaluate_sequential(candidates: list[tuple[str, str, int]], api_base: str, model: str,
                        max_workers: int = MAX_WORKERS) -> list[BaselineResult]:
    """[(code, benchmark, limit)] one after another, each on its benchmark's valid items."""
    from w4s_ray.benchmarks import get_benchmark

    out = []
    for code, name, limit in candidates:
        bm = get_benchmark(name)
        items = bm.load("valid")[:limit]
        out.append(evaluate_candidate(code, bm, items, api_base, model, tag=name,
                                      max_workers=max_workers))
    return out
