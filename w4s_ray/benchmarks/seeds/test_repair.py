def solver(agent, task: str):
    """Generate, then test on the public tests and let the executor repair (up to 3 rounds)."""
    import re

    names = re.findall(r"def\s+([A-Za-z_]\w*)\s*\(", task)
    entry_point = names[-1] if names else ""
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
    solution = str(response.get("code", ""))
    if not entry_point:
        return {"answer": solution}
    try:
        result = agent.test_on_public_test(task=task, solution=solution,
                                           entry_point=entry_point, test_loop=3)
        solution = str(result.get("solution") or solution)
        return {"answer": solution, "public_tests_passed": bool(result.get("result"))}
    except Exception as exc:
        return {"answer": solution, "test_error": str(exc)}
