def solver(agent, task: str):
    """Step-back Abstraction: first state the principles the task involves, then solve it
    step by step with those principles in view (T=0.5)."""
    import json

    answer_key = "__ANSWER_KEY__"
    answer_spec = "__ANSWER_SPEC__"
    principle_question = "__PRINCIPLES__"

    def ask(notes, instruction, keys, role="assistant", temperature=0.5, n=1):
        text = "# Your Task:\n" + task + "\n\n"
        for label, content in notes:
            text += "### " + label + ":\n" + str(content) + "\n\n"
        fields = {k: "Your " + k + "." + (" " + answer_spec if k == answer_key else "")
                  for k in keys}
        return agent.call_json_format_llm(
            messages=[{"role": "user", "content": text + instruction}],
            temperature=temperature, num_of_response=n, agent_role=role,
            return_dict_keys=list(keys),
            instructions="Fill every key as described: " + json.dumps(fields),
        )

    step_back = ask([], principle_question + " Think step by step, then list every "
                    "principle involved and explain it.", ["thinking", "principle"])[0]
    notes = [("thinking of the Principle Agent", step_back.get("thinking", "")),
             ("principle", step_back.get("principle", ""))]
    reply = ask(notes, "With the question and the principles behind it in mind, think "
                "step by step and solve the task.", ["thinking", answer_key])[0]
    return {"answer": str(reply.get(answer_key, "")).strip()}
