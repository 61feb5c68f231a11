"""Completion-only loss of packed supervised batches against transformers' own labels API, and the
masks after packing (with and without data.completion_only_loss, with rows cutting documents)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ja_adapt.data.documents import Document
from ja_adapt.data.packing import IGNORE, PackedBatches
from ja_adapt.data.tokenizer import train_tokenizer
from ja_adapt.data.tokens import build_token_store
from ja_adapt.models.load import load_model
from ja_adapt.train.loss import training_loss

PAIRS = [
    ("Translate into Japanese:\nOpen %s\n", "%s を開く"),
    ("Translate into Japanese:\nSave the file\n", "ファイルを保存する"),
    ("Translate into Japanese:\nQuit\n", "終了"),
    ("Translate into Japanese:\nShow help for a command\n", "コマンドのヘルプを表示します"),
]
CHAT = (
    ("user", "こんにちは"),
    ("assistant", "こんにちは！元気ですか？"),
    ("user", "はい"),
    ("assistant", "よかったです。"),
)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([p + c for p, c in PAIRS] + [c for _, c in CHAT] * 2, 400)


@pytest.fixture(scope="module")
def store(tokenizer, tmp_path_factory):
    docs = [Document(p + c, segments=((p, False), (c, True))) for p, c in PAIRS]
    docs.insert(2, Document("\n".join(c for _, c in CHAT), messages=CHAT))
    docs.append(Document("地の文は全部のトークンで学習します。"))
    return build_token_store(docs, tokenizer, tmp_path_factory.mktemp("cache"))


def _doc(store, i):
    lo, hi = store.doc_offsets[i], store.doc_offsets[i + 1]
    return torch.tensor(store.tokens[lo:hi].astype(np.int64)), torch.tensor(store.loss_mask[lo:hi].astype(bool))


def test_packed_loss_is_the_sum_of_each_examples_masked_nll_from_transformers(store, tokenizer):
    model = load_model("tiny", vocab_size=len(tokenizer), seed=0).float().eval()
    seq_len = store.n_tokens + 5  # one row holds every example (and some padding)
    packed = PackedBatches(store, seq_len=seq_len, batch_size=1, shuffle=False)
    batch = packed.get(0)
    with torch.no_grad():
        loss, _ = training_loss(model, batch, scale=1.0)
        reference, targets = 0.0, 0
        for i in range(store.n_docs):
            ids, mask = _doc(store, i)
            labels = torch.where(mask, ids, torch.full_like(ids, -100))
            n = int(mask[1:].sum())  # transformers shifts: the first token is no target
            out = model(input_ids=ids[None], labels=labels[None])
            reference += out.loss.item() * n
            targets += n
    assert int((batch["targets"] != IGNORE).sum()) == targets
    assert loss.item() == pytest.approx(reference, rel=1e-5)
    # the check can fail: the loss over every token differs
    unmasked = PackedBatches(store, seq_len=seq_len, batch_size=1, shuffle=False, completion_only=False)
    with torch.no_grad():
        assert training_loss(model, unmasked.get(0), scale=1.0)[0].item() > reference * 1.5


@pytest.mark.parametrize("seq_len", [16, 37, 512])
def test_masks_survive_packing_and_row_cuts(store, seq_len):
    """Every target of an epoch is a next token of the same document that carries loss, and each
    such token is a target exactly once unless a row boundary falls right before it."""
    for completion_only in (True, False):
        packed = PackedBatches(store, seq_len=seq_len, batch_size=3, seed=4, completion_only=completion_only)
        seen = []
        for b in range(packed.batches_per_epoch):
            batch = packed.get(b)
            for r in range(3):
                ids, tg = batch["input_ids"][r].tolist(), batch["targets"][r].tolist()
                seen += [(ids[j], tg[j]) for j in range(seq_len) if tg[j] != IGNORE]
        expected, cuts = [], 0
        order = packed.epoch_order(0)
        pos = 0
        for d in order:
            ids, mask = _doc(store, d)
            for j in range(1, len(ids)):
                if (pos + j) % seq_len == 0:  # a row starts at this token: no target for it
                    cuts += 1
                    continue
                if mask[j] or not completion_only:
                    expected.append((int(ids[j - 1]), int(ids[j])))
            pos += len(ids)
        assert sorted(seen) == sorted(expected)
        if completion_only:
            assert len(seen) < sum(len(_doc(store, d)[0]) - 1 for d in order) - cuts
