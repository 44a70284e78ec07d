def solver(agent, task: str):
    """LLM Debate: agents with different roles answer at T=0.8, then a second round in which
    each sees the others' reasoning and updates; a final-decision call at T=0.1 concludes."""
    import json

    answer_key = "__ANSWER_KEY__"
    answer_spec = "__ANSWER_SPEC__"
    roles = "__DEBATE_ROLES__".split("|")
    rounds = 2

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
    thinking, answers = [], []
    for r in range(rounds):
        new_thinking, new_answers = [], []
        for i, role in enumerate(roles):
            if r == 0:
                reply = ask([], "Think through the task step by step, then solve it.", keys,
                            role=role, temperature=0.8)[0]
            else:
                # Own previous reasoning first, then every other debater's.
                notes = [("thinking of " + role + " (yourself)", thinking[i])]
                notes += [("thinking of " + roles[j], thinking[j])
                          for j in range(len(roles)) if j != i]
                reply = ask(notes, "Other agents' solutions to this task are shown above; "
                            "treat their views as extra advice, think carefully, and give an "
                            "updated answer.", keys, role=role, temperature=0.8)[0]
            new_thinking.append(reply.get("thinking", ""))
            new_answers.append(reply.get(answer_key, ""))
        thinking, answers = new_thinking, new_answers
    notes = [("thinking of " + role, t) for role, t in zip(roles, thinking, strict=True)]
    notes += [(answer_key + " of " + role, a) for role, a in zip(roles, answers, strict=True)]
    final = ask(notes, "Weigh all of the reasoning and answers above carefully and "
                "give one final answer.", keys, temperature=0.1)[0]
    return {"answer": str(final.get(answer_key, "")).strip()}
