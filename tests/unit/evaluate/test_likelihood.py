"""Likelihood protocol: summed NLL against transformers' own loss, bits per byte by hand, windows."""

from __future__ import annotations

import math

import pytest
import torch

from ja_adapt.core.errors import UserError
from ja_adapt.data.documents import Document
from ja_adapt.evaluate.likelihood import corpus_likelihood, score_batch, score_documents, windows
from ja_adapt.models.load import load_model
from ja_adapt.train.loss import IGNORE, token_nll

TEXT = "今日は良い天気ですね。The weather is nice. 我们是中国人。𠀋ｶﾀｶﾅ"


@pytest.fixture(scope="module")
def model(tiny_tokenizer):
    return load_model("tiny", vocab_size=len(tiny_tokenizer)).eval()


def _hf_sum(model, tokenizer, text):
    """transformers' mean loss over the document with EOS prepended, times the target count."""
    ids = [tokenizer.eos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"]
    x = torch.tensor([ids])
    with torch.no_grad():
        return model(input_ids=x, labels=x).loss.item() * (len(ids) - 1), len(ids) - 1


def test_summed_nll_equals_transformers_loss(model, tiny_tokenizer):
    ref, n = _hf_sum(model, tiny_tokenizer, TEXT)
    r = corpus_likelihood(model, tiny_tokenizer, [Document(TEXT)], max_length=512, stride=256)
    assert r["tokens"] == n
    assert r["nll_sum_nats"] == pytest.approx(ref, rel=1e-5)
    assert r["token_ppl"] == pytest.approx(math.exp(ref / n), rel=1e-5)


def test_bits_per_byte_and_char_by_hand(model, tiny_tokenizer):
    ref, _ = _hf_sum(model, tiny_tokenizer, TEXT)
    r = corpus_likelihood(model, tiny_tokenizer, [Document(TEXT), Document("")], max_length=512, stride=256)
    n_bytes = len(TEXT.encode("utf-8"))
    assert (r["chars"], r["bytes"]) == (len(TEXT), n_bytes)
    assert r["bits_per_byte"] == pytest.approx(ref / math.log(2) / n_bytes, rel=1e-5)
    assert r["bits_per_char"] == pytest.approx(ref / math.log(2) / len(TEXT), rel=1e-5)
    assert r["skipped_empty_documents"] == 1 and len(r["per_doc"]) == 1


def test_windows_score_every_token_once():
    for n, length, stride in [(2, 4, 1), (10, 4, 3), (37, 8, 5), (100, 16, 15), (5, 256, 128)]:
        seen = [j for _, end, first in windows(n, length, stride) for j in range(first, end)]
        assert seen == list(range(1, n))
        for begin, end, first in windows(n, length, stride):
            assert end - begin <= length and first > begin


def test_short_windows_stay_close_and_batching_is_invariant(model, tiny_tokenizer):
    docs = [Document(TEXT), Document("犬が走る。"), Document(TEXT[:20])]
    full = corpus_likelihood(model, tiny_tokenizer, docs, max_length=512, stride=256)
    a = corpus_likelihood(model, tiny_tokenizer, docs, max_length=8, stride=4, batch_size=1)
    b = corpus_likelihood(model, tiny_tokenizer, docs, max_length=8, stride=4, batch_size=5, chunk_size=7)
    assert a["tokens"] == full["tokens"]
    assert a["nll_sum_nats"] == pytest.approx(b["nll_sum_nats"], rel=1e-5)
    assert a["nll_sum_nats"] != pytest.approx(full["nll_sum_nats"], rel=1e-6)  # less context, other numbers


def test_argmax_path_equals_token_nll(model, tiny_tokenizer):
    ids = tiny_tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    x = torch.tensor([ids[:-1], ids[1:]])
    t = x.shape[1]
    targets = torch.tensor([ids[1:], ids[2:] + [IGNORE]])
    batch = {"input_ids": x, "position_ids": torch.arange(t).expand(2, t), "targets": targets}
    with torch.no_grad():
        ref = token_nll(model, batch)
        nll, am = score_batch(model, batch, chunk_size=5, want_argmax=True)
        logits = model(input_ids=x).logits
    assert torch.allclose(nll, ref, atol=1e-5)
    assert torch.equal(am, logits.argmax(-1))


def test_scores_expose_tokens_spans_and_argmax(model, tiny_tokenizer):
    (s,) = score_documents(model, tiny_tokenizer, [Document(TEXT)], want_argmax=True)
    assert len(s.token_ids) == len(s.spans) == len(s.nll) == len(s.argmax)
    assert s.spans[0][0] == 0 and s.spans[-1][1] == len(TEXT.encode("utf-8"))
    assert all(a < b for a, b in s.spans)
    assert all(s.spans[i][1] == s.spans[i + 1][0] for i in range(len(s.spans) - 1))


def test_bad_protocol_is_a_user_error(model, tiny_tokenizer):
    with pytest.raises(UserError, match="eval.stride"):
        corpus_likelihood(model, tiny_tokenizer, [Document(TEXT)], max_length=8, stride=8)
