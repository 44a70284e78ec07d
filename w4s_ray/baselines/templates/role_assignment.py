def solver(agent, task: str):
    """Dynamic Assignment of Roles: a routing call picks the expert best suited to the task;
    that expert then thinks step by step and answers (T=0.5)."""
    import json

    answer_key = "__ANSWER_KEY__"
    answer_spec = "__ANSWER_SPEC__"
    # "keyword=Expert name" pairs; the last expert is the fallback when no keyword matches.
    experts = [pair.split("=", 1) for pair in "__EXPERTS__".split("|")]

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

    offered = ", ".join(name for keyword, name in experts if keyword)
    choice = ask([], "Decide which expert should answer this task. Pick one of: " + offered + ".", ["choice"])[0]
    text = str(choice.get("choice", "")).lower()
    expert = next((name for keyword, name in experts if keyword and keyword in text),
                  experts[-1][1])
    reply = ask([], "Think through the task step by step, then solve it.",
                ["thinking", answer_key], role=expert)[0]
    return {"answer": str(reply.get(answer_key, "")).strip(), "expert": expert}
