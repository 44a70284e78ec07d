"""A stand-in causal LM whose next token is scripted by position, for exact engine tests.

`ScriptedLM(reply_ids, prompt_len, eos)` puts all probability on `reply_ids[p - prompt_len]`
at position p (then `eos`), so a reply is known token by token whatever the batch holds. It
keeps a real `DynamicCache` up to date (one dummy layer), so the engine's cache merging,
pruning and padding run exactly as with a real model.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch


class ScriptedLM(torch.nn.Module):
    def __init__(self, reply_ids: list[int], prompt_len: int, eos: int, vocab: int,
                 max_positions: int = 4096) -> None:
        super().__init__()
        self.reply = list(reply_ids)
        self.prompt_len = prompt_len
        self.eos = eos
        self.lm_head = torch.nn.Linear(1, vocab, bias=False)
        self.config = SimpleNamespace(vocab_size=vocab, max_position_embeddings=max_positions)
        self.generation_config = SimpleNamespace(eos_token_id=eos)
        self.forward_calls = 0
        self.batch_sizes: list[int] = []

    def get_output_embeddings(self):
        return self.lm_head

    def token_at(self, pos: int) -> int:
        i = pos - self.prompt_len
        return self.reply[i] if 0 <= i < len(self.reply) else self.eos

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None,
                use_cache=True, logits_to_keep=0):
        b, t = input_ids.shape
        self.forward_calls += 1
        self.batch_sizes.append(b)
        kv = torch.zeros(b, 1, t, 1)
        past_key_values.update(kv, kv.clone(), 0)
        assert attention_mask.shape[1] == past_key_values.get_seq_length()
        nxt = [self.token_at(int(p) + 1) for p in position_ids[:, -1]]
        logits = torch.full((b, 1, self.lm_head.weight.shape[0]), -1e4)
        logits[torch.arange(b), 0, torch.tensor(nxt)] = 10.0
        return SimpleNamespace(logits=logits)
