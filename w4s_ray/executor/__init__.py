"""The strong-executor layer: the only path from a workflow to a strong model.

`client.ExecutorClient` wraps `litellm.acompletion` with a completion cache (`cache`), dollar
accounting from litellm's price map (`cost`), a budget, retries, per-process concurrency and a
rolling-window rate limit (`ratelimit`; shared across Ray workers by
`w4s_ray.runtime.rate_limiter`). `sim/` is a simulated OpenAI-compatible executor for offline
runs and tests. Importing this package is cheap; litellm is imported by `client` only.
"""
