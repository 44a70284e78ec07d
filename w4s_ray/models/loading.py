"""Load a resolved local checkpoint for generation: weights (+ a merged LoRA), tokenizer, end
tokens, and the `BatchEngine` over them. Used by the local meta-agent backend and `w4s serve`.

`path` must already be a local directory (see `w4s_ray.models.resolve`); nothing is fetched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    eos_ids: list[int]
    max_positions: int | None
    name: str

    def engine(self, *, max_rows: int = 16, max_batch_tokens: int | None = None):
        from w4s_ray.models.engine import BatchEngine

        return BatchEngine(self.model, self.tokenizer, self.eos_ids, max_rows=max_rows,
                           max_batch_tokens=max_batch_tokens, max_positions=self.max_positions)


def load_tokenizer(path: str):
    # One loader for every stage: our own qwen2 tiny builds need the fast class (tokenizer.py).
    from w4s_ray.models.tokenizer import load_tokenizer as _load

    return _load(path)


def end_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The generation config's EOS ids, the tokenizer's, and ChatML's <|im_end|> if present."""
    ids: list[int] = []
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    candidates = [gen_eos] if isinstance(gen_eos, int) else list(gen_eos or [])
    candidates.append(tokenizer.eos_token_id)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        candidates.append(im_end)
    for tid in candidates:
        if tid is not None and int(tid) not in ids:
            ids.append(int(tid))
    return ids


def torch_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device == "cuda" else torch.float32
    return getattr(torch, dtype)


def load_model(
    path: str, *, adapter_path: str | None = None, tokenizer_path: str | None = None,
    dtype: str = "auto", device: str | None = None, threads: int | None = None,
    name: str | None = None,
) -> LoadedModel:
    """Load for inference. `threads`: torch intra-op threads of this process (a small model on
    a busy 2-core box decodes far faster with 1 thread than with 2 competing ones)."""
    import torch
    from transformers import AutoModelForCausalLM

    if threads:
        torch.set_num_threads(threads)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype(dtype, device))
    if adapter_path:
        from peft import PeftModel

        # Merged once at load: the LoRA then costs nothing per token.
        model = PeftModel.from_pretrained(model, adapter_path).merge_and_unload()
    model.to(device)
    model.eval()
    tokenizer = load_tokenizer(tokenizer_path or path)
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"{tokenizer_path or path}: the tokenizer has no chat template")
    eos = end_token_ids(model, tokenizer)
    if not eos:
        raise ValueError(f"{path}: neither the model nor the tokenizer defines an end token")
    return LoadedModel(
        model=model, tokenizer=tokenizer, eos_ids=eos,
        max_positions=getattr(model.config, "max_position_embeddings", None),
        name=name or os.path.basename(str(path).rstrip("/")),
    )
