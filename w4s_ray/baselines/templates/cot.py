def solver(agent, task: str):
    """Chain-of-Thought: one call that thinks step by step, then answers (ADAS: T=0.5)."""
    import json

    answer_key = "__ANSWER_KEY__"
    answer_spec = "__ANSWER_SPEC__"

    def ask(notes, instruction, keys, role="assistant", temperature=0.5, n=1):
        # ADAS's agent call: the task, labelled earlier outputs, then the instruction.
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

    reply = ask([], "Think through the task step by step, then solve it.",
                ["thinking", answer_key])[0]
    return {"answer": str(reply.get(answer_key, "")).strip(),
            "thinking": str(reply.get("thinking", ""))}
