def solver(agent, task: str):
    """Self-Consistency with Chain-of-Thought: 5 step-by-step samples at T=0.8, combined by
    majority vote (math, multiple choice, code) or by a final-decision call at T=0.1 (reading,
    where free-text answers rarely agree verbatim; as ADAS does on DROP)."""
    import json
    import re
    from collections import Counter

    answer_key = "__ANSWER_KEY__"
    answer_spec = "__ANSWER_SPEC__"
    combine = "__COMBINE__"  # "vote" | "decide"
    samples = 5

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

    def usable(value):
        text = str(value).strip()
        return text and not text.startswith("NO " + answer_key + " IN")

    def normalize(value):
        text = str(value).strip()
        if answer_key == "code":
            # Implementations that differ only in comments and blank lines vote together.
            lines = [re.sub(r"\s+#.*$", "", line).rstrip() for line in text.splitlines()]
            return "\n".join(x for x in lines if x.strip() and not x.strip().startswith("#"))
        # "18", "18.0" and "18," (or "(B)" and "B") must count as the same vote.
        text = text.strip("().*").replace(",", "").strip()
        try:
            number = float(text)
            return str(int(number)) if number == int(number) else repr(number)
        except (ValueError, OverflowError):
            return text.lower()

    replies = ask([], "Think through the task step by step, then solve it.",
                  ["thinking", answer_key], temperature=0.8, n=samples)
    replies = [r for r in replies if isinstance(r, dict) and usable(r.get(answer_key, ""))]
    if not replies:
        return {"answer": ""}
    if combine == "vote":
        answers = [str(r[answer_key]).strip() for r in replies]
        votes = Counter(normalize(a) for a in answers)
        winner = votes.most_common(1)[0][0]
        return {"answer": next(a for a in answers if normalize(a) == winner),
                "votes": dict(votes)}
    notes = []
    for i, r in enumerate(replies, 1):
        notes.append(("thinking of Chain-of-Thought Agent " + str(i), r.get("thinking", "")))
        notes.append((answer_key + " of Chain-of-Thought Agent " + str(i), r[answer_key]))
    final = ask(notes, "Weigh all of the solutions above carefully and give one final "
                "answer.", ["thinking", answer_key], temperature=0.1)[0]
    return {"answer": str(final.get(answer_key, "")).strip()}
