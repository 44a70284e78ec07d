def solver(agent, task: str):
    """Chain-of-Thought with Self-Consistency as the W4S seed: 5 samples at temperature 0.8,
    the most common answer string wins."""
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
    answers = [str(r.get("answer", "")) for r in responses]
    return {"answer": Counter(answers).most_common(1)[0][0]}
