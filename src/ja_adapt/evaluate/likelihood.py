"""Corpus likelihood: token perplexity, bits per character, bits per UTF-8 byte.

Protocol (docs/metrics.md#likelihood-protocol), fixed for every model:
  * each document is evaluated alone (no packing, no cross-document context);
  * its text is tokenized without special tokens and one BOS is prepended (the tokenizer's
    bos_token, else its eos_token, the document separator Qwen-style models are trained with), so
    every text token, the first included, is scored exactly once;
  * windows of `max_length` tokens start every `stride` tokens; each window scores only the tokens
    no earlier window scored, so a token sees min(position, max_length - stride .. max_length - 1)
    tokens of left context (the lm-eval-harness / HF rolling-window convention);
  * sums, not means: bits/char = sum NLL / ln 2 / sum characters of the scored text (the whole
    document text as given, not normalised), bits/byte likewise over its UTF-8 bytes.
The NLL of each token is loss.token_nll's definition (fp32 cross-entropy of the next-token logits).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from transformers.convert_slow_tokenizer import bytes_to_unicode

from ja_adapt.core.errors import UserError
from ja_adapt.core.modes import eval_mode
from ja_adapt.data.documents import Document
from ja_adapt.train.loss import IGNORE, token_nll


@dataclass
class DocScores:
    """Per-token results for one document (n = number of text tokens, all scored)."""

    doc: Document
    token_ids: np.ndarray  # [n] int64 gold tokens
    spans: list[tuple[int, int]]  # [n] UTF-8 byte span of each token in doc.text
    nll: np.ndarray  # [n] float64 NLL in nats
    argmax: np.ndarray | None  # [n] int64 greedy prediction at each token's position, or None

    @property
    def chars(self) -> int:
        return len(self.doc.text)

    @property
    def n_bytes(self) -> int:
        return len(self.doc.text.encode("utf-8"))


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


def _token_byte_len(token: str | None) -> int | None:
    """Bytes a byte-level BPE token stands for, or None when the token is not byte-level."""
    dec = _byte_decoder()
    if not token or any(c not in dec for c in token):
        return None
    return len(token)


def token_byte_spans(text: str, tokens: list[str], offsets: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """UTF-8 byte span of each token from the tokenizer's character offsets.

    Character offsets cannot say which bytes of a character a byte-level token holds when BPE split
    the character; the token's own byte length (from its byte-level string) resolves it: a token
    starts where the previous one ended if that lies inside its character span.
    """
    starts = [0]
    for ch in text:
        starts.append(starts[-1] + len(ch.encode("utf-8")))
    spans, prev_end = [], 0
    for tok, (s, e) in zip(tokens, offsets):
        lo, hi = starts[s], starts[e]
        n = _token_byte_len(tok)
        a = max(lo, min(prev_end, hi))
        b = hi if n is None else min(hi, a + n)
        spans.append((a, b))
        prev_end = max(prev_end, b)
    return spans


def windows(n: int, max_length: int, stride: int) -> list[tuple[int, int, int]]:
    """Windows over a sequence of n tokens (BOS first): (begin, end, first scored index).

    Token j (1 <= j < n) is scored in exactly one window, predicted from seq[begin:j].
    """
    out, prev_end, begin = [], 1, 0
    while prev_end < n:
        end = min(begin + max_length, n)
        out.append((begin, end, max(prev_end, begin + 1)))
        prev_end = end
        begin += stride
    return out


def _bos_id(tokenizer) -> int:
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if bos is None:
        raise UserError(
            "tokenizer: has neither bos_token nor eos_token; the likelihood protocol "
            "conditions the first token on one; set eos_token in the tokenizer config"
        )
    return bos


def score_batch(
    model, batch: dict[str, torch.Tensor], chunk_size: int = 0, want_argmax: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """([B, T] NLL in nats, [B, T] argmax ids or None) of a loss.py batch in one forward pass."""
    if not want_argmax:
        return token_nll(model, batch, chunk_size), None
    return token_nll(model, batch, chunk_size, return_argmax=True)


def score_documents(
    model,
    tokenizer,
    docs: list[Document],
    *,
    max_length: int = 256,
    stride: int = 128,
    batch_size: int = 8,
    chunk_size: int = 0,
    want_argmax: bool = False,
) -> list[DocScores]:
    """Score every token of every non-empty document once (protocol in the module docstring)."""
    if not getattr(tokenizer, "is_fast", False):
        raise UserError("tokenizer: evaluation needs a fast tokenizer (offset mapping); load one with tokenizer.json")
    if not 1 <= stride < max_length:
        raise UserError(
            f"eval.stride: must be in 1..max_length-1 (got stride={stride}, "
            f"max_length={max_length}); otherwise tokens would be skipped"
        )
    bos = _bos_id(tokenizer)
    scores, seqs, rows = [], [], []
    for doc in docs:
        enc = tokenizer(doc.text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(enc["input_ids"])
        if not ids:
            continue
        spans = token_byte_spans(doc.text, tokenizer.convert_ids_to_tokens(ids), enc["offset_mapping"])
        scores.append(
            DocScores(
                doc,
                np.array(ids, dtype=np.int64),
                spans,
                np.zeros(len(ids)),
                np.zeros(len(ids), np.int64) if want_argmax else None,
            )
        )
        seqs.append([bos] + ids)
        rows += [(len(scores) - 1, *w) for w in windows(len(ids) + 1, max_length, stride)]
    device = next(model.parameters()).device
    with eval_mode(model), torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            _run_rows(model, rows[start : start + batch_size], seqs, scores, bos, device, chunk_size, want_argmax)
    return scores


def _run_rows(model, rows, seqs, scores, pad_id, device, chunk_size, want_argmax) -> None:
    t = max(end - begin for _, begin, end, _ in rows)
    input_ids = torch.full((len(rows), t), pad_id, dtype=torch.long)
    targets = torch.full((len(rows), t), IGNORE, dtype=torch.long)
    for r, (d, begin, end, first) in enumerate(rows):
        seq = seqs[d]
        input_ids[r, : end - begin] = torch.tensor(seq[begin:end])
        for j in range(first, end):  # token j is predicted at window position j - begin - 1
            targets[r, j - begin - 1] = seq[j]
    # Right padding with continuing positions: causal attention keeps pads out of real positions.
    positions = torch.arange(t).expand(len(rows), t).contiguous()
    batch = {"input_ids": input_ids.to(device), "position_ids": positions.to(device), "targets": targets.to(device)}
    nll, am = score_batch(model, batch, chunk_size, want_argmax)
    nll = nll.double().cpu().numpy()
    am = am.cpu().numpy() if am is not None else None
    for r, (d, begin, end, first) in enumerate(rows):
        for j in range(first, end):
            scores[d].nll[j - 1] = nll[r, j - begin - 1]
            if am is not None:
                scores[d].argmax[j - 1] = am[r, j - begin - 1]


def bits_per(nll_nats: float, units: int) -> float | None:
    """Bits per character (or per byte): summed NLL in nats / ln 2 / the number of characters
    (bytes) scored; None when there are none. The one definition, used everywhere."""
    return nll_nats / math.log(2) / units if units else None


def summarize(scores: list[DocScores], n_skipped: int = 0) -> dict:
    """Corpus-level sums and ratios over documents, plus per-document records for paired tests and
    document bootstraps. With argmax scores: top-1 token accuracy (argmax == gold) and its counts."""
    nll = float(sum(s.nll.sum() for s in scores))
    tokens = sum(len(s.nll) for s in scores)
    chars = sum(s.chars for s in scores)
    n_bytes = sum(s.n_bytes for s in scores)
    per_doc = [
        {
            "source": s.doc.source,
            "nll": float(s.nll.sum()),
            "chars": s.chars,
            "bytes": s.n_bytes,
            "tokens": len(s.nll),
            "bits_per_char": bits_per(float(s.nll.sum()), s.chars),
        }
        for s in scores
    ]
    out = {
        "nll_sum_nats": nll,
        "tokens": tokens,
        "chars": chars,
        "bytes": n_bytes,
        "documents": len(scores),
        "skipped_empty_documents": n_skipped,
        "token_ppl": math.exp(nll / tokens) if tokens else None,
        "bits_per_char": bits_per(nll, chars),
        "bits_per_byte": bits_per(nll, n_bytes),
        "per_doc": per_doc,
    }
    if scores and all(s.argmax is not None for s in scores):
        for rec, s in zip(per_doc, scores):
            rec["correct_tokens"] = int((s.argmax == s.token_ids).sum())
        out["top1_correct"] = sum(r["correct_tokens"] for r in per_doc)
        out["top1_accuracy"] = out["top1_correct"] / tokens if tokens else None
    return out


def argmax_counts(scores: list[DocScores]) -> Counter:
    """How often each token id is the teacher-forced argmax, over all scored positions."""
    counts: Counter = Counter()
    for s in scores:
        if s.argmax is not None:
            counts.update(s.argmax.tolist())
    return counts


def top_argmax(counts: Counter, tokenizer) -> dict:
    """The most frequent argmax token (smallest id among ties, so the pick is deterministic), as id
    and decoded text, with its count and share of all argmax positions (docs/metrics.md#top1).
    A model predicting one token everywhere shows a share near 1 whatever its accuracy."""
    total = sum(counts.values())
    if not total:
        return {
            "argmax_positions": 0,
            "argmax_top_token_id": None,
            "argmax_top_token": None,
            "argmax_top_count": 0,
            "argmax_top_share": None,
        }
    top = max(counts.values())
    tid = min(t for t, c in counts.items() if c == top)
    return {
        "argmax_positions": total,
        "argmax_top_token_id": int(tid),
        "argmax_top_token": tokenizer.decode([tid], skip_special_tokens=False, clean_up_tokenization_spaces=False),
        "argmax_top_count": int(top),
        "argmax_top_share": top / total,
    }


def corpus_likelihood(
    model,
    tokenizer,
    docs: list[Document],
    *,
    max_length: int = 256,
    stride: int = 128,
    batch_size: int = 8,
    chunk_size: int = 0,
) -> dict:
    """Likelihood metrics of a document list: nll_sum_nats, tokens, chars, bytes, token_ppl,
    bits_per_char, bits_per_byte, per_doc [{nll, chars, bytes, tokens, ...}]."""
    scores = score_documents(
        model, tokenizer, docs, max_length=max_length, stride=stride, batch_size=batch_size, chunk_size=chunk_size
    )
    return summarize(scores, n_skipped=len(docs) - len(scores))
