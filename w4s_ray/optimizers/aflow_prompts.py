"""The optimizer prompt of AFlow's expansion step, in this project's words (no I/O).

It covers what AFlow's `WORKFLOW_OPTIMIZE_PROMPT`, `WORKFLOW_INPUT` and `WORKFLOW_CUSTOM_USE`
(FoundationAgents/AFlow `scripts/prompts/optimize_prompt.py`) ask for: rebuild and improve the
given graph and its custom prompts for one question type under the answer-format constraint;
exactly one modification of at most a few lines, noted in <modification>; review, revise,
ensembles, loops and conditionals are allowed, complexity at most 10 operator calls; the
experience of earlier modifications of this graph, its score, its graph and prompts, the
operator descriptions, and logs of its failures on validation; how `custom` and
`prompt_custom` work and the rule that every referenced prompt must be defined; never return
None; use the prompts, not code, to shape the answer format; try unused operators.
The reply format is AFlow's XML tags: <modification>, <graph>, <prompt>.
"""

from __future__ import annotations

from w4s_ray.optimizers.aflow_graph import call_signature


def optimize_prompt(*, question_type: str, kind: str, answer_format: str, experience: str,
                    score: float, graph: str, prompts: str, operators: str, log: str) -> str:
    return f"""You are improving a workflow that solves {question_type} problems with a strong \
language model. A workflow is a graph — the Python class `Workflow` calling operators — plus \
the custom prompts its `custom` calls use.

ANSWER FORMAT the benchmark scores: {answer_format}

Below is a graph, with its prompts, that scored well in an earlier round (the maximum score \
is 1). Rebuild and improve it: you may add, change or remove operator calls, parameters or \
prompts. Make exactly ONE modification — one idea, no more than 5 changed lines — and state \
it in <modification>. The new graph must differ from this one. Critical-thinking patterns \
help: review and revise, ensembles (several answers from the same or different prompts, then \
voting, merging or checking the majority), self-ask, and Python control flow (loops, \
conditionals). Keep the graph's complexity at most 10 operator calls per question. Pass the \
context each step needs: a step that does not see the problem cannot solve it.

<sample>
<experience>{experience}</experience>
<modification>(for example: add / delete / modify ...)</modification>
<score>{score:.4f}</score>
<graph>
{graph}
</graph>
<prompt>
{prompts}
</prompt>
<operator_description>
{operators}
</operator_description>
</sample>

Validation questions this graph got wrong (use them to decide what to change):
{log}

Rules for the graph:
- Write `class Workflow(Operators)` with a plain (not async) method \
`{call_signature(kind)}` that returns the final answer as a string. Operators are methods: \
`self.custom(...)`, `self.sc_ensemble(...)`, ... Never return None.
- `re`, `json`, `Counter`, the operators and `prompt_custom` are available; import anything \
else you need yourself, inside the graph.
- Shape the answer format with prompts, not with code: the benchmark extracts and scores the \
answer itself.
- Using operators the graph does not use yet often helps.

Rules for the prompts:
- `custom(input=..., instruction=prompt_custom.NAME)` sends instruction + input; there are no \
placeholders, so build the input string yourself, e.g. \
`self.custom(input=problem + "\\nDraft: " + draft, instruction=prompt_custom.CHECK_PROMPT)`.
- The <prompt> section holds ONLY Python assignments `NAME = \"\"\"...\"\"\"`, one per prompt \
the graph uses through `prompt_custom.NAME`, and nothing else. Every `prompt_custom.NAME` in \
the graph MUST be defined there; drop prompts the graph does not use. The other operators \
have built-in prompts: do not write prompts for them.

Reply with your optimization idea first, then these three tags:
<modification>one sentence: the single change you made</modification>
<graph>the complete new graph</graph>
<prompt>the complete prompt section</prompt>"""


def format_experience(parent: int, parent_score: float, tried: list[dict]) -> str:
    """What was already tried from this parent (AFlow's experience), in our words.

    AFlow prints every earlier modification of the parent as prohibited (failures with their
    score, successes without); we show both with their score and whether they improved, and
    ask for something fundamentally different.
    """
    if not tried:
        return f"No modification of this graph (round {parent}) has been tried yet."
    lines = [f"Score of this graph (round {parent}): {parent_score:.4f}",
             "Modifications already tried from this graph — do NOT repeat any of them:"]
    for t in tried:
        verdict = "improved" if t["score"] > parent_score else "did not improve"
        lines.append(f"- {t['modification']} (score {t['score']:.4f}, {verdict})")
    lines.append("Learn from these results: the ones that did not improve show approaches that "
                 "do not work here. Change the method itself, not just the Python syntax or "
                 "the wording of a prompt.")
    return "\n".join(lines)
