def solver(agent, task: str):
    """Chain-of-Thought with Self-Consistency: 5 samples at temperature 0.8, majority vote."""
    from collections import Counter

    instructions = (
        "Requirements:\n"
        "1. Reason step by step in 'reasoning'.\n"
        "2. Put only the final answer in 'answer'. " + "__ANSWER_INSTRUCTIONS__"
    )
    messages = [{"role": "user", "content": f"# Your Task:\n{task}"}]
    responses = agent.call_json_format_llm(
        messages=messages,
        temperature=0.8,
        num_of_response=5,
        agent_role="__ROLE__",
        return_dict_keys=["reasoning", "answer"],
        instructions=instructions,
    )

    def normalize(answer):
        # Votes for "18", "18.0" and "18," (or "(B)" and "B") must count together.
        text = str(answer).strip().strip("().*").replace(",", "").strip()
        try:
            value = float(text)
            return str(int(value)) if value == int(value) else repr(value)
        except (ValueError, OverflowError):
            return text.lower()

    answers = [str(r.get("answer", "")).strip() for r in responses if isinstance(r, dict)]
    answers = [a for a in answers if a and not a.startswith("NO answer IN")]
    if not answers:
        return {"answer": ""}
    votes = Counter(normalize(a) for a in answers)
    winner = votes.most_common(1)[0][0]
    chosen = next(a for a in answers if normalize(a) == winner)
    return {"answer": chosen, "votes": dict(votes)}
