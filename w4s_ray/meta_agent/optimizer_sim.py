"""The `seed-variants` meta model's answers to ADAS and AFlow prompts (offline, deterministic).

`SeedVariantsMetaAgent` (scripted.py) is the simulator's stand-in for a meta model: it edits a
workflow shown in its own prompt. This module extends that to the two other optimizers' prompt
formats so `w4s optimize --method adas|aflow` and a sweep run end to end on the simulator:

- ADAS (a prompt with "# Archive of discovered systems"): pick an archive entry by the seed,
  change one sampling knob (`scripted.mutate`) and reply with the JSON object ADAS asks for
  ({"thought", "name", "code"}). Reflexion turns repeat the latest proposal (with "reflection");
  a repair turn ("Evaluating your system failed") falls back to an unmodified archive entry.
- AFlow (a prompt with "<operator_description>"): reply with <modification>, <graph>,
  <prompt> for one of a few operator graphs (answer ensembles with sc_ensemble, review and
  revise, format; on code: sampled code with sc_ensemble, public-test repair), skipping the
  modifications the prompt's experience lists as tried.

It reads nothing but its prompt; it is a cheap stand-in for a model that makes small edits.
"""

from __future__ import annotations

import json
import random
import re

ADAS_MARK = "# Archive of discovered systems"
AFLOW_MARK = "<operator_description>"
_ADAS_ARCHIVE = re.compile(r"# Archive of discovered systems\n(\[.*?\])\n\n", re.DOTALL)
_OBJ = re.compile(r"\{.*\}", re.DOTALL)

_QA_GRAPHS = [
    ("ensemble of {k} answer_generate drafts chosen by sc_ensemble",
     "        drafts = [self.answer_generate(input=problem)['answer'] for _ in range({k})]\n"
     "        return self.sc_ensemble(solutions=drafts, problem=problem)['response']\n"),
    ("answer_generate then review and revise once",
     "        answer = self.answer_generate(input=problem)['answer']\n"
     "        review = self.review(problem=problem, solution=answer)\n"
     "        if not review['review_result']:\n"
     "            answer = self.revise(problem=problem, solution=answer, "
     "feedback=review['feedback'])['solution']\n"
     "        return answer\n"),
    ("answer_generate then format the final answer",
     "        answer = self.answer_generate(input=problem)['answer']\n"
     "        return self.format(problem=problem, solution=answer)['response']\n"),
]
_CODE_GRAPHS = [
    ("ensemble of {k} generated solutions chosen by sc_ensemble",
     "        drafts = [self.custom_code_generate(problem=problem, entry_point=entry_point, "
     "instruction=prompt_custom.CODE_PROMPT)['response'] for _ in range({k})]\n"
     "        return self.sc_ensemble(solutions=drafts, problem=problem)['response']\n"),
    ("generate a solution then repair it on the public tests",
     "        code = self.custom_code_generate(problem=problem, entry_point=entry_point, "
     "instruction=prompt_custom.CODE_PROMPT)['response']\n"
     "        return self.test(problem=problem, solution=code, "
     "entry_point=entry_point)['solution']\n"),
]
_CODE_PROMPT = 'CODE_PROMPT = "Complete the following Python function.\\n\\n"'


def is_adas(messages: list[dict]) -> bool:
    return any(m["role"] == "user" and ADAS_MARK in m["content"] for m in messages[:2])


def is_aflow(messages: list[dict]) -> bool:
    return any(m["role"] == "user" and AFLOW_MARK in m["content"] for m in messages[:1])


def adas_reply(messages: list[dict], rng: random.Random) -> str:
    from w4s_ray.meta_agent.scripted import mutate

    last = messages[-1]["content"]
    assistant = [m["content"] for m in messages if m["role"] == "assistant"]
    archive: list[dict] = []
    for m in messages:
        found = _ADAS_ARCHIVE.search(m["content"]) if m["role"] == "user" else None
        if found:
            try:
                archive = [e for e in json.loads(found.group(1)) if isinstance(e, dict)]
            except json.JSONDecodeError:
                archive = []
            break
    if not archive:
        return "I see no archive to start from."
    entry = archive[rng.randrange(len(archive))]
    if assistant and not last.startswith("Evaluating your system failed"):
        try:  # a reflexion turn: keep the proposal, say so
            prev = json.loads(_OBJ.search(assistant[-1]).group(0))
            prev["reflection"] = "Checked the mistakes list; the implementation stands."
            return json.dumps(prev)
        except (AttributeError, json.JSONDecodeError):
            pass
    if last.startswith("Evaluating your system failed"):
        code, change = str(entry.get("code", "")), "kept the archived implementation"
    else:
        code, change = mutate(str(entry.get("code", "")).strip("\n"), rng)
    name = f"{entry.get('name', 'system')} variant {rng.randrange(1000)}"
    return json.dumps({"thought": f"Starting from {entry.get('name')}, I {change}.",
                       "name": name, "code": code})


def aflow_reply(messages: list[dict], rng: random.Random) -> str:
    text = messages[0]["content"]
    shown = re.search(r"<graph>(.*?)</graph>", text, re.DOTALL)
    code_kind = bool(shown) and "entry_point" in shown.group(1)
    tried = text.split("<experience>", 1)[-1].split("</experience>", 1)[0].lower()
    menu = _CODE_GRAPHS if code_kind else _QA_GRAPHS
    options = []
    for desc, body in menu:
        for k in ((3, 5) if "{k}" in desc else (0,)):
            options.append((desc.format(k=k), body.format(k=k)))
    fresh = [o for o in options if " ".join(o[0].split()) not in tried]
    desc, body = (fresh or options)[rng.randrange(len(fresh or options))]
    sig = "(self, problem, entry_point)" if code_kind else "(self, problem)"
    graph = f"class Workflow(Operators):\n    def __call__{sig}:\n{body}"
    prompt = _CODE_PROMPT if code_kind else ""
    return (f"<modification>{desc}</modification>\n<graph>\n{graph}</graph>\n"
            f"<prompt>\n{prompt}\n</prompt>")
