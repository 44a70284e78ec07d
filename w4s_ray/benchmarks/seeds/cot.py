def solver(agent, task: str):
    """Chain-of-Thought: the executor reasons step by step, then gives the answer."""
    instructions = (
        "Requirements:\n"
        "1. Reason step by step in 'reasoning'.\n"
        "2. Put only the final answer in 'answer'. " + "__ANSWER_INSTRUCTIONS__"
    )
    messages = [{"role": "user", "content": f"# Your Task:\n{task}"}]
    response = agent.call_json_format_llm(
        messages=messages,
        temperature="__COT_TEMPERATURE__",
        num_of_response=1,
        agent_role="__ROLE__",
        return_dict_keys=["reasoning", "answer"],
        instructions=instructions,
    )
    return_dict = dict(response[0])
    return_dict["answer"] = str(return_dict.get("answer", "")).strip()
    return return_dict
