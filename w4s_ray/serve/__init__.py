"""Serving a trained meta-agent with Ray Serve behind an OpenAI-compatible API (docs/SERVING.md).

`protocol` (request/response models), `checkpoint` (what to load, checked before Ray),
`generation` (transformers sampling, no Ray), `settings` (backend/replica/port decisions),
`app` (the Serve deployment), `manage` (start/status/shutdown and the registry).
"""
