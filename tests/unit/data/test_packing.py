"""Token store (cache, atomic build, workers) and packed batches (coverage, positions, loss)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ja_adapt.core.errors import UserError
from ja_adapt.data import tokens as tokens_mod
from ja_adapt.data.documents import Document
from ja_adapt.data.packing import IGNORE, PackedBatches
from ja_adapt.data.tokens import TokenStore, build_token_store
from ja_adapt.models.load import load_model
from ja_adapt.train.loss import token_nll


@pytest.fixture
def store(tiny_docs, tiny_tokenizer, tmp_path):
    return build_token_store(tiny_docs, tiny_tokenizer, tmp_path / "cache")


@pytest.fixture
def encode_calls(monkeypatch):
    """Counts tokenization calls made in this process."""
    calls = []
    real = tokens_mod._encode_chunk

    def counting(texts, *args, **kwargs):
        calls.append(len(texts))
        return real(texts, *args, **kwargs)

    monkeypatch.setattr(tokens_mod, "_encode_chunk", counting)
    return calls


# --- token store -------------------------------------------------------------------------------


def unpacked_batches(store: TokenStore, doc_indices, pad_id: int | None = None) -> dict[str, torch.Tensor]:
    """One document per row, right-padded to the longest: three int64 [len(doc_indices), L] tensors
    with the same contract as `PackedBatches.get` (positions 0.., padding positions L, L+1, ...).
    The reference the packed batches are checked against."""
    pad_id = store.pad_id if pad_id is None else pad_id
    docs = [np.asarray(store.doc_tokens(int(i)), dtype=np.int64) for i in doc_indices]
    if not docs:
        raise ValueError("unpacked_batches: no documents")
    width = max(len(d) for d in docs)
    input_ids = np.full((len(docs), width), pad_id, dtype=np.int64)
    targets = np.full((len(docs), width), IGNORE, dtype=np.int64)
    position_ids = np.tile(np.arange(width, dtype=np.int64), (len(docs), 1))
    for row, d in enumerate(docs):
        input_ids[row, : len(d)] = d
        targets[row, : len(d) - 1] = d[1:]
        position_ids[row, len(d) :] += width - len(d)  # padding: width, width+1, ...
    return {
        "input_ids": torch.from_numpy(input_ids),
        "position_ids": torch.from_numpy(position_ids),
        "targets": torch.from_numpy(targets),
    }


def test_store_holds_each_document_then_eos(store, tiny_docs, tiny_tokenizer):
    eos = tiny_tokenizer.eos_token_id
    expected = [tiny_tokenizer(d.text, add_special_tokens=False)["input_ids"] + [eos] for d in tiny_docs]
    assert store.n_docs == len(tiny_docs)
    assert [store.doc_tokens(i).tolist() for i in range(store.n_docs)] == expected
    assert store.n_tokens == sum(map(len, expected)) == len(store.tokens)
    assert isinstance(store.tokens, np.memmap) and store.tokens.dtype == np.uint32
    assert store.doc_langs == [d.lang for d in tiny_docs]
    assert store.doc_domains == [d.domain for d in tiny_docs]
    reopened = TokenStore.open(store.path)
    assert np.array_equal(reopened.tokens, store.tokens)
    assert np.array_equal(reopened.doc_offsets, store.doc_offsets)
    assert reopened.doc_domains == store.doc_domains
    assert reopened.pad_id == tiny_tokenizer.pad_token_id


def test_cache_is_reused_and_keyed_by_tokenizer_data_and_eos(tiny_docs, tiny_tokenizer, tmp_path, encode_calls):
    cache = tmp_path / "cache"
    first = build_token_store(tiny_docs, tiny_tokenizer, cache)
    assert encode_calls
    mtime = (first.path / "tokens.bin").stat().st_mtime_ns
    encode_calls.clear()
    again = build_token_store(list(tiny_docs), tiny_tokenizer, cache)
    assert again.path == first.path and not encode_calls  # nothing re-tokenized
    assert (again.path / "tokens.bin").stat().st_mtime_ns == mtime

    changed_data = build_token_store(tiny_docs[:-1] + [Document("犬が歩く。", "ja", "docs")], tiny_tokenizer, cache)
    relabelled = build_token_store(
        tiny_docs[:-1] + [Document(tiny_docs[-1].text, "ja", "other")], tiny_tokenizer, cache
    )
    no_eos = build_token_store(tiny_docs, tiny_tokenizer, cache, append_eos=False)
    other_tok = tiny_tokenizer.__class__(tokenizer_object=tiny_tokenizer.backend_tokenizer, eos_token="<|endoftext|>")
    other_tok.add_tokens(["日本語"])
    changed_tok = build_token_store(tiny_docs, other_tok, cache)
    assert len(tiny_tokenizer) == len(other_tok) - 1  # the shared fixture was not mutated
    paths = {first.path, changed_data.path, relabelled.path, no_eos.path, changed_tok.path}
    assert len(paths) == 5
    assert no_eos.n_tokens == first.n_tokens - first.n_docs
    assert sorted(p.name for p in cache.iterdir()) == sorted(p.name for p in paths)  # no temp dirs


def test_killed_build_leaves_no_cache(tiny_docs, tiny_tokenizer, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    real = tokens_mod._encoded_chunks

    def dies_midway(*args):
        chunks = real(*args)
        yield next(chunks)
        raise KeyboardInterrupt

    monkeypatch.setattr(tokens_mod, "_CHUNK_DOCS", 3)
    monkeypatch.setattr(tokens_mod, "_encoded_chunks", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        build_token_store(tiny_docs, tiny_tokenizer, cache)
    assert list(cache.iterdir()) == []
    monkeypatch.setattr(tokens_mod, "_encoded_chunks", real)
    assert build_token_store(tiny_docs, tiny_tokenizer, cache).n_docs == len(tiny_docs)


def test_workers_give_identical_tokens(store, tiny_docs, tiny_tokenizer, tmp_path, monkeypatch):
    monkeypatch.setattr(tokens_mod, "_CHUNK_DOCS", 3)  # several chunks, so order matters
    parallel = build_token_store(tiny_docs, tiny_tokenizer, tmp_path / "par", num_workers=2)
    assert np.array_equal(parallel.tokens, store.tokens)
    assert np.array_equal(parallel.doc_offsets, store.doc_offsets)


def test_store_errors(tiny_tokenizer, tmp_path):
    with pytest.raises(UserError, match="no documents"):
        build_token_store([], tiny_tokenizer, tmp_path)
    (tmp_path / "junk").mkdir()
    with pytest.raises(UserError, match="junk: not a token store"):
        TokenStore.open(tmp_path / "junk")


# --- packing -----------------------------------------------------------------------------------


def _naive_epoch(store, order, t, b, pad_id):
    """Reference packer in plain Python: rows of (input, position, target) for one epoch."""
    stream = [(doc, j, int(tok)) for doc in order for j, tok in enumerate(store.doc_tokens(doc))]
    per_batch = t * b
    n_batches = -(-len(stream) // per_batch)
    rows = []
    for r in range(n_batches * b):
        cells = stream[r * t : (r + 1) * t]
        inp, pos, tgt = [], [], []
        for k, (doc, _j, tok) in enumerate(cells):
            inp.append(tok)
            pos.append(0 if k == 0 or cells[k - 1][0] != doc else pos[-1] + 1)
            nxt = cells[k + 1] if k + 1 < len(cells) else None
            tgt.append(nxt[2] if nxt is not None and nxt[0] == doc else IGNORE)
        for k in range(len(cells), t):
            inp.append(pad_id)
            pos.append(t + k - len(cells))
            tgt.append(IGNORE)
        rows.append((inp, pos, tgt))
    return [
        {
            name: torch.tensor([row[i] for row in rows[s * b : (s + 1) * b]])
            for i, name in enumerate(("input_ids", "position_ids", "targets"))
        }
        for s in range(n_batches)
    ]


def test_batches_match_reference_packer_and_cover_every_token_once(store):
    t, b = 16, 3
    packed = PackedBatches(store, seq_len=t, batch_size=b, seed=7)
    n = packed.batches_per_epoch
    assert n == -(-store.n_tokens // (t * b))
    for epoch in range(2):
        order = packed.epoch_order(epoch)
        assert sorted(order.tolist()) == list(range(store.n_docs))  # each doc exactly once
        reference = _naive_epoch(store, order.tolist(), t, b, store.pad_id)
        got = [packed.get(epoch * n + i) for i in range(n)]
        for want, have in zip(reference, got):
            for key in want:
                assert torch.equal(want[key], have[key]), key
        real = torch.cat([g["input_ids"].flatten()[g["position_ids"].flatten() < t] for g in got])
        assert real.tolist() == np.concatenate([store.doc_tokens(d) for d in order]).tolist()
        assert sum(packed.real_tokens(g) for g in got) == store.n_tokens
    assert not np.array_equal(packed.epoch_order(0), packed.epoch_order(1))
    slots = n * t * b
    assert packed.padding_fraction == pytest.approx((slots - store.n_tokens) / slots)


def test_position_ids_restart_at_document_starts(store):
    t = 24
    packed = PackedBatches(store, seq_len=t, batch_size=2, seed=0, shuffle=False)
    starts = set(store.doc_offsets[:-1].tolist())  # unshuffled: stream == store order
    for i in range(packed.batches_per_epoch):
        pos = packed.get(i)["position_ids"].flatten()
        for k, p in enumerate(pos.tolist()):
            stream_pos = i * 2 * t + k
            if stream_pos < store.n_tokens:
                assert (p == 0) == (stream_pos in starts or stream_pos % t == 0), stream_pos


def test_random_access_is_exact_and_seeded(store):
    a = PackedBatches(store, seq_len=16, batch_size=2, seed=3)
    late = a.batches_per_epoch * 2 + 1
    first = [a.get(i) for i in (late, 0, late)]
    b = PackedBatches(store, seq_len=16, batch_size=2, seed=3)
    for got, index in zip(first, (late, 0, late)):
        assert all(torch.equal(got[k], b.get(index)[k]) for k in got)
    c = PackedBatches(store, seq_len=16, batch_size=2, seed=4)
    assert not torch.equal(c.get(0)["input_ids"], first[1]["input_ids"])
    with pytest.raises(UserError, match="seq_len"):
        PackedBatches(store, seq_len=1, batch_size=2, seed=0)
    with pytest.raises(UserError, match="batch_size"):
        PackedBatches(store, seq_len=8, batch_size=0, seed=0)


def _doc_spans(batch, t):
    """(row, start, end) of every segment that starts a document (position 0) and ends at its EOS
    inside the row, i.e. documents lying wholly inside one row."""
    spans = []
    for r, (pos, tgt) in enumerate(zip(batch["position_ids"].tolist(), batch["targets"].tolist())):
        for s in (k for k, p in enumerate(pos) if p == 0 and p < t):
            e = s
            while e + 1 < t and pos[e + 1] == pos[e] + 1 and pos[e + 1] < t:
                e += 1
            if e + 1 < t and tgt[e] == IGNORE:  # the segment ended before the row did
                spans.append((r, s, e + 1))
    return spans


def test_packed_loss_equals_unpacked_loss_per_document(store, tiny_tokenizer):
    t = 64
    packed = PackedBatches(store, seq_len=t, batch_size=2, seed=1, shuffle=False)
    model = load_model("tiny", vocab_size=len(tiny_tokenizer)).eval()
    starts = {int(o): i for i, o in enumerate(store.doc_offsets[:-1])}  # unshuffled: pos → doc
    checked, contaminated = 0, 0
    with torch.no_grad():
        for i in range(packed.batches_per_epoch):
            batch = packed.get(i)
            nll = token_nll(model, batch)
            flat = {k: v.clone() for k, v in batch.items()}
            flat["position_ids"] = torch.arange(t).expand(2, t).contiguous()  # no doc boundaries
            nll_flat = token_nll(model, flat)
            for r, s, e in _doc_spans(batch, t):
                doc = starts.get(i * 2 * t + r * t + s)
                if doc is None:  # a row-start continuation of a cut document
                    continue
                single = unpacked_batches(store, [doc])
                assert torch.equal(single["input_ids"][0], batch["input_ids"][r, s:e])
                want = token_nll(model, single).sum().item()
                assert nll[r, s:e].sum().item() == pytest.approx(want, abs=1e-4)
                checked += 1
                contaminated += abs(nll_flat[r, s:e].sum().item() - want) > 1e-3
    assert checked >= 3
    assert contaminated >= 1  # the check can fail: without restarted positions documents mix


def test_unpacked_batches_pad_after_each_document(store):
    batch = unpacked_batches(store, [0, 8])
    lengths = store.doc_lengths[[0, 8]].tolist()
    width = max(lengths)
    assert batch["input_ids"].shape == (2, width)
    for row, n in enumerate(lengths):
        pads = list(range(width, 2 * width - n))
        assert batch["position_ids"][row].tolist() == list(range(n)) + pads
        assert batch["targets"][row, : n - 1].tolist() == store.doc_tokens([0, 8][row])[1:].tolist()
        assert (batch["targets"][row, n - 1 :] == IGNORE).all()
