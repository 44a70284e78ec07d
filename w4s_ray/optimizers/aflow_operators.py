"""AFlow's operators on this project's agent API — source that is RENDERED INTO each workflow.

`aflow_graph.render_workflow` copies this file's text into every AFlow workflow, so a workflow
is one self-contained source (it runs in the sandbox like any other, is cached and stored
whole, and evaluates the same later even if this file changes). It must therefore import only
the standard library and never `w4s_ray`. The driver never imports it to run workflows; tests
import it directly with a fake `agent`.

Operators follow AFlow (FoundationAgents/AFlow `scripts/operators.py`): names, arguments and
the dict each returns; their prompts are ours. All run synchronously inside one item's thread.

| operator | returns |
| --- | --- |
| custom(input, instruction) | {"response"}: one model call on instruction + input |
| answer_generate(input) | {"thought", "answer"}: step-by-step reasoning and a short answer |
| custom_code_generate(problem, entry_point, instruction) | {"response"}: function source |
| sc_ensemble(solutions, problem) | {"response"}: the most consistent solution (the model picks) |
| programmer(problem, analysis="None") | {"code", "output"}: writes and runs Python, 3 tries |
| test(problem, solution, entry_point, test_loop=3) | {"result", "solution"}: public tests + repair |
| review(problem, solution) | {"review_result": bool, "feedback"} |
| revise(problem, solution, feedback) | {"solution"} |
| format(problem, solution) | {"response"}: the final answer alone, in the required format |
"""

import json
import re
from collections import Counter

# Sampling temperature of every operator call. AFlow takes it from the executor's config;
# 1.0 (the API default) keeps repeated calls diverse, which ensembles rely on.
OPERATOR_TEMPERATURE = 1.0
PROGRAM_TIMEOUT_S = 10
# Spelled out so the rendered workflow holds no literal fence: `w4s eval` reads a file with
# one as a chat reply and looks for the workflow inside a fenced block.
FENCE = "`" * 3


class Operators:
    """Base class of an AFlow graph: `class Workflow(Operators)` gets every operator."""

    answer_format = ""  # set by the rendered workflow: the benchmark's required answer format

    def __init__(self, agent):
        self.agent = agent

    # -- helpers ----------------------------------------------------------------------------
    def _text(self, prompt):
        replies = self.agent.call_llm(messages=[{"role": "user", "content": prompt}],
                                      temperature=OPERATOR_TEMPERATURE)
        return str(replies[0]) if replies else ""

    def _json(self, prompt, keys, instructions=""):
        replies = self.agent.call_json_format_llm(
            messages=[{"role": "user", "content": prompt}], temperature=OPERATOR_TEMPERATURE,
            return_dict_keys=list(keys), instructions=instructions)
        reply = replies[0] if replies and isinstance(replies[0], dict) else {}
        return {k: reply.get(k, "") for k in keys}

    @staticmethod
    def _code_block(text, name):
        """The first fenced block defining `name` (else the first block, else the text)."""
        text = str(text)
        blocks = re.findall(FENCE + r"(?:python|py)?[ \t]*\n(.*?)" + FENCE, text, re.DOTALL)
        for block in blocks:
            if re.search(r"def\s+" + re.escape(name) + r"\s*\(", block):
                return block.strip("\n")
        return blocks[0].strip("\n") if blocks else text.strip()

    # -- operators --------------------------------------------------------------------------
    def custom(self, input, instruction):
        return {"response": self._text(str(instruction) + str(input))}

    def answer_generate(self, input):
        prompt = ("Think step by step about the following problem, then give the answer.\n\n"
                  + str(input))
        out = self._json(prompt, ["thought", "answer"],
                         "Put your step-by-step reasoning in 'thought' and only the final "
                         "answer, as short as possible, in 'answer'. " + self.answer_format)
        return {"thought": str(out["thought"]), "answer": str(out["answer"])}

    def custom_code_generate(self, problem, entry_point, instruction):
        text = self._text(str(instruction) + str(problem) + "\n\nWrite the complete function `"
                          + str(entry_point) + "` in one " + FENCE + "python block.")
        return {"response": self._code_block(text, str(entry_point))}

    def sc_ensemble(self, solutions, problem):
        solutions = [str(s) for s in solutions]
        if not solutions:
            return {"response": ""}
        listing = "".join(chr(65 + i) + ":\n" + s + "\n\n" for i, s in enumerate(solutions))
        prompt = ("Several solutions to the same question are given below. Find the answer "
                  "that most of them agree on, and pick the solution that gives it.\n\n"
                  "# Question\n" + str(problem) + "\n\n# Solutions\n" + listing)
        out = self._json(prompt, ["thought", "solution_letter"],
                         "Explain in 'thought' which solutions agree; put only the letter of "
                         "the chosen solution in 'solution_letter'.")
        letter = str(out["solution_letter"]).strip().strip("().").upper()[:1]
        index = ord(letter) - 65 if letter else -1
        if 0 <= index < len(solutions):
            return {"response": solutions[index]}
        # No usable letter: fall back to the most frequent solution text.
        return {"response": Counter(solutions).most_common(1)[0][0]}

    def programmer(self, problem, analysis="None"):
        feedback, code, output = "", "", ""
        for _ in range(3):
            prompt = ("Write Python code that solves the problem below and computes the "
                      "answer. Define a function `solve()` that takes no arguments and returns "
                      "the final answer. Use only the standard library; no input(), no files."
                      "\n\n# Problem\n" + str(problem) + "\n\n# Analysis\n" + str(analysis)
                      + (("\n\n# Your previous attempt failed\n" + feedback) if feedback else "")
                      + "\n\nReply with the code in one " + FENCE + "python block.")
            code = self._code_block(self._text(prompt), "solve")
            if not code.strip():
                return {"code": code, "output": "No code generated"}
            runnable = code
            if re.search(r"def\s+solve\s*\(", code) and not re.search(r"def\s+solution\s*\(",
                                                                       code):
                runnable += "\n\ndef solution():\n    return solve()\n"
            try:
                output = str(self.agent.execute_code(runnable, timeout=PROGRAM_TIMEOUT_S))
                return {"code": code, "output": output}
            except Exception as exc:  # noqa: BLE001 - the error is the feedback
                output = str(exc)
                feedback = "Code:\n" + code + "\n\nError:\n" + output
        return {"code": code, "output": output}

    def test(self, problem, solution, entry_point, test_loop=3):
        result = self.agent.test_on_public_test(task=str(problem), solution=str(solution),
                                                entry_point=str(entry_point),
                                                test_loop=int(test_loop))
        return {"result": bool(result.get("result")),
                "solution": str(result.get("solution") or solution)}

    def review(self, problem, solution):
        prompt = ("Review the solution below for the question. Judge strictly whether it is "
                  "correct; if it is not, explain what is wrong.\n\n# Question\n"
                  + str(problem) + "\n\n# Solution\n" + str(solution))
        out = self._json(prompt, ["review_result", "feedback"],
                         "Put true or false in 'review_result' and your critique in "
                         "'feedback'.")
        verdict = out["review_result"]
        ok = verdict if isinstance(verdict, bool) else str(verdict).strip().lower() in (
            "true", "yes", "correct")
        return {"review_result": ok, "feedback": str(out["feedback"])}

    def revise(self, problem, solution, feedback):
        prompt = ("Revise the solution to the question using the feedback on it.\n\n"
                  "# Question\n" + str(problem) + "\n\n# Solution\n" + str(solution)
                  + "\n\n# Feedback\n" + str(feedback))
        out = self._json(prompt, ["thought", "solution"],
                         "Reason in 'thought'; put the complete revised solution in "
                         "'solution'.")
        return {"solution": str(out["solution"])}

    def format(self, problem, solution):
        prompt = ("Extract the final answer from the solution below and write it exactly in "
                  "the required format.\n\n# Question\n" + str(problem) + "\n\n# Solution\n"
                  + str(solution))
        out = self._json(prompt, ["answer"],
                         "Put only the final answer in 'answer'. " + self.answer_format)
        return {"response": str(out["answer"])}


def as_answer(result):
    """What a graph returned, as the answer text: AFlow graphs return (answer, cost) tuples."""
    if isinstance(result, tuple) and result:
        result = result[0]
    if isinstance(result, dict):
        for key in ("response", "solution", "answer", "output"):
            if key in result:
                return str(result[key])
        return json.dumps(result, default=str)
    return "" if result is None else str(result)
