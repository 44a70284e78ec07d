"""A simulated OpenAI-compatible executor (a simulator, not a language model).

`server` serves it over HTTP, `model` decides and writes replies, `index` recognises benchmark
items in prompts, `profiles` holds the simulated models, `limits` the provider-style RPM/TPM limit, `launch.start_sim` runs it as a
subprocess. See docs/EXECUTOR.md for the model of an LLM it implements.
"""
