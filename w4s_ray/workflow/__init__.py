"""The workflow runtime: extract a workflow from meta-agent text, run it in a sandboxed child
process, serve its `agent` calls from the parent, score its answers, explain its failures.

Nothing here imports Ray; `w4s_ray.runtime.evaluators` runs `evaluate` inside Ray actors. This
package's `__init__` stays empty on purpose: the sandbox child imports `w4s_ray.workflow._child`
and must not pull in pydantic, litellm or the benchmarks (which hold gold answers).
"""
