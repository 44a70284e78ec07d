"""Chat generation with transformers for the serving deployment (no Ray in here).

`ChatGenerator` loads an HF causal LM (optionally a peft LoRA adapter merged into its base),
formats messages with the tokenizer's own chat template, and samples `n` completions in ONE
`generate` call (`num_return_sequences=n`), with OpenAI semantics:

- `temperature` 0 is greedy decoding (all n choices are then identical, as with OpenAI);
  otherwise multinomial sampling with `temperature` and nucleus `top_p`. No top-k, no
  repetition penalty: the model's own generation_config sampling defaults are NOT applied, so a
  request means the same thing for every checkpoint.
- `seed`: transformers' `generate` takes no `torch.Generator`, so the default generator is
  seeded inside `torch.random.fork_rng` under a lock. The same seed (and request) gives the same
  completions; the global RNG state outside the call is untouched. No seed: a fresh random one.
- `stop`: generation stops per sequence at any stop string (transformers' StopStringCriteria);
  the returned text ends before the stop string, as in the OpenAI API.
- `finish_reason`: "stop" (end-of-turn token or a stop string) or "length" (`max_tokens`, or the
  model's context window, was reached).
- usage: `prompt_tokens` counts the formatted prompt once; `completion_tokens` sums the tokens
  each choice generated (up to and including its end token or the token that completed a
  stop string).

Calls are serialised by a lock (one model, one generation at a time per replica); callers run
`generate` in a worker thread so an event loop stays responsive.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from w4s_ray.serve.checkpoint import ResolvedModel

log = logging.getLogger(__name__)


class ContextLengthError(ValueError):
    """The formatted prompt already fills the model's context window."""


class PromptFormatError(ValueError):
    """The model's chat template refused the messages (e.g. a role order it does not allow)."""


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1 (got {self.n})")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1 (got {self.max_tokens})")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (got {self.temperature})")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] (got {self.top_p})")
        if any(not s for s in self.stop):
            raise ValueError("stop sequences must be non-empty")


@dataclass
class Completion:
    text: str
    finish_reason: str  # "stop" | "length"
    completion_tokens: int


@dataclass
class GenerationOutput:
    completions: list[Completion]
    prompt_tokens: int
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.completions)


def load_tokenizer(path: str):
    """The tokenizer saved with a model.

    With `model_type=qwen2`, transformers 5's AutoTokenizer swaps in Qwen2's own pre-tokenizer
    (docs/PLATFORM.md), so ids would differ from the saved tokenizer.json; the fast class reads
    tokenizer.json as is.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    d = Path(path)
    model_type = None
    if (d / "config.json").is_file():
        try:
            model_type = json.loads((d / "config.json").read_text()).get("model_type")
        except (OSError, json.JSONDecodeError):
            model_type = None
    if model_type == "qwen2" and (d / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(str(d))
    return AutoTokenizer.from_pretrained(str(d))


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else None


def _as_id_set(value: Any) -> set[int]:
    if value is None:
        return set()
    if isinstance(value, int):
        return {value}
    return {int(v) for v in value}


class ChatGenerator:
    """One loaded model + tokenizer; `generate(messages, params)` is thread-safe."""

    def __init__(self, model: Any, tokenizer: Any, *, name: str = "model") -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.truncate_prompt = False
        self.truncated_prompts = 0
        self._lock = threading.Lock()
        gen_cfg = getattr(model, "generation_config", None)
        eos = _as_id_set(getattr(gen_cfg, "eos_token_id", None))
        eos |= _as_id_set(tokenizer.eos_token_id)
        if not eos:
            raise ValueError(f"{name}: neither the model nor the tokenizer defines an eos token")
        self.eos_ids = eos
        pad = getattr(gen_cfg, "pad_token_id", None)
        if pad is None:
            pad = tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else min(eos)
        self.max_positions: int | None = getattr(model.config, "max_position_embeddings", None)

    @classmethod
    def load(
        cls, resolved: ResolvedModel, *, dtype: str = "auto", device: str | None = None,
        name: str | None = None, threads: int | None = None,
    ) -> ChatGenerator:
        """Load weights (+ merged LoRA) and tokenizer. `threads`: torch intra-op threads for
        this process (measured here: a small model on a busy 2-core box decodes ~100x faster
        with 1 thread than with 2 competing ones)."""
        import torch
        from transformers import AutoModelForCausalLM

        if threads:
            torch.set_num_threads(threads)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
        model = AutoModelForCausalLM.from_pretrained(resolved.model_path, dtype=torch_dtype)
        if resolved.adapter_path:
            from peft import PeftModel

            # Merged once at load: the LoRA then costs nothing per token.
            model = PeftModel.from_pretrained(model, resolved.adapter_path).merge_and_unload()
        model.to(device)
        model.eval()
        tokenizer = load_tokenizer(resolved.tokenizer_path or resolved.model_path)
        if tokenizer.chat_template is None:
            raise ValueError(f"{resolved.tokenizer_path}: tokenizer has no chat template")
        return cls(model, tokenizer, name=name or os.path.basename(resolved.model_path))

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        from jinja2 import TemplateError

        try:
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        except TemplateError as exc:
            raise PromptFormatError(f"the model's chat template rejected the messages: {exc}") from None
        # The template already holds every special token the model was trained with.
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, messages: list[dict[str, str]], params: SamplingParams) -> GenerationOutput:
        import torch

        ids = self.prompt_ids(messages)
        max_new = params.max_tokens
        if self.max_positions and self.truncate_prompt:
            # Room for the reply: max_tokens, at most a third of the context (as the local
            # backend), so a 4096-token request to a 1536-token model keeps a usable prompt.
            budget = max(16, self.max_positions - min(max_new, self.max_positions // 3))
            if len(ids) > budget:
                self.truncated_prompts += 1
                ids = ids[-budget:]
        if self.max_positions:
            room = self.max_positions - len(ids)
            if room < 1:
                raise ContextLengthError(
                    f"the prompt is {len(ids)} tokens; this model's context window is "
                    f"{self.max_positions} tokens"
                )
            max_new = min(max_new, room)
        seed = params.seed if params.seed is not None else secrets.randbits(63)
        sample = params.temperature > 0
        n_run = params.n if sample else 1
        kwargs: dict[str, Any] = dict(
            max_new_tokens=max_new,
            do_sample=sample,
            num_return_sequences=n_run,
            eos_token_id=sorted(self.eos_ids),
            pad_token_id=self.pad_id,
        )
        if sample:
            kwargs.update(temperature=float(params.temperature), top_p=float(params.top_p), top_k=0)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        device = next(self.model.parameters()).device
        input_ids = torch.tensor([ids], dtype=torch.long, device=device)
        devices = [device] if device.type == "cuda" else []
        with self._lock, torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(seed)
            out = self.model.generate(
                input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **kwargs
            )
        rows = out[:, len(ids):].tolist()
        completions = [self._finish(row, params.stop) for row in rows]
        if not sample:
            completions = [Completion(c.text, c.finish_reason, c.completion_tokens)
                           for c in completions * params.n]
        return GenerationOutput(completions=completions, prompt_tokens=len(ids), seed=seed)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _finish(self, row: list[int], stops: tuple[str, ...]) -> Completion:
        end = next((i for i, t in enumerate(row) if t in self.eos_ids), None)
        body = row if end is None else row[:end]
        text = self._decode(body)
        cut = _first_stop(text, stops) if stops else None
        if cut is not None:
            # Fewest tokens whose text already contains a stop string: what the model "spent".
            lo, hi = 1, len(body)
            while lo < hi:
                mid = (lo + hi) // 2
                if _first_stop(self._decode(body[:mid]), stops) is not None:
                    hi = mid
                else:
                    lo = mid + 1
            return Completion(text[:cut], "stop", lo)
        if end is not None:
            return Completion(text, "stop", end + 1)
        # Neither an end token nor a stop string: max_tokens (or the context window) ran out.
        return Completion(text, "length", len(row))
