"""extract_workflow: the last fenced block defining solver(agent, task), precise errors."""

from __future__ import annotations

import pytest

from w4s_ray.errors import W4SError
from w4s_ray.workflow.errors import WorkflowError
from w4s_ray.workflow.extract import check_workflow, code_blocks, extract_workflow

GOOD = "def solver(agent, task):\n    return {'answer': task}\n"


@pytest.mark.parametrize("text, expected_body", [
    (f"Here:\n```python\n{GOOD}```\nDone.", "return {'answer': task}"),
    (f"```\n{GOOD}```", "return {'answer': task}"),
    (f"```py\n{GOOD}```", "return {'answer': task}"),
    (f"```Python\n{GOOD}```", "return {'answer': task}"),
    (f"text\r\n```python\r\n{GOOD.replace(chr(10), chr(13) + chr(10))}```\r\n", "return {'answer'"),
    (f"reasoning...\n```python\n{GOOD}", "return {'answer': task}"),  # no closing fence
    ("```python\ndef solver(agent, task):\n    return {'answer': 1}\n```\n"
     "```python\ndef solver(agent, task):\n    return {'answer': 2}\n```", "'answer': 2"),
    # the last block WITH a solver wins over a later helper/example block
    ("```python\ndef solver(agent, task):\n    return {'answer': 3}\n```\n"
     "Example use:\n```python\nprint(solver(a, 't'))\n```", "'answer': 3"),
    ("```python\nasync def solver(agent, task):\n    return {'answer': 4}\n```", "'answer': 4"),
    ("```python\ndef solver(agent, task: str) -> dict:\n    return {'answer': 5}\n```", "'answer': 5"),
    ("  ```python\n" + GOOD + "  ```", "return"),
])
def test_extracts_the_workflow(text, expected_body):
    code = extract_workflow(text)
    assert expected_body in code
    assert "```" not in code
    compile(code, "<t>", "exec")


def test_ignores_blocks_in_other_languages():
    text = f"```json\n{{\"a\": 1}}\n```\n```python\n{GOOD}```\n```bash\nls\n```"
    assert extract_workflow(text).strip() == GOOD.strip()


@pytest.mark.parametrize("text, message", [
    ("no code at all", "no python code block"),
    ("", "no python code block"),
    ("```json\n{\"answer\": 1}\n```", "no python code block"),
    ("```python\n```", "no python code block"),
    ("```python\ndef solver(agent, task)\n    return 1\n```", "syntax error at line 1:"),
    ("```python\nimport re\n\ndef solver(agent, task):\n    x = (\n```", "syntax error at line"),
    ("```python\ndef solve(agent, task):\n    return {}\n```", "no function named solver"),
    ("```python\nsolver = lambda agent, task: {}\n```", "no function named solver"),
    ("```python\ndef solver(task):\n    return {}\n```", "solver must take exactly (agent, task)"),
    ("```python\ndef solver(agent, task, extra):\n    return {}\n```",
     "solver must take exactly (agent, task)"),
    ("```python\ndef solver(agent, *args):\n    return {}\n```",
     "solver must take exactly (agent, task)"),
    ("```python\ndef solver(agent, task, **kw):\n    return {}\n```",
     "solver must take exactly (agent, task)"),
    ("```python\ndef solver(agent, task=None):\n    return {}\n```",
     "solver must take exactly (agent, task)"),
])
def test_errors_are_precise(text, message):
    with pytest.raises(WorkflowError) as info:
        extract_workflow(text)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, W4SError)


def test_syntax_error_reports_the_right_line():
    code = "import re\n\n\ndef solver(agent, task):\n    return {'answer': task\n"
    with pytest.raises(WorkflowError, match=r"syntax error at line 5"):
        check_workflow(code)


def test_non_text_is_an_error():
    with pytest.raises(WorkflowError):
        extract_workflow(None)  # type: ignore[arg-type]


def test_code_blocks_keeps_order_and_unclosed_tail():
    blocks = code_blocks("```python\na = 1\n```\ntext\n```\nb = 2")
    assert blocks == ["a = 1\n", "b = 2\n"]
