def solver(agent, task: str):
    """Chain-of-Thought for code: reason about the specification, then write the function."""
    import re

    names = re.findall(r"def\s+([A-Za-z_]\w*)\s*\(", task)
    entry_point = names[-1] if names else "the requested function"
    instructions = (
        "Requirements:\n"
        "1. Reason step by step about the specification and edge cases in 'reasoning'.\n"
        f"2. Put in 'code' the complete implementation of `{entry_point}` with the exact "
        "signature given. " + "__ANSWER_INSTRUCTIONS__"
    )
    messages = [{"role": "user", "content": f"# Your Task:\n{task}"}]
    response = agent.call_json_format_llm(
        messages=messages,
        temperature=0.0,
        num_of_response=1,
        agent_role="__ROLE__",
        return_dict_keys=["reasoning", "code"],
        instructions=instructions,
    )[0]
    return {"answer": str(response.get("code", "")), "reasoning": response.get("reasoning", "")}
