"""Incremental text, stop strings and the JSON-object end, token by token."""

from __future__ import annotations

import json

import pytest

from w4s_ray.models.textstate import IncrementalText, JsonObjectScan, StopScan


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from w4s_ray.models.loading import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


def test_deltas_concatenate_to_the_decoded_text_even_across_split_characters(tok):
    text = "déjà vu — naïve café 🤖 done\n  x = {'k': 1}"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(text) / 4  # byte-level pieces: some characters span tokens
    inc = IncrementalText(tok)
    deltas = [inc.push(t) for t in ids]
    deltas.append(inc.flush())
    assert "".join(deltas) == tok.decode(ids, skip_special_tokens=True) == inc.text
    assert not any("\ufffd" in d for d in deltas)  # never a half character on the wire


def test_stop_scan_finds_the_earliest_stop_and_holds_back_partial_ones():
    scan = StopScan(["END", "\n\n"])
    assert scan.find("abc EN", 4) is None
    assert scan.find("abc END more", 6) == 4  # the stop began before the new text
    assert scan.find("a\n\nb END", 2) == 1
    assert scan.safe_len("abc EN") == 4  # "EN" may still become "END"
    assert scan.safe_len("abc\n") == 3
    assert scan.safe_len("abc") == 3
    assert StopScan([]).safe_len("anything") == 8


def test_json_scan_ends_at_the_close_of_the_first_object():
    reply = '{"a": "}{ not the end \\" still", "b": [1, {"c": 2}]} trailing prose'
    scan = JsonObjectScan()
    end = None
    for ch in reply:  # one character per step, as a worst case
        end = end or scan.feed(ch)
    assert end is not None and json.loads(reply[:end]) == {"a": '}{ not the end " still',
                                                            "b": [1, {"c": 2}]}


def test_json_scan_gives_up_on_a_reply_that_is_not_an_object():
    scan = JsonObjectScan()
    assert scan.feed("Sure! {\"a\": 1}") is None and scan.broken
