"""Fertility (evaluate/fertility.py) against hand counts: a byte-level BPE without merges costs each
character its UTF-8 bytes; a one-token-per-character tokenizer gives 1.0 characters per token."""

from __future__ import annotations

import json

import pytest
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from ja_adapt.apps import cli
from ja_adapt.data.documents import Document
from ja_adapt.evaluate.fertility import fertility


def _bytes_only() -> PreTrainedTokenizerFast:
    """Byte-level BPE whose vocabulary is the 256 bytes and one special token: no merges."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        ["x"],
        trainer=trainers.BpeTrainer(
            vocab_size=257,
            special_tokens=["<|endoftext|>"],
            show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


def _per_character(chars: str) -> PreTrainedTokenizerFast:
    """One token per character of `chars`, [UNK] for any other character."""
    vocab = {c: i for i, c in enumerate(chars)} | {"[UNK]": len(chars)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")


def test_byte_pieces_by_hand():
    r = fertility(_bytes_only(), [Document("犬が走る。ab", "ja", "x"), Document("hi there", "en", "x")])
    ja, en = r["by_lang"]["ja"], r["by_lang"]["en"]
    # 犬 が 走 る 。 are 3 UTF-8 bytes each, a and b one: 17 tokens, 15 of them part of a character
    assert (ja["chars"], ja["bytes"], ja["tokens"], ja["partial_char_tokens"]) == (7, 17, 17, 15)
    assert ja["chars_per_token"] == pytest.approx(7 / 17) and ja["bytes_per_token"] == 1.0
    assert en["tokens"] == en["chars"] == 8 and en["partial_char_share"] == 0
    scripts = r["scripts"]
    assert (scripts["kanji"]["chars"], scripts["kanji"]["tokens"]) == (2, pytest.approx(6))
    assert (scripts["hiragana"]["chars"], scripts["hiragana"]["tokens"]) == (2, pytest.approx(6))
    assert (scripts["other"]["chars"], scripts["other"]["tokens"]) == (3, pytest.approx(5))  # 。 a b
    assert scripts["katakana"]["chars_per_token"] is None
    assert sum(s["tokens"] for s in scripts.values()) == pytest.approx(ja["tokens"])
    assert r["overall"]["tokens"] == 25


def test_one_token_per_character_is_one_char_per_token_and_unknowns_are_counted():
    text = "今日はカタカナとabc"
    tok = _per_character(text)
    r = fertility(tok, [Document(text, "ja", "x")])
    assert r["by_lang"]["ja"]["chars_per_token"] == 1.0 and r["by_lang"]["ja"]["unk_share"] == 0
    assert all(s["chars_per_token"] == 1.0 for s in r["scripts"].values())
    r = fertility(tok, [Document("今日はxyz", "ja", "x")])  # x, y, z are unknown
    assert r["by_lang"]["ja"]["unk_share"] == pytest.approx(3 / 6)


def test_eval_json_carries_the_fertility_of_its_documents(tiny_tokenizer, tiny_docs):
    from ja_adapt.config import EvalConfig
    from ja_adapt.evaluate.run import evaluate_model
    from ja_adapt.models.load import load_model

    model = load_model("tiny", vocab_size=len(tiny_tokenizer), seed=0).eval()
    r = evaluate_model(model, tiny_tokenizer, tiny_docs, EvalConfig(gen_prompts=0, bootstrap_resamples=10))
    own = fertility(tiny_tokenizer, tiny_docs)
    assert r["fertility"]["by_lang"] == own["by_lang"] and r["fertility"]["definition"].endswith("#fertility")
    for lang in ("ja", "en"):  # the tokens the likelihood pass scored, counted by its own code
        assert r["fertility"]["by_lang"][lang]["tokens"] == r["likelihood"]["by_lang"][lang]["tokens"]
        assert r["fertility"]["by_lang"][lang]["chars"] == r["likelihood"]["by_lang"][lang]["chars"]


def test_the_command_reads_a_tokenizer_alone_and_refuses_to_overwrite(tmp_path, capsys):
    _bytes_only().save_pretrained(tmp_path / "tok")
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in ("今日は良い天気です。", "The weather is nice.")))
    out = tmp_path / "f.json"
    assert cli.main(["fertility", "--tokenizer", str(tmp_path / "tok"), "--data", str(corpus), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "chars/tok" in printed and "hiragana" in printed
    saved = json.loads(out.read_text())
    assert saved["by_lang"]["ja"]["tokens"] == 30 and saved["by_lang"]["en"]["tokens"] == 20
    out.write_text("keep")
    assert cli.main(["fertility", "--tokenizer", str(tmp_path / "tok"), "--data", str(corpus), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--force" in err and out.read_text() == "keep"
    assert cli.main(["fertility", "--tokenizer", str(tmp_path / "none"), "--data", str(corpus)]) == 2


def test_a_slow_tokenizer_is_refused_in_one_line():
    from types import SimpleNamespace

    from ja_adapt.core.errors import UserError

    slow = SimpleNamespace(is_fast=False, name_or_path="slow-tok", unk_token_id=None)
    with pytest.raises(UserError, match="slow-tok.*fast tokenizer") as e:
        fertility(slow, [Document("今日は", "ja", "x")])
    assert len(str(e.value).splitlines()) == 1
