"""Meta-agent from a local Hugging Face causal LM (transformers), in-process.

Loads any directory (or locally cached hub name) with `AutoTokenizer` + `AutoModelForCausalLM`,
formats the chat with the tokenizer's own chat template, and samples n replies one at a time:
sample i reseeds torch with seed + i, so a candidate's text does not depend on n or on the other
candidates (exact resume). Runs on CPU here; on a GPU node (`meta_agent.num_gpus` > 0 and CUDA
present) on `cuda`. Generation stops at the tokenizer's EOS, the generation config's EOS ids
and a ChatML `<|im_end|>` when the vocabulary has one.

A prompt longer than the model's context minus the reply room is fitted by the shared rule of
`meta_agent.context` (oldest history turns dropped first; the system prompt, the task and the
latest message kept; then tokens cut from the middle) and counted in `truncated_prompts`;
small offline models have 2k contexts that a full W4S prompt exceeds. RWR training fits its
prompts with the same rule. The reply room is
`meta_agent.max_tokens`, clamped to a third of the context when it would not fit (the tiny
model: 1536 tokens of context, so 512 for the reply instead of the configured 4096); generation
then stops at the end of the context. The clamp is logged once per model.

Not here: batching across calls, KV-cache reuse, vLLM. In a Ray job the model lives in one actor
(`w4s_ray.runtime.meta_agent_actor`) so it is loaded once and shared.
"""

from __future__ import annotations

import logging
from pathlib import Path

from w4s_ray.config import MetaAgentConfig
from w4s_ray.errors import ConfigError
from w4s_ray.meta_agent import context
from w4s_ray.meta_agent.base import MetaAgent, check_messages
from w4s_ray.meta_agent.tokenizer import load_tokenizer

log = logging.getLogger(__name__)

_DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def _load_tokenizer(path: str):
    from transformers import AutoTokenizer

    try:
        if Path(path).is_dir():
            return load_tokenizer(path)
    except ImportError:
        pass
    return AutoTokenizer.from_pretrained(path)


class LocalMetaAgent(MetaAgent):
    def __init__(self, cfg: MetaAgentConfig, model_path: str | None = None) -> None:
        super().__init__()
        import torch
        from transformers import AutoModelForCausalLM

        self.cfg = cfg
        path = str(model_path or cfg.model)
        self.name = path
        try:
            self.tokenizer = _load_tokenizer(path)
            use_cuda = cfg.num_gpus > 0 and torch.cuda.is_available()
            self.device = "cuda" if use_cuda else "cpu"
            if cfg.dtype == "auto":
                dtype = torch.bfloat16 if use_cuda else torch.float32
            else:
                dtype = getattr(torch, _DTYPES[cfg.dtype])
            self.model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        except OSError as exc:
            raise ConfigError(
                f"meta_agent.model: cannot load '{path}' (not a model directory and not in the "
                f"local Hugging Face cache): {str(exc).splitlines()[0][:160]}"
            ) from None
        if not getattr(self.tokenizer, "chat_template", None):
            raise ConfigError(f"meta_agent.model: '{path}' has no chat template")
        self.model.to(self.device).eval()
        self.truncated_prompts = 0
        ctx = getattr(self.model.config, "max_position_embeddings", None)
        self.reply_room = cfg.max_tokens if not ctx else min(cfg.max_tokens, max(1, ctx // 3))
        if self.reply_room < cfg.max_tokens:
            log.warning("meta_agent.max_tokens %d does not fit the %d-token context of %s: "
                        "replies are clamped to %d tokens", cfg.max_tokens, ctx, path,
                        self.reply_room)
        self._eos = self._eos_ids()
        pad = self.tokenizer.pad_token_id
        self._pad = pad if pad is not None else self._eos[0]

    def _eos_ids(self) -> list[int]:
        ids: list[int] = []
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        for tid in ([gen_eos] if isinstance(gen_eos, int) else list(gen_eos or [])) + [
            self.tokenizer.eos_token_id
        ]:
            if tid is not None and tid not in ids:
                ids.append(int(tid))
        im_end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        unk = self.tokenizer.unk_token_id
        if isinstance(im_end, int) and im_end != unk and im_end not in ids:
            ids.append(im_end)
        return ids

    def _ids(self, messages, generation_prompt: bool = True) -> list[int]:
        enc = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=generation_prompt, return_dict=True)
        return list(enc["input_ids"])

    def encode(self, messages):
        """Chat-template token ids (1, L), fitted to the context (`meta_agent.context`)."""
        import torch

        ids = self._ids(messages)
        ctx = getattr(self.model.config, "max_position_embeddings", None)
        if ctx:
            budget = max(16, ctx - self.reply_room)
            if len(ids) > budget:
                self.truncated_prompts += 1
                messages, _ = context.drop_history(
                    list(messages), lambda m: len(self._ids(m)) <= budget)
                ids = self._ids(messages)
                head = context.common_prefix(
                    ids, self._ids(messages[:context.head_count(messages)], False))
                ids = context.cut(ids, *context.head_tail(len(ids), head, budget))
        return torch.tensor([ids], dtype=torch.long)

    def generate(self, messages, n, *, seed=None):
        import torch

        check_messages(messages)
        ids = self.encode(messages).to(self.device)
        mask = torch.ones_like(ids)
        ctx = getattr(self.model.config, "max_position_embeddings", None) or 10**9
        max_new = max(1, min(self.cfg.max_tokens, ctx - ids.shape[1]))
        sample = self.cfg.temperature > 0
        kwargs = dict(
            max_new_tokens=max_new, do_sample=sample, pad_token_id=self._pad,
            eos_token_id=self._eos,
        )
        if sample:
            kwargs.update(temperature=self.cfg.temperature, top_p=self.cfg.top_p)
        out: list[str] = []
        with torch.inference_mode():
            for i in range(n):
                if seed is not None:
                    torch.manual_seed(int(seed + i) % (2**63))
                gen = self.model.generate(input_ids=ids, attention_mask=mask, **kwargs)
                new = gen[0, ids.shape[1]:]
                self.usage.prompt_tokens += int(ids.shape[1])
                self.usage.completion_tokens += int(new.shape[0])
                out.append(self.tokenizer.decode(new, skip_special_tokens=True).strip())
        self.usage.calls += 1
        return out
