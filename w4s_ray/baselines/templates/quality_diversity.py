def solver(agent, task: str):
    """Quality-Diversity: one step-by-step attempt, then 3 more that must solve the task in a
    different, interesting way given the earlier ones (T=0.5); a final-decision call at T=0.1
    picks the answer from all four."""
    import json

    answer_key = "__ANSWER_KEY__"
    answer_spec = "__ANSWER_SPEC__"
    extra_attempts = 3

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

    keys = ["thinking", answer_key]
    reply = ask([], "Think through the task step by step, then solve it.", keys)[0]
    attempts = []
    for i in range(extra_attempts + 1):
        if i > 0:
            reply = ask(attempts, "Looking at the attempts above, solve the task again in a "
                        "different, interesting way.", keys)[0]
        attempts += [("thinking #" + str(i + 1), reply.get("thinking", "")),
                     (answer_key + " #" + str(i + 1), reply.get(answer_key, ""))]
    final = ask(attempts, "Weigh all of the solutions above carefully and give one final "
                "answer.", keys, temperature=0.1)[0]
    return {"answer": str(final.get(answer_key, "")).strip()}
