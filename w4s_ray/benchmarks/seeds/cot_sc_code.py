def solver(agent, task: str):
    """Self-Consistency for code: 5 implementations at temperature 0.8, majority vote.

    Votes count implementations that are identical once comments and blank lines are removed.
    """
    import re
    from collections import Counter

    names = re.findall(r"def\s+([A-Za-z_]\w*)\s*\(", task)
    entry_point = names[-1] if names else "the requested function"
    instructions = (
        "Requirements:\n"
        "1. Reason step by step about the specification and edge cases in 'reasoning'.\n"
        f"2. Put in 'code' the complete implementation of `{entry_point}` with the exact "
        "signature given. " + "__ANSWER_INSTRUCTIONS__"
    )
    messages = [{"role": "user", "content": f"# Your Task:\n{task}"}]
    responses = agent.call_json_format_llm(
        messages=messages,
        temperature=0.8,
        num_of_response=5,
        agent_role="__ROLE__",
        return_dict_keys=["reasoning", "code"],
        instructions=instructions,
    )

    def normalize(code):
        lines = [re.sub(r"\s+#.*$", "", line).rstrip() for line in str(code).splitlines()]
        return "\n".join(line for line in lines if line.strip() and not line.strip().startswith("#"))

    codes = [str(r.get("code", "")) for r in responses if isinstance(r, dict)]
    codes = [c for c in codes if c.strip() and not c.startswith("NO code IN")]
    if not codes:
        return {"answer": ""}
    votes = Counter(normalize(c) for c in codes)
    winner = votes.most_common(1)[0][0]
    return {"answer": next(c for c in codes if normalize(c) == winner)}
