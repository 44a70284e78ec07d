"""Running untrusted code: the `Sandbox` interface evaluation receives, its local backends
(plain processes or bubblewrap), the one deny-list, the one process-group kill, the RPC channel
to a workflow child, nested `execute_code` and the code-scoring judge. See `base.py` and
docs/WORKFLOWS.md.

This `__init__` imports nothing on purpose: the child programs under `children/` import
`w4s_ray.sandbox.audit`, `rpc` and `agent`, and must not pull in pydantic, litellm or the
benchmarks (which hold gold answers).
"""
