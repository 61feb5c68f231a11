"""Script classes from the team spec, per-character attribution and character accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from ja_adapt.evaluate.likelihood import token_byte_spans
from ja_adapt.evaluate.scripts import attribute, new_tally, script_of, summarize_tally, tally_document


def test_script_classes_follow_the_spec():
    text = "あゝゞゟアーヽヿㇰｶﾀｶﾅｦﾝ漢々〆〇㐀豈𠀋A1、。ﾞ・ 　"
    expected = ["hiragana"] * 4 + ["katakana"] * 4 + ["katakana"] + ["katakana"] * 6 + ["kanji"] * 7 + ["other"] * 8
    # ゝゞ (U+309D/E) and ゟ (U+309F) are hiragana; ヽヿ katakana; ﾞ (U+FF9E) and ・ (U+30FB) are other
    assert [script_of(c) for c in text] == expected


def test_boundaries_of_the_ranges():
    assert script_of("\u3040") == "other" and script_of("\u3041") == "hiragana"
    assert script_of("\u3096") == "hiragana" and script_of("\u3097") == "other"
    assert script_of("\u30fb") == "other" and script_of("\u30fc") == "katakana"
    assert script_of("\uff65") == "other" and script_of("\uff66") == "katakana"
    assert script_of("\uff9d") == "katakana" and script_of("\uff9e") == "other"
    assert script_of("\u4dbf") == "kanji" and script_of("\u4dc0") == "other"
    assert script_of("\U0002fa1f") == "kanji" and script_of("\U0002fa20") == "other"


def test_shares_split_by_bytes_and_sum_to_the_total():
    text = "aあ𠀋"  # bytes: a=0..1, あ=1..4, 𠀋=4..8
    spans = [(0, 2), (2, 6), (6, 8)]  # tokens split あ (1+2 bytes) and 𠀋 (2+2 bytes)
    values = np.array([2.0, 4.0, 1.0])
    shares, touching = attribute(text, spans, values)
    assert shares == pytest.approx([1.0, 1.0 + 2.0, 2.0 + 1.0])
    assert touching == [[0], [0, 1], [1, 2]]
    assert shares.sum() == pytest.approx(values.sum())


def test_empty_span_token_goes_to_the_next_character():
    shares, touching = attribute("ab", [(0, 1), (1, 1), (1, 2)], np.array([1.0, 5.0, 2.0]))
    assert shares == pytest.approx([1.0, 7.0]) and touching == [[0], [1, 2]]


def test_byte_spans_from_offsets_of_split_characters(tiny_tokenizer):
    text = "ｶﾀ𠀋 漢字です。"
    enc = tiny_tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    toks = tiny_tokenizer.convert_ids_to_tokens(enc["input_ids"])
    spans = token_byte_spans(text, toks, enc["offset_mapping"])
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    dec = {c: b for b, c in bytes_to_unicode().items()}
    b = text.encode("utf-8")
    assert any(len(t) != len(tiny_tokenizer.convert_tokens_to_string([t]).encode()) for t in toks), (
        "the text should make BPE split a character"
    )
    for t, (s, e) in zip(toks, spans):
        assert b[s:e] == bytes(dec[c] for c in t)  # each span holds exactly the token's own bytes
    assert spans[0][0] == 0 and spans[-1][1] == len(b)


def test_per_script_bits_sum_to_total_and_accuracy_rule():
    text = "あア漢a"  # 3 + 3 + 3 + 1 bytes
    spans = [(0, 4), (4, 6), (6, 10)]  # token 0: あ + 1 byte of ア; token 1: rest of ア; token 2: 漢a
    nll = np.array([1.0, 2.0, 3.0]) * np.log(2)  # 1, 2, 3 bits
    correct = np.array([True, False, True])
    tally = new_tally()
    bits = tally_document(tally, text, spans, nll, correct)
    s = summarize_tally(tally)
    assert s["overall"]["bits"] == pytest.approx(6.0) and bits.sum() == pytest.approx(6.0)
    assert s["hiragana"]["bits"] == pytest.approx(0.75)
    assert s["katakana"]["bits"] == pytest.approx(0.25 + 2.0)
    assert s["kanji"]["bits"] == pytest.approx(2.25) and s["other"]["bits"] == pytest.approx(0.75)
    # ア touches a wrong token → wrong; あ, 漢, a touch only right tokens → right
    assert [s[k]["char_accuracy"] for k in ("hiragana", "katakana", "kanji", "other")] == [1, 0, 1, 1]
    assert s["overall"]["char_accuracy"] == pytest.approx(0.75)
