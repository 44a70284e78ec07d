"""Workflow identity: copies that differ only in comments, layout or docstrings are one program;
anything that changes what runs is another."""

from __future__ import annotations

from w4s_ray.workflow.normalize import normalize_code, workflow_key

BASE = '''def solver(agent, task):
    out = agent.call_llm(messages=[{"role": "user", "content": task}])
    return {"answer": out[0]}
'''

SAME = '''# A chain of thought.
def solver(agent,   task):
    """Ask once."""
    # one call
    out = agent.call_llm(messages=[{'role': 'user', 'content': task}])  # reply list

    "a string used as a comment"
    return {'answer': out[0]}
'''


def test_comments_layout_docstrings_and_quotes_do_not_count():
    assert workflow_key(SAME) == workflow_key(BASE)
    assert normalize_code(SAME) == normalize_code(BASE)
    assert "#" not in normalize_code(SAME) and "Ask once" not in normalize_code(SAME)


def test_a_change_in_what_runs_is_another_workflow():
    for other in (BASE.replace("out[0]", "out[-1]"),          # another literal
                  BASE.replace("out", "reply"),                # another name
                  BASE.replace("messages=", "temperature=0.2, messages=")):
        assert workflow_key(other) != workflow_key(BASE)


def test_a_function_that_is_only_a_docstring_still_normalises():
    code = 'def helper():\n    """Nothing."""\n\ndef solver(agent, task):\n    return task\n'
    assert normalize_code(code) == "def helper():\n    pass\n\ndef solver(agent, task):\n    return task"


def test_unparsable_code_is_compared_without_comments_and_blank_lines():
    a = "def solver(agent, task:\n    # try\n    return   task\n"
    b = "def solver(agent, task:\n\n    return task   # done\n"
    assert workflow_key(a) == workflow_key(b)
    assert workflow_key(a) != workflow_key(a.replace("return", "yield"))
