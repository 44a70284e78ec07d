"""The workflow runtime: extract a workflow from meta-agent text, evaluate it on a benchmark
split in a `w4s_ray.sandbox.Sandbox` (serving its `agent` calls from the parent), score its
answers where the gold answers are, report its failures.

Nothing here imports Ray; `w4s_ray.runtime.evaluators` runs `evaluate` inside Ray actors. The
sandboxed child programs and the `agent` object they hand to a workflow live in
`w4s_ray.sandbox`.
"""
