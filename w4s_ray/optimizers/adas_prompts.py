"""The meta agent's prompts for ADAS (Meta Agent Search), in this project's words.

They cover what ADAS's prompt (`_mgsm/mgsm_prompt.py` `base`, `Reflexion_prompt_1/2`, and the
debugging message in `search.py`) asks for, rewritten for workflows `solver(agent, task)` on
this project's agent API instead of ADAS's `forward(self, taskInfo)` / `LLMAgentBase`:

- an overview: the meta agent designs agentic systems for one benchmark (its description and
  answer format);
- the framework: the workflow interface and the `agent` API (the same text W4S's prompt uses);
- the archive of discovered workflows as JSON (thought, name, code, fitness, generation), with
  the fitness explained (bootstrap median and 95% CI of validation accuracy; maximise it);
- the output format: one JSON object with "thought", "name" and "code", and an example;
- implementation mistakes to avoid (the role of ADAS's "WRONG Implementation examples");
- the instruction to be creative, learn from the archive and draw on the literature;
- two reflexion prompts and the repair prompt.

Only validation fitness ever reaches these prompts (the archive entries are rendered from an
explicit list of fields).
"""

from __future__ import annotations

import json

from w4s_ray.rlao.prompts import agent_api

SYSTEM_PROMPT = "You are a helpful assistant. Every reply is one well-formed JSON object."

ARCHIVE_FIELDS = ("thought", "name", "code", "fitness", "generation")

EXAMPLE = {
    "thought": "**Insights:**\nWhat the archive teaches and what the next design should be.\n"
               "**Overall Idea:**\nThe concept behind the design and why it should work.\n"
               "**Implementation:**\nThe steps of the implementation, one by one.",
    "name": "Name of the proposed workflow",
    "code": "def solver(agent, task):\n    # the complete implementation\n"
            "    return {\"answer\": answer}\n",
}

_MISTAKES = """1. Returning an error message or a placeholder as the answer. Whatever goes wrong \
(a malformed reply, a failed code run), return the best answer you have.
2. Printing for debugging, or writing files: output is discarded and the workflow runs in a \
sandbox without files or network.
3. Forgetting to pass the task: the model sees only the messages you send, so every call that \
needs the question must include `task` (and the earlier outputs it should build on).
4. Treating a call's result as a single value: `call_llm` and `call_json_format_llm` return \
LISTS (one entry per `num_of_response`); take `[0]` or iterate.
5. Post-processing the model's answer with fragile string surgery that can destroy a correct \
answer. Ask for the answer in the required format in the instructions of the call instead.
6. Defining helpers or imports outside `solver`, or changing its signature: only \
`solver(agent, task)` is called, and it must return a dict with the key "answer"."""


def render_archive(archive: list[dict]) -> str:
    """The archive as the prompt shows it: a JSON list, one entry per line, known fields only."""
    rows = [json.dumps({k: e[k] for k in ARCHIVE_FIELDS if k in e}, ensure_ascii=False)
            for e in archive]
    return "[" + ",\n".join(rows) + "]"


def proposal_prompt(*, kind: str, task_description: str, answer_format: str,
                    archive: list[dict]) -> str:
    code_note = ("\nFor this benchmark the answer is the complete source of the requested "
                 "Python function (signature and body), not a value." if kind == "code" else "")
    return (
        "# Overview\n"
        "You are an expert machine-learning researcher who designs agentic systems: the prompts "
        "and the control flow of short programs that solve hard tasks by calling a strong "
        "language model. Your aim is a system that performs as well as possible on this "
        "benchmark:\n\n" + task_description.strip() + "\n\n"
        "Required answer format: " + answer_format.strip() + code_note + "\n\n"
        "# The framework\n"
        "A system is a Python function `solver(agent, task) -> dict`. `task` is one question "
        "as a string; the returned dict MUST hold the final answer under the key \"answer\". "
        "It runs once per question, in a separate process, and may call the model only "
        "through `agent` (keyword arguments):\n" + agent_api(kind) + "\n"
        "Put imports and helper functions inside `solver`. Every call costs money: spend calls "
        "where they help.\n\n"
        "# Archive of discovered systems\n" + render_archive(archive) + "\n\n"
        "The fitness of an entry is the median and the 95% bootstrap confidence interval of its "
        "accuracy on a set of validation questions. Your GOAL is to maximise the fitness.\n\n"
        "# Output format\n"
        "Reply with one JSON object with three keys, in this order:\n"
        "- \"thought\": your reasoning for the next system: first what would be an interesting "
        "next system to try and why, then the overall concept of the design, then the "
        "implementation step by step;\n"
        "- \"name\": a short name for the system;\n"
        "- \"code\": the COMPLETE Python source of `solver(agent, task)` as a string. It is run "
        "as is, so it must be complete and reliable.\n"
        "An example of the format:\n" + json.dumps(EXAMPLE, ensure_ascii=False) + "\n\n"
        "Decide, for every model call, its instruction, which inputs it sees and which output "
        "fields you need; setting the role (`agent_role`) and the temperature of a call helps "
        "control it.\n\n"
        "# Mistakes to avoid\n" + _MISTAKES + "\n\n"
        "# Your task\n"
        "You know the literature on prompting and on LLM agents well. Maximise the fitness by "
        "proposing an interestingly new system. Study the archive carefully: what insights, "
        "lessons or stepping stones do its entries offer? Be creative about the next system "
        "to try; draw inspiration from papers on LLM agents and from other research fields. "
        "Use what the archive teaches and what the literature suggests to propose the next "
        "interesting system. Think outside the box."
    )


def reflexion_prompt_1(previous: dict | None) -> str:
    shown = ""
    if previous is not None:
        shown = ("The previous system you tried:\n"
                 + json.dumps({k: previous[k] for k in ARCHIVE_FIELDS if k in previous},
                              ensure_ascii=False) + "\n\n")
    return (
        shown + "Review the system you just proposed on three points:\n\n"
        "1. **Interestingness**: is it new and interesting compared with the systems in the "
        "archive? Compare the implementations themselves, not only their names, and look for "
        "what actually differs. If it is not innovative, propose a different system that is. "
        "Think critically.\n\n"
        "2. **Implementation mistakes**: read the code line by line, find any mistake (check "
        "\"Mistakes to avoid\") and fix it.\n\n"
        "3. **Improvement**: without changing the overall design (unless you replaced it in "
        "point 1), improve the implementation: does it really do what it claims? Remove "
        "redundant code and needless steps, and keep it from being too similar to the previous "
        "system.\n\n"
        "Then revise the implementation, or implement the new system.\n\n"
        "Reply with one JSON object:\n"
        "\"reflection\": your thoughts on interestingness, the mistakes you found and the "
        "improvements;\n"
        "\"thought\": the revised proposal (or the new one), in the format of the example;\n"
        "\"name\": the name of the revised or new system (no words like \"new\" or "
        "\"improved\");\n"
        "\"code\": the corrected or improved complete `solver` source, with your fixes in it."
    )


REFLEXION_PROMPT_2 = (
    "Go through \"Mistakes to avoid\" once more and revise the code further. Reply with one "
    "JSON object: your new reflection in \"reflection\", the previous \"thought\" and \"name\" "
    "repeated, and the corrected code in \"code\"."
)


def repair_prompt(error: str) -> str:
    return (
        "Evaluating your system failed:\n" + error.strip() + "\n\n"
        "Work out where your latest implementation went wrong and fix it so that it implements "
        "the same idea. Reply with one JSON object: repeat your previous \"thought\" in "
        "\"thought\" and the \"name\", put your debugging reasoning in \"debug_thought\", and "
        "give the corrected complete code in \"code\"."
    )
