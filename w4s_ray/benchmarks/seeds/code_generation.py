def solver(agent, task: str):
    """Code Generation: the executor writes solution(); run it; fall back to Chain-of-Thought."""
    programmer_instructions = (
        "You should generate valid Python code to solve the problem. Requirements:\n"
        "1. The code must define a solution() function that returns only the final answer.\n"
        "2. Use only the Python standard library.\n"
        "3. Do not introduce an infinite loop or read input."
    )
    messages = [{"role": "user", "content":
                 f"Write Python code to solve this problem. The code should follow the "
                 f"requirements.\nProblem: {task}"}]
    code_response = agent.call_json_format_llm(
        messages=messages,
        temperature=0.3,
        num_of_response=1,
        agent_role="Python programmer",
        return_dict_keys=["reasoning", "code"],
        instructions=programmer_instructions,
    )[0]
    solution_code = str(code_response.get("code", ""))
    try:
        result = agent.execute_code(solution_code, timeout=5)
        if result is None or isinstance(result, bool) or str(result).strip() == "":
            raise ValueError("solution() returned no usable answer")
        return {"answer": str(result), "code": solution_code}
    except Exception as exc:
        error = str(exc)

    instructions = (
        "Requirements:\n"
        "1. Reason step by step in 'reasoning'.\n"
        "2. Put only the final answer in 'answer'. " + "__ANSWER_INSTRUCTIONS__"
    )
    response = agent.call_json_format_llm(
        messages=[{"role": "user", "content": f"# Your Task:\n{task}"}],
        temperature=0.0,
        num_of_response=1,
        agent_role="__ROLE__",
        return_dict_keys=["reasoning", "answer"],
        instructions=instructions,
    )[0]
    return {"answer": str(response.get("answer", "")).strip(), "code_error": error}
