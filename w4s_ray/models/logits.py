"""Next-token choice for a batch of rows, each with its own sampling settings (torch).

Rows come from different requests, so every setting is per row: temperature (0 = greedy),
top-k, top-p, the three penalties, and a `torch.Generator` per row. A seeded row draws the same
tokens whatever else shares the batch (up to float rounding of the batched forward pass).
Semantics of each setting: `w4s_ray.models.sampling`. Order, as in transformers and vLLM:
penalties, temperature, top-k, top-p, then one inverse-CDF draw from the row's generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class RowSampling:
    """The per-row view the batch needs; `counts`/`seen` exist only for penalised rows."""

    temperature: float
    top_k: int
    top_p: float
    generator: torch.Generator | None
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    counts: torch.Tensor | None = None  # [V] float: how often each token was generated
    seen: torch.Tensor | None = None    # [V] bool: token in the prompt or the reply

    @property
    def penalised(self) -> bool:
        return self.counts is not None


def penalty_state(prompt_ids: Sequence[int], vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    counts = torch.zeros(vocab, dtype=torch.float32)
    seen = torch.zeros(vocab, dtype=torch.bool)
    if prompt_ids:
        seen[torch.tensor(list(prompt_ids), dtype=torch.long).clamp_(0, vocab - 1)] = True
    return counts, seen


def record_token(row: RowSampling, token: int) -> None:
    if row.counts is not None and 0 <= token < row.counts.shape[0]:
        row.counts[token] += 1
        row.seen[token] = True


def _apply_penalties(logits: torch.Tensor, rows: Sequence[RowSampling]) -> None:
    idx = [i for i, r in enumerate(rows) if r.penalised]
    if not idx:
        return
    vocab = logits.shape[1]
    sub = logits[idx]
    counts = torch.stack([rows[i].counts[:vocab] for i in idx])
    seen = torch.stack([rows[i].seen[:vocab] for i in idx])
    rep = torch.tensor([rows[i].repetition_penalty for i in idx]).unsqueeze(1)
    freq = torch.tensor([rows[i].frequency_penalty for i in idx]).unsqueeze(1)
    pres = torch.tensor([rows[i].presence_penalty for i in idx]).unsqueeze(1)
    penalised = torch.where(sub > 0, sub / rep, sub * rep)
    sub = torch.where(seen, penalised, sub)
    sub = sub - freq * counts - pres * (counts > 0).to(sub.dtype)
    logits[idx] = sub


def _draw(cdf: torch.Tensor, rows: Sequence[RowSampling]) -> torch.Tensor:
    """One inverse-CDF draw per row from that row's generator; `cdf` is unnormalised."""
    u = torch.stack([torch.rand((), generator=r.generator) for r in rows]).to(cdf.dtype)
    total = cdf[:, -1:]
    pick = torch.searchsorted(cdf, u.unsqueeze(1) * total, right=True).squeeze(1)
    return pick.clamp_(max=cdf.shape[1] - 1)


def choose_tokens(logits: torch.Tensor, rows: Sequence[RowSampling]) -> list[int]:
    """Next token of every row; `logits` is [B, V] (modified in place)."""
    logits = logits.float()
    _apply_penalties(logits, rows)
    out = logits.argmax(dim=-1)
    sampled = [i for i, r in enumerate(rows) if r.temperature > 0]
    if sampled:
        srows = [rows[i] for i in sampled]
        temps = torch.tensor([r.temperature for r in srows]).unsqueeze(1)
        scaled = logits[sampled] / temps
        if any(r.top_k > 0 or r.top_p < 1.0 for r in srows):
            sorted_logits, order = scaled.sort(dim=-1, descending=True)
            probs = torch.softmax(sorted_logits, dim=-1)
            vocab = probs.shape[1]
            ks = torch.tensor([r.top_k if 0 < r.top_k < vocab else vocab for r in srows])
            pos = torch.arange(vocab).unsqueeze(0)
            keep = pos < ks.unsqueeze(1)
            ps = torch.tensor([r.top_p for r in srows], dtype=probs.dtype).unsqueeze(1)
            # top-p acts on the distribution left after top-k, renormalised (as transformers).
            kept = probs * keep
            kept = kept / kept.sum(dim=-1, keepdim=True)
            keep &= (torch.cumsum(kept, dim=-1) - kept) < ps
            keep[:, 0] = True  # the most likely token always survives
            pick = _draw(torch.cumsum(probs * keep, dim=-1), srows)
            tokens = order.gather(1, pick.unsqueeze(1)).squeeze(1)
        else:
            probs = torch.softmax(scaled, dim=-1)
            tokens = _draw(torch.cumsum(probs, dim=-1), srows)
        out[sampled] = tokens
    return out.tolist()
