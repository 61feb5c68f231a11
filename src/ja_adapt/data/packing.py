"""Packed training rows from a TokenStore: fixed [B, T] batches, no attention across documents.

Each epoch is one stream: the store's documents (each already ending with EOS) concatenated in an
order permuted by (seed, epoch), cut into rows of T = seq_len tokens, B rows per batch. Batch i of
an epoch is stream positions [i*B*T, (i+1)*B*T); epoch = index // batches_per_epoch. So a batch is
a pure function of (store, T, B, seed, shuffle, index): training resumes exactly from "the next
batch index", and any batch is built in O(B*T log n_docs) without touching the others.

Batch contract (ja_adapt.train.loss):
  input_ids     the stream's tokens
  position_ids  restart at 0 at every document start and at every row start: a document that runs
                past the end of a row continues at the start of the next row as a fresh segment
                (positions from 0, no view of its earlier part). Splitting keeps every token in
                exactly one row per epoch and wastes no padding; the cost is lost context at a cut.
  targets       the next token of the same document in the same row; IGNORE at a document's last
                token (its EOS), at the last position of every row, and on padding, and, with
                completion_only (data.completion_only_loss), wherever the next token is masked in
                the store's loss_mask (a supervised record's prompt, non-assistant turns and template
                scaffolding). The mask travels with each token, so packing and cutting rows keep it.
Padding: only the tail of the epoch's last batch (the stream rarely fills it exactly) is padding,
so every token of the epoch is used and shapes stay fixed. Padding tokens are the store's pad id
and carry position ids T, T+1, ... (never < T): no real token attends to them (they come later in
the row and start their own segment), and `real_tokens` counts real tokens exactly as
position_ids < T, even after the batch has been moved to another device.
"""

from __future__ import annotations

import numpy as np
import torch

from ja_adapt.core.errors import UserError
from ja_adapt.data.tokens import TokenStore

IGNORE = -100  # a position without a target (torch's cross-entropy ignore_index default)


class PackedBatches:
    """Deterministic, random-access packed batches over a TokenStore (see module docstring)."""

    def __init__(
        self,
        store: TokenStore,
        seq_len: int,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        pad_id: int | None = None,
        completion_only: bool = True,
    ):
        if seq_len < 2:
            raise UserError(f"data.seq_len: must be >= 2, got {seq_len}")
        if batch_size < 1:
            raise UserError(f"train.batch_size: must be >= 1, got {batch_size}")
        self.store, self.seq_len, self.batch_size = store, seq_len, batch_size
        self.seed, self.shuffle, self.completion_only = seed, shuffle, completion_only
        self.pad_id = store.pad_id if pad_id is None else pad_id
        self._lengths = store.doc_lengths
        self._layout_epoch: int | None = None
        self._perm = self._starts = None

    @property
    def tokens_per_batch(self) -> int:
        return self.batch_size * self.seq_len

    @property
    def batches_per_epoch(self) -> int:
        return -(-self.store.n_tokens // self.tokens_per_batch)

    def __len__(self) -> int:
        return self.batches_per_epoch

    @property
    def padding_fraction(self) -> float:
        """Fraction of all row positions in an epoch that are padding (the same every epoch)."""
        slots = self.batches_per_epoch * self.tokens_per_batch
        return (slots - self.store.n_tokens) / slots

    def real_tokens(self, batch: dict[str, torch.Tensor]) -> int:
        """Non-padding positions of a batch from `get` (padding has position_ids >= seq_len)."""
        return int((batch["position_ids"] < batch["position_ids"].shape[-1]).sum())

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Public API: int64 [n_docs], the documents of `epoch` in stream order (which documents
        a run saw, and when)."""
        return self._layout(epoch)[0]

    def _layout(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(document order, stream start of each document in that order [n_docs + 1]), cached for
        the latest epoch only: training moves through epochs in order."""
        if self._layout_epoch != epoch:
            n = self.store.n_docs
            if self.shuffle:
                perm = np.random.default_rng([self.seed, epoch]).permutation(n)
            else:
                perm = np.arange(n)
            starts = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(self._lengths[perm], out=starts[1:])
            self._perm, self._starts, self._layout_epoch = perm, starts, epoch
        return self._perm, self._starts

    def get(self, index: int) -> dict[str, torch.Tensor]:
        """Batch `index` (any index >= 0; epochs follow one another): three int64 [B, T] tensors."""
        if index < 0:
            raise ValueError(f"batch index must be >= 0, got {index}")
        epoch, within_epoch = divmod(int(index), self.batches_per_epoch)
        perm, starts = self._layout(epoch)
        t, n_tokens = self.seq_len, self.store.n_tokens
        pos = within_epoch * self.tokens_per_batch + np.arange(self.tokens_per_batch, dtype=np.int64)
        row_start = pos - pos % t
        real = pos < n_tokens
        p = pos[real]
        k = np.searchsorted(starts, p, side="right") - 1  # slot in the epoch order
        doc = perm[k]
        offset_in_doc = p - starts[k]
        src = self.store.doc_offsets[doc] + offset_in_doc  # index into store.tokens
        has_next = (offset_in_doc + 1 < self._lengths[doc]) & ((p + 1) % t != 0)
        if self.completion_only:
            has_next &= self.store.loss_mask[np.minimum(src + 1, n_tokens - 1)].astype(bool)

        input_ids = np.full(pos.shape, self.pad_id, dtype=np.int64)
        targets = np.full(pos.shape, IGNORE, dtype=np.int64)
        input_ids[real] = self.store.tokens[src]
        targets[np.flatnonzero(real)[has_next]] = self.store.tokens[src[has_next] + 1]
        # Positions count from the later of the document's start and the row's start; padding
        # counts from T upwards from the later of the stream's end and the row's start.
        position_ids = np.empty(pos.shape, dtype=np.int64)
        position_ids[real] = p - np.maximum(starts[k], row_start[real])
        position_ids[~real] = t + pos[~real] - np.maximum(n_tokens, row_start[~real])
        shape = (self.batch_size, t)
        return {
            "input_ids": torch.from_numpy(input_ids).view(shape),
            "position_ids": torch.from_numpy(position_ids).view(shape),
            "targets": torch.from_numpy(targets).view(shape),
        }
