def solver(agent, task: str):
    """Code Generation as the W4S seed: the executor writes solution(); run it; a failure or a
    non-numeric result answers 0 (no fallback)."""
    programmer_instructions = (
        "Write valid Python code that solves the math problem. Requirements:\n"
        "1. The code must define a solution() function that returns only the final numerical "
        "answer.\n"
        "2. Use only basic arithmetic operations.\n"
        "3. Do not write a loop that may never end."
    )
    messages = [{"role": "user", "content":
                 f"Write Python code that solves this math problem and follows the "
                 f"requirements.\nProblem: {task}"}]
    code_response = agent.call_json_format_llm(
        messages=messages,
        temperature=0.3,
        num_of_response=1,
        agent_role="Python programmer",
        return_dict_keys=["reasoning", "code"],
        instructions=programmer_instructions,
    )[0]
    solution_code = code_response.get("code", "")
    try:
        result = agent.execute_code(solution_code)
        if not isinstance(result, (int, float)):
            raise ValueError("the solution code must return a number")
        return {"answer": str(result), "code": solution_code}
    except Exception as exc:
        return {"answer": str(0), "error": str(exc)}
