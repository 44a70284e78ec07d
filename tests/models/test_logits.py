"""Per-row token choice: top-k, top-p, temperature, penalties and per-row generators."""

from __future__ import annotations

import pytest
import torch

from w4s_ray.models.logits import RowSampling, choose_tokens, penalty_state, record_token
from w4s_ray.models.sampling import SamplingParams

# Token 0 most likely, then 1, 2, ...: probabilities 0.4, 0.3, 0.2, 0.1 at temperature 1.
LOGITS = torch.log(torch.tensor([0.4, 0.3, 0.2, 0.1]))


def _row(seed=0, **kw) -> RowSampling:
    base = dict(temperature=1.0, top_k=0, top_p=1.0,
                generator=torch.Generator().manual_seed(seed))
    base.update(kw)
    return RowSampling(**base)


def _draws(n=400, **kw) -> list[int]:
    rows = [_row(seed=i, **kw) for i in range(n)]
    return choose_tokens(LOGITS.expand(n, -1).clone(), rows)


def test_top_k_keeps_only_the_k_most_likely_tokens():
    assert set(_draws(top_k=2)) == {0, 1}
    assert set(_draws(top_k=1)) == {0}
    assert set(_draws()) == {0, 1, 2, 3}  # 0 = off: every token can come out


def test_top_p_keeps_the_smallest_nucleus():
    # 0.4 + 0.3 = 0.7 covers top_p 0.65: tokens 2 and 3 are cut.
    assert set(_draws(top_p=0.65)) == {0, 1}
    assert set(_draws(top_p=0.3)) == {0}


def test_top_p_applies_after_top_k_renormalises():
    # top_k 3 -> 0.44, 0.33, 0.22; top_p 0.75 then needs tokens 0 and 1 only.
    assert set(_draws(top_k=3, top_p=0.75)) == {0, 1}


def test_greedy_rows_take_the_argmax_and_sampled_rows_follow_the_distribution():
    rows = [RowSampling(temperature=0.0, top_k=0, top_p=1.0, generator=None)] * 3
    assert choose_tokens(LOGITS.expand(3, -1).clone(), rows) == [0, 0, 0]
    draws = _draws(n=2000)
    freq = [draws.count(t) / len(draws) for t in range(4)]
    assert freq == pytest.approx([0.4, 0.3, 0.2, 0.1], abs=0.04)


def test_a_seeded_row_draws_the_same_token_whatever_shares_the_batch():
    alone = choose_tokens(LOGITS.unsqueeze(0).clone(), [_row(seed=7)])
    mixed = [_row(seed=1), _row(seed=7, top_k=0), _row(seed=3, top_k=1),
             RowSampling(temperature=0.0, top_k=0, top_p=1.0, generator=None)]
    batch = choose_tokens(LOGITS.expand(4, -1).clone(), mixed)
    assert batch[1] == alone[0]
    again = [_row(seed=7) for _ in range(5)]
    assert len({tuple(choose_tokens(LOGITS.unsqueeze(0).clone(), [r])) for r in again}) == 1


def test_repetition_penalty_discourages_tokens_of_the_prompt():
    row = _row(temperature=0.0, generator=None, repetition_penalty=3.0)
    row.counts, row.seen = penalty_state([0], vocab=4)  # token 0 is in the prompt
    # log 0.4 = -0.92 -> x3 = -2.75, now below log 0.3 = -1.20: token 1 wins.
    assert choose_tokens(LOGITS.unsqueeze(0).clone(), [row]) == [1]


def test_frequency_and_presence_penalties_count_generated_tokens_only():
    row = _row(temperature=0.0, generator=None, frequency_penalty=0.2)
    row.counts, row.seen = penalty_state([1, 2, 3], vocab=4)
    assert choose_tokens(LOGITS.unsqueeze(0).clone(), [row]) == [0]  # prompt tokens: no effect
    for _ in range(2):
        record_token(row, 0)  # 0 generated twice: -0.4 -> -1.32, below token 1's -1.20
    assert choose_tokens(LOGITS.unsqueeze(0).clone(), [row]) == [1]
    pres = _row(temperature=0.0, generator=None, presence_penalty=0.5)
    pres.counts, pres.seen = penalty_state([], vocab=4)
    record_token(pres, 0)
    assert choose_tokens(LOGITS.unsqueeze(0).clone(), [pres]) == [1]


def test_sampling_params_validate():
    for bad in (dict(n=0), dict(max_tokens=0), dict(temperature=-1), dict(top_p=0),
                dict(top_p=1.5), dict(top_k=-1), dict(stop=("",)), dict(repetition_penalty=0),
                dict(frequency_penalty=2.5), dict(presence_penalty=-3)):
        with pytest.raises(ValueError):
            SamplingParams(**bad)
    assert SamplingParams(temperature=0).greedy and not SamplingParams().penalised
    assert SamplingParams(frequency_penalty=0.1).penalised
