def solver(agent, task: str):
    """Self-Refine (Reflexion): answer, let a critic review it, revise with the critique; up to
    5 critique rounds, stopping early when the critic says the answer is correct (T=0.5)."""
    import json

    answer_key = "__ANSWER_KEY__"
    answer_spec = "__ANSWER_SPEC__"
    max_rounds = 5

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
    history = []
    for i in range(max_rounds):
        attempt = [("thinking #" + str(i + 1), reply.get("thinking", "")),
                   (answer_key + " #" + str(i + 1), reply.get(answer_key, ""))]
        review = ask(attempt, "Review the answer above and point out where it could be wrong. "
                     "Only if you are completely certain it is right, put 'True' in "
                     "'correct'.", ["feedback", "correct"])[0]
        if str(review.get("correct", "")).strip().lower() == "true":
            break
        history += attempt + [("feedback #" + str(i + 1), review.get("feedback", ""))]
        reply = ask(history, "Using the earlier attempts and the feedback on them, work out "
                    "where your latest attempt may have gone wrong, then solve the task again, "
                    "better.", keys)[0]
    return {"answer": str(reply.get(answer_key, "")).strip()}
