"""Shared fixtures: a tiny byte-level BPE tokenizer and a handful of documents, built on the fly."""

from __future__ import annotations

import pytest

from ja_adapt.data.documents import Document

_SENTENCES = [
    "今日は良い天気ですね。散歩に行きましょう。",
    "東京の桜は三月の終わりに咲きます。",
    "私は毎朝コーヒーを飲みながら新聞を読みます。",
    "この本はとても面白かったので、友達にも勧めました。",
    "カタカナで書かれたメニューを読むのは少し難しいです。",
    "日本語を勉強するのは楽しいけれど、漢字を覚えるのは大変です。",
    "The weather is nice today, so let's go for a walk.",
    "京都には古いお寺や神社がたくさんあります。",
]


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A PreTrainedTokenizerFast: byte-level BPE (vocab 512) trained on a few sentences,
    eos_token and pad_token "<|endoftext|>" (as in Qwen2.5)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(_SENTENCES * 4, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>")


@pytest.fixture
def tiny_docs() -> list[Document]:
    """Ten short documents in three domains (Japanese news / conversation, one English doc)."""
    news = [Document(s, "ja", "news") for s in _SENTENCES[:4]]
    chat = [Document(s + " " + s, "ja", "conversation") for s in _SENTENCES[4:6] + _SENTENCES[7:]]
    chat.append(Document("はい、そうです。", "ja", "conversation"))
    docs = [Document(_SENTENCES[6], "en", "docs"), Document("犬が走る。", "ja", "docs")]
    return news + chat + docs


@pytest.fixture(scope="session")
def saved_tiny_model(tmp_path_factory, tiny_tokenizer):
    """A tiny Qwen2 checkpoint + tokenizer saved to disk (loaded back like a hub model), and a small
    Japanese JSONL corpus in two domains from the registry-package corpora."""
    import json
    import os

    from ja_adapt.data.corpora import load_sources
    from ja_adapt.models import load_model

    root = tmp_path_factory.mktemp("tiny")
    model_dir = root / "tiny-model"
    load_model("tiny", vocab_size=len(tiny_tokenizer), seed=0).save_pretrained(model_dir)
    tiny_tokenizer.save_pretrained(model_dir)
    docs, _ = load_sources(["hironsan-news", "chatterbot-ja"], max_chars_per_source=6000)
    corpus = root / "ja.jsonl"
    corpus.write_text("".join(json.dumps({"text": d.text, "domain": d.domain}, ensure_ascii=False) + "\n"
                              for d in docs), encoding="utf-8")
    os.environ.setdefault("JA_ADAPT_CACHE", str(root / "cache"))
    return root, model_dir, corpus



@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module: on a couple of shared cores torch's thread pool stalls on
    contention (use with `pytestmark = pytest.mark.usefixtures("one_thread")`)."""
    import torch  # here, not at the top: most tests need no torch to collect
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
