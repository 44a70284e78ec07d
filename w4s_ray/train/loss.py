"""Batched reward-weighted cross-entropy for causal LMs (no Ray).

loss = mean_b( w_b * mean_{t in labels_b} CE(logits_{b,t-1}, y_{b,t}) )

where the labels of example b are its candidate's tokens and, with `train.loss_on:
all_assistant` (default, as upstream), the tokens of the earlier assistant turns in its prompt
as well (`rwr.tokenize_sample`).

One padded forward pass per batch (`batch_loss`), or per batch of packed rows in which the
candidates of one prompt share a single encoding of it (`collate_packed`, `packed_batch_loss`:
same loss, a fraction of the tokens; labels inside the shared prompt are computed once and
counted in each of its candidates' means). `per_sample_rwr_loss` is the reference the paper's
code computes (one forward per example in an HF Trainer subclass); tests check they agree and
the bench measures the speed difference.

`train.kl_coef > 0` (a deviation; upstream has no such term) adds beta x KL(reference ||
policy) at the same label positions, the reference being the model training started from
(`rwr_loss`): it holds the policy's token distributions near the warm start's, so
that fitting a few high-reward programs does not leave it sampling only those.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from w4s_ray.train.rwr import IGNORE_INDEX


def collate(
    input_ids: Sequence[Sequence[int]],
    labels: Sequence[Sequence[int]],
    weights: Sequence[float],
    pad_id: int,
) -> dict[str, torch.Tensor]:
    """Right-pad a batch to its longest sequence; padding is masked out of attention and loss."""
    n = len(input_ids)
    width = max(len(x) for x in input_ids)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    lab = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
    att = torch.zeros((n, width), dtype=torch.long)
    for i, (x, y) in enumerate(zip(input_ids, labels, strict=True)):
        ids[i, : len(x)] = torch.as_tensor(x, dtype=torch.long)
        lab[i, : len(y)] = torch.as_tensor(y, dtype=torch.long)
        att[i, : len(x)] = 1
    return {
        "input_ids": ids,
        "attention_mask": att,
        "labels": lab,
        "weights": torch.as_tensor(list(weights), dtype=torch.float32),
    }


def _masked_mean_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean CE of `logits[b, t]` against `targets[b, t]` over unmasked targets -> (batch,)."""
    ce = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    ).view(targets.shape)
    mask = (targets != IGNORE_INDEX).to(ce.dtype)
    # clamp: a sequence with no action tokens contributes 0, not NaN.
    return (ce * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def per_sequence_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token CE over each sequence's unmasked label positions -> shape (batch,)."""
    return _masked_mean_ce(logits[:, :-1, :], labels[:, 1:])


def weighted_rwr_loss(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weighted batch loss, unweighted per-sequence CE detached) for one padded batch."""
    seq_ce = per_sequence_ce(logits, labels)
    loss = (seq_ce * weights.to(seq_ce.dtype)).mean()
    return loss, seq_ce.detach()


def batch_loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward one collated batch through `model` and return the weighted RWR loss.

    Only positions whose next token is a label of some row get logits (`logits_to_keep`):
    the prompt, usually most of the sequence, never goes through the LM head. Models whose
    forward lacks `logits_to_keep` get full logits.
    """
    labels = batch["labels"]
    keep = torch.nonzero((labels[:, 1:] != IGNORE_INDEX).any(dim=0)).squeeze(1)
    try:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    logits_to_keep=keep)
    except TypeError:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return weighted_rwr_loss(out.logits, labels, batch["weights"])
    seq_ce = _masked_mean_ce(out.logits, labels[:, keep + 1])
    loss = (seq_ce * batch["weights"].to(seq_ce.dtype)).mean()
    return loss, seq_ce.detach()


def collate_packed(rows: Sequence[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad packed rows (`rwr.PackedRow` fields as dicts); `seg` marks prompt (0), action
    k (k) and padding (-1); `tgt_*` list every label: row, predicting position, token, and
    global action index within the batch (-1 for a label inside the shared prompt);
    `act_row` is each action's row."""
    n = len(rows)
    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    pos = torch.zeros((n, width), dtype=torch.long)
    seg = torch.full((n, width), -1, dtype=torch.long)
    tb, tsrc, ttok, tseg, weights, act_row = [], [], [], [], [], []
    for i, r in enumerate(rows):
        L = len(r["input_ids"])
        ids[i, :L] = torch.as_tensor(r["input_ids"], dtype=torch.long)
        pos[i, :L] = torch.as_tensor(r["pos"], dtype=torch.long)
        seg[i, :L] = torch.as_tensor(r["seg"], dtype=torch.long)
        lab = torch.as_tensor(r["labels"], dtype=torch.long)
        src = torch.as_tensor(r["src"], dtype=torch.long)
        sg = torch.as_tensor(r["seg"], dtype=torch.long)
        at = torch.nonzero(lab != IGNORE_INDEX).squeeze(1)
        tb.append(torch.full((len(at),), i, dtype=torch.long))
        tsrc.append(src[at])
        ttok.append(lab[at])
        # Global action index within the batch; a prompt label (seg 0) gets -1.
        tseg.append(torch.where(sg[at] > 0, sg[at] - 1 + len(weights), -1))
        act_row.extend([i] * len(r["weights"]))
        weights.extend(float(w) for w in r["weights"])
    return {
        "input_ids": ids,
        "position_ids": pos,
        "seg": seg,
        "tgt_b": torch.cat(tb),
        "tgt_src": torch.cat(tsrc),
        "tgt_tok": torch.cat(ttok),
        "tgt_seg": torch.cat(tseg),
        "act_row": torch.as_tensor(act_row, dtype=torch.long),
        "weights": torch.as_tensor(weights, dtype=torch.float32),
    }


def block_mask(seg: torch.Tensor) -> torch.Tensor:
    """The 4-D boolean attention mask of packed rows (for `packed_batch_loss_dense`).

    Query i may attend key j when j <= i, both are real tokens, and j is in the prompt or in
    i's own action. Padding queries attend to themselves only (a fully masked row is NaN in
    SDPA); no loss is taken there.
    """
    width = seg.shape[1]
    idx = torch.arange(width, device=seg.device)
    causal = idx[None, :] <= idx[:, None]
    same = (seg[:, None, :] == 0) | (seg[:, None, :] == seg[:, :, None])
    real = seg >= 0
    mask = causal[None] & same & real[:, None, :] & real[:, :, None]
    mask |= torch.eye(width, dtype=torch.bool, device=seg.device)[None]
    return mask[:, None]


def _per_action(values: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-action mean of a per-label value over the action's labels plus its row's shared
    prompt labels -> (n_actions,)."""
    n_seg = batch["weights"].shape[0]
    n_rows = int(batch["input_ids"].shape[0])
    tseg, act = batch["tgt_seg"], batch["tgt_seg"] >= 0
    seg_sum = torch.zeros(n_seg, dtype=values.dtype, device=values.device).index_add(
        0, tseg[act], values[act])
    seg_cnt = torch.bincount(tseg[act], minlength=n_seg).to(values.dtype)
    rows = batch["tgt_b"][~act]
    p_sum = torch.zeros(n_rows, dtype=values.dtype, device=values.device).index_add(
        0, rows, values[~act])
    p_cnt = torch.bincount(rows, minlength=n_rows).to(values.dtype)
    own = batch["act_row"]
    return (seg_sum + p_sum[own]) / (seg_cnt + p_cnt[own]).clamp(min=1.0)


def _reduce(ce: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-action mean CE from per-label CE, then the weighted mean over the batch's actions."""
    seq_ce = _per_action(ce, batch)
    loss = (seq_ce * batch["weights"].to(seq_ce.dtype)).mean()
    return loss, seq_ce.detach()


def _ce(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.cross_entropy(logits, batch["tgt_tok"], reduction="none")


def packed_batch_loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The weighted RWR loss of a `collate_packed` batch: per-action mean CE x weight, mean
    over the batch's actions. Same value (and gradient) as `batch_loss` on the unpacked
    examples. Returns (loss, per-action CE detached)."""
    return _reduce(_ce(packed_label_logits(model, batch), batch), batch)


def packed_label_logits(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The float32 logits at every label of a `collate_packed` batch, in `tgt_*` order ->
    (n_labels, vocab).

    Prefix sharing: per packed row, the prompt goes through the model once (causal, with the
    KV cache on; the cached keys and values stay in the autograd graph), then the row's m
    actions, unpadded and back to back, in one forward on that cache with a mask that lets
    each action see the prompt and its own earlier tokens. Tokens processed: P + m*A instead
    of m*(P + A); attention ~P^2/2 + m*A*(P + m*A) instead of m*(P + A)^2/2. One packed
    forward with a block mask over the whole row (`packed_batch_loss_dense`) processes the
    same tokens, but its dense (P + m*A)^2 mask costs more attention than the unpacked batch,
    and attention dominates on small models with long prompts.
    """
    seg, ids = batch["seg"], batch["input_ids"]
    pieces, where = [], torch.empty_like(batch["tgt_src"])
    base = 0
    for i in range(ids.shape[0]):
        row_seg = seg[i]
        n_prompt = int((row_seg == 0).sum())
        n_real = int((row_seg >= 0).sum())
        mine = torch.nonzero(batch["tgt_b"] == i).squeeze(1)
        src = batch["tgt_src"][mine]
        # Prompt logits where a label needs them: the prompt's own labels (earlier assistant
        # turns) and its last position (the first token of every action).
        need = torch.unique(torch.cat([src[src < n_prompt - 1],
                                       torch.tensor([n_prompt - 1], device=ids.device)]))
        out_p = model(input_ids=ids[i:i + 1, :n_prompt], use_cache=True, logits_to_keep=need)
        # The actions follow the prompt in the row, unpadded; each attends to the whole
        # cached prompt and causally to its own tokens (a 4-D mask over prompt + actions).
        act_seg = row_seg[n_prompt:n_real]
        q = torch.arange(act_seg.shape[0], device=ids.device)
        own = (act_seg[None, :] == act_seg[:, None]) & (q[None, :] <= q[:, None])
        mask = torch.cat([torch.ones((len(q), n_prompt), dtype=torch.bool, device=ids.device),
                          own], dim=1)[None, None]
        out_a = model(input_ids=ids[i:i + 1, n_prompt:n_real],
                      position_ids=batch["position_ids"][i:i + 1, n_prompt:n_real],
                      attention_mask=mask, past_key_values=out_p.past_key_values,
                      use_cache=True)
        pieces += [out_p.logits[0], out_a.logits[0]]
        # Each label's logits row: its place among the kept prompt positions, or among the
        # actions' positions after them.
        k = len(need)
        idx = torch.where(src < n_prompt, torch.searchsorted(need, src.clamp(max=n_prompt - 1)),
                          k + src - n_prompt)
        where[mine] = base + idx
        base += k + (n_real - n_prompt)
    return torch.cat(pieces)[where].float()


def packed_batch_loss_dense(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """`packed_batch_loss` as one forward over the packed rows with a block attention mask
    (kept as a reference and for models whose forward takes no KV cache)."""
    return _reduce(_ce(packed_label_logits_dense(model, batch), batch), batch)


def packed_label_logits_dense(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """`packed_label_logits` from one forward with a block attention mask."""
    keep, kidx = torch.unique(batch["tgt_src"], sorted=True, return_inverse=True)
    out = model(input_ids=batch["input_ids"], attention_mask=block_mask(batch["seg"]),
                position_ids=batch["position_ids"], logits_to_keep=keep)
    return out.logits[batch["tgt_b"], kidx].float()


def kl_from_reference(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """Per-label KL(reference || policy) over the vocabulary -> (n_labels,).

    This direction (forward, mass-covering) grows wherever the policy takes probability away
    from tokens the reference still gives some: the alternatives that a reward-weighted fit
    to a few examples squeezes out. The reverse direction, KL(policy || reference), costs
    nothing for dropping them, so it would not hold sampling diverse.
    """
    ref_logp = F.log_softmax(ref_logits.float(), dim=-1)
    logp = F.log_softmax(logits.float(), dim=-1)
    return (ref_logp.exp() * (ref_logp - logp)).sum(dim=-1)


def rwr_loss(label_logits: Callable, model, batch: dict[str, torch.Tensor],
             kl_coef: float = 0.0, reference: Callable | None = None,
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The training step's loss: the weighted RWR loss, plus (kl_coef > 0) kl_coef x the mean
    over the batch's actions of their per-label mean KL(reference || policy). The KL term is
    not reward-weighted: every example is held near the reference whatever its reward.
    Returns (loss, per-action CE, per-action KL or None), the last two detached.

    `label_logits` is `packed_label_logits` or `packed_label_logits_dense`; `reference()` is
    a context manager that yields the frozen reference model (a separate copy, or for LoRA
    the model itself with its adapters disabled). Its logits are computed without a graph.
    """
    logits = label_logits(model, batch)
    loss, seq_ce = _reduce(_ce(logits, batch), batch)
    if kl_coef <= 0:
        return loss, seq_ce, None
    if reference is None:
        raise ValueError("kl_coef > 0 needs a reference model")
    with torch.no_grad(), reference() as ref:
        ref_logits = label_logits(ref, batch)
    seq_kl = _per_action(kl_from_reference(logits, ref_logits), batch)
    return loss + kl_coef * seq_kl.mean(), seq_ce, seq_kl.detach()


def per_sample_rwr_loss(model, input_ids, labels, weights) -> torch.Tensor:
    """The paper code's way: one forward per example, weighted, then averaged (reference only)."""
    total = None
    for x, y, w in zip(input_ids, labels, weights, strict=True):
        ids = torch.as_tensor([x], dtype=torch.long)
        lab = torch.as_tensor([y], dtype=torch.long)
        out = model(input_ids=ids, labels=lab)
        term = out.loss * float(w)
        total = term if total is None else total + term
    return total / len(input_ids)
