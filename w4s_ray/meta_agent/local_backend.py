"""Meta-agent from a local Hugging Face causal LM (transformers), in-process.

`meta_agent.model` is anything `w4s_ray.models.resolve_model_path` accepts: an HF directory,
a `.gguf` file (converted once, cached), a prepared preset (`smollm2`) or a hub id. Generation
goes through the same `BatchEngine`, prompt encoder and sampling rules as `w4s serve`
(`w4s_ray.models`): the chat template formats the prompt (special-token text inside messages
stays text), the n replies of one call are decoded together as n rows of one batch, and
temperature / top_p / top_k / repetition_penalty come from `meta_agent.*` with the shared
defaults (top_k 0 = off, as the server). Sample i is drawn from its own generator seeded with
seed + i, so a candidate's text does not depend on the other candidates (exact resume; up to
float rounding when n changes the batch shape). Stops at the end-of-turn tokens.

A prompt longer than the model's context minus the reply room is fitted by the shared rule of
`meta_agent.context` (oldest history turns dropped first; the system prompt, the task and the
latest message kept; then tokens cut from the middle) and counted in `truncated_prompts`;
small offline models have 2k contexts that a full W4S prompt exceeds. RWR training fits its
prompts with the same rule. The reply room is
`meta_agent.max_tokens`, clamped to a third of the context when it would not fit (the tiny
model: 1536 tokens of context, so 512 for the reply instead of the configured 4096); generation
then stops at the end of the context. The clamp is logged once per model.

Runs on CPU here; on a GPU node (`meta_agent.num_gpus` > 0 and CUDA present) on `cuda`. In a
Ray job the model lives in one actor (`w4s_ray.runtime.meta_agent_actor`) so it is loaded once.
"""

from __future__ import annotations

import logging

from w4s_ray.config import MetaAgentConfig
from w4s_ray.errors import ConfigError, W4SError
from w4s_ray.meta_agent import context
from w4s_ray.meta_agent.base import MetaAgent, check_messages

log = logging.getLogger(__name__)


class LocalMetaAgent(MetaAgent):
    def __init__(self, cfg: MetaAgentConfig, model_path: str | None = None,
                 models_cfg=None) -> None:
        super().__init__()
        import torch

        from w4s_ray.models.loading import load_model
        from w4s_ray.models.resolve import resolve_for

        self.cfg = cfg
        spec = str(model_path or cfg.model)
        self.name = spec
        path = resolve_for(models_cfg, spec, what="meta_agent.model")
        use_cuda = cfg.num_gpus > 0 and torch.cuda.is_available()
        try:
            self.loaded = load_model(path, dtype=cfg.dtype, device="cuda" if use_cuda else "cpu",
                                     name=spec)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"meta_agent.model: cannot load '{spec}': {str(exc).splitlines()[0][:160]}"
            ) from None
        self.tokenizer = self.loaded.tokenizer
        self.model = self.loaded.model
        self.device = "cuda" if use_cuda else "cpu"
        self.engine = self.loaded.engine()
        self.truncated_prompts = 0
        ctx = self.loaded.max_positions
        self.reply_room = cfg.max_tokens if not ctx else min(cfg.max_tokens, max(1, ctx // 3))
        if self.reply_room < cfg.max_tokens:
            log.warning("meta_agent.max_tokens %d does not fit the %d-token context of %s: "
                        "replies are clamped to %d tokens", cfg.max_tokens, ctx, spec,
                        self.reply_room)

    def _ids(self, messages, generation_prompt: bool = True) -> list[int]:
        from w4s_ray.models.chat import PromptFormatError, encode_chat

        try:
            return encode_chat(self.tokenizer, messages, add_generation_prompt=generation_prompt)
        except PromptFormatError as exc:
            raise W4SError(f"meta-agent: {exc}") from None

    def encode(self, messages) -> list[int]:
        """Chat-template token ids, fitted to the context with room for the reply by the
        shared rule of `meta_agent.context`."""
        ctx = self.loaded.max_positions
        if not ctx:
            return self._ids(messages)
        fit = context.fit_chat(messages, self._ids, max(16, ctx - self.reply_room))
        self.truncated_prompts += int(fit.truncated)
        return fit.fitted_ids()

    def sampling(self, n: int, seed: int | None):
        from w4s_ray.models.sampling import SamplingParams

        return SamplingParams(
            n=n, temperature=self.cfg.temperature, top_p=self.cfg.top_p, top_k=self.cfg.top_k,
            repetition_penalty=self.cfg.repetition_penalty, max_tokens=self.reply_room,
            seed=None if seed is None else int(seed) % (2**63),
        )

    def generate(self, messages, n, *, seed=None):
        from w4s_ray.models.engine import EngineRequest

        check_messages(messages)
        ids = self.encode(messages)
        req = self.engine.generate(EngineRequest(ids, self.sampling(n, seed)))
        self.usage.calls += 1
        self.usage.prompt_tokens += len(ids) * n
        self.usage.completion_tokens += req.completion_tokens
        return [c.text.strip() for c in req.choices]
