"""Loading the tokenizer saved next to a model (local meta-agent backend, training, serving).

`MARKER_FILE` is written next to a tiny build (`w4s_ray.train.tiny`): how it was made, and it
marks our qwen2 builds, whose tokenizer must be loaded with the fast class (with
`model_type=qwen2`, transformers' AutoTokenizer swaps in Qwen2's own pre-tokenizer regex).
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerFast

MARKER_FILE = "w4s_tiny.json"


def load_tokenizer(model_dir: str | Path):
    """The tokenizer saved next to a model (Llama: AutoTokenizer; Qwen2: the fast class)."""
    # Only our own qwen2 builds need the fast class; a real Qwen keeps its own tokenizer class.
    marker = Path(model_dir) / MARKER_FILE
    arch = json.loads(marker.read_text()).get("arch") if marker.exists() else None
    if arch == "qwen2":
        tok = PreTrainedTokenizerFast.from_pretrained(str(model_dir))
    else:
        tok = AutoTokenizer.from_pretrained(str(model_dir))
    return tok
