"""Decontamination: evaluation documents that overlap a training document are removed.

The rule (exact; docs/data.md, "Decontamination", gives the measurements behind the defaults):

    normalise(x)  lower case; every run of whitespace → one space, stripped; full-width forms
                  U+FF01–U+FF5E (，：Ａ１ ...) → their ASCII counterparts
    G(x)          the set of distinct character n-grams of normalise(x)   (n = `ngram`, default 8)
    containment(e, t) = |G(e) ∩ G(t)| / |G(e)|
    An evaluation document e is *contaminated* when containment(e, t) ≥ `threshold` (default 0.3)
    for at least one training document t.

Containment, not Jaccard: an evaluation document that is a part of a longer training document is
contained in it whatever the training document's length. The rule looks at one training document
at a time, so text of an evaluation document spread over many training documents does not count
towards it; `decontaminate` (data/decontamination.py, which removes the contaminated documents)
reports that overlap separately for the documents it keeps (`kept_ngrams_seen`: the share of their
n-grams that occur anywhere in a training set).

An evaluation document with no n-gram (empty, whitespace-only, or shorter than n characters once
normalised) cannot be judged: it is kept and counted as `unchecked`. A training document shorter
than n characters has no n-gram and cannot contaminate anything.

How it is computed (exactly, not by sampling): every n-gram is hashed to 64 bits with numpy, and
each training set becomes one sorted array of (hash, document) keys. An evaluation document with
m n-grams needs k = ⌈threshold·m⌉ of them in one training document t, so t holds at least one of
its m − k + 1 n-grams that are rarest in the training set (prefix filtering, as in exact
set-similarity joins). Only the training documents that hold one of those are counted; their
count is completed with the document's other n-grams. A pair that reaches k on the hashes is then
recomputed on the strings (`containment`), so every reported match and its containment are exact.
The hashes keep 64 − log2(number of documents) bits (49 for 20,000 documents): a match could be
lost only through a collision between n-grams of one document pair, a chance of about m²/2⁴⁹.
Nothing is random: the same documents give the same matches. Of
several training documents above the threshold, the one sharing the most n-grams is reported
(ties: the lowest index).

Speed (docs/data.md, "Decontamination"): 5 M training characters against 3,200 evaluation documents
take about 1.2 s on one CPU core, 9.7 M against 1,900 about 2.4 s; peak memory about 40 bytes per
training character.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ja_adapt.data.documents import Document

_FULLWIDTH_FIRST, _FULLWIDTH_LAST, _FULLWIDTH_SHIFT = 0xFF01, 0xFF5E, 0xFEE0
_FOLD = {cp: cp - _FULLWIDTH_SHIFT for cp in range(_FULLWIDTH_FIRST, _FULLWIDTH_LAST + 1)}
_MUL = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier of the polynomial n-gram hash
_DENSE_DF = 32  # n-grams held by at most this many training documents are always counted
_BITMAP_BITS = 24  # 16 MB bitmap of evaluation n-gram hashes (prefilter of training n-grams)


@dataclass(frozen=True)
class DedupConfig:
    ngram: int = 8  # n of the character n-grams
    threshold: float = 0.3  # containment at or above which an evaluation document is removed

    def __post_init__(self):
        if not isinstance(self.ngram, int) or isinstance(self.ngram, bool) or self.ngram < 1:
            raise ValueError(f"dedup ngram: must be an integer ≥ 1, got {self.ngram!r}")
        if not isinstance(self.threshold, (int, float)) or not 0.0 < float(self.threshold) <= 1.0:
            raise ValueError(f"dedup threshold: must be in (0, 1], got {self.threshold!r}")


@dataclass(frozen=True)
class Match:
    """An evaluation document and the training document it is contained in."""

    eval_index: int  # position in the evaluation documents
    train_index: int  # position in the training documents
    shared: int  # |G(e) ∩ G(t)|
    ngrams: int  # |G(e)|
    eval_source: str = ""
    train_source: str = ""

    @property
    def containment(self) -> float:
        return self.shared / self.ngrams


def _squash(text: str) -> str:
    """Lower case, whitespace runs → one space, stripped (normalise without the width fold)."""
    return " ".join(text.lower().split())


def normalize(text: str) -> str:
    """The text the rule looks at (module docstring)."""
    return _squash(text).translate(_FOLD)


def ngrams(text: str, n: int = DedupConfig.ngram) -> set[str]:
    """G(text): the distinct character n-grams of the normalised text (empty when shorter than n)."""
    s = normalize(text)
    return {s[i : i + n] for i in range(len(s) - n + 1)}


def containment(eval_text: str, train_text: str, n: int = DedupConfig.ngram) -> float:
    """|G(e) ∩ G(t)| / |G(e)| computed on the strings; 0.0 when e has no n-gram."""
    ge = ngrams(eval_text, n)
    return len(ge & ngrams(train_text, n)) / len(ge) if ge else 0.0


# ---------------------------------------------------------------- hashing (numpy)


def _hashes(texts: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(hash, owner) of every n-gram position of the squashed `texts`; the width fold is applied
    to the code points here (cheaper than str.translate over millions of characters)."""
    lens = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    m = int(lens.sum()) - n + 1
    if m <= 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    cps = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.uint64)
    wide = (cps >= _FULLWIDTH_FIRST) & (cps <= _FULLWIDTH_LAST)
    cps[wide] -= np.uint64(_FULLWIDTH_SHIFT)
    h = cps[:m].copy()
    for k in range(1, n):  # h = Σ c_k · MUL^(n-1-k)  (mod 2^64)
        h *= _MUL
        h += cps[k : k + m]
    h ^= h >> np.uint64(33)  # MurmurHash3's 64-bit finaliser: spreads the bits
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    # A position starts an n-gram of its text unless it is one of the text's last n - 1 positions.
    ends = np.cumsum(lens)
    last = ends[:, None] - np.arange(1, n, dtype=np.int64)[None, :]
    last = last[(last >= (ends - lens)[:, None]) & (last < m)]
    ok = np.ones(m, bool)
    ok[last] = False
    count = np.maximum(lens - n + 1, 0)
    return h[ok], np.repeat(np.arange(len(texts), dtype=np.int64), count)


def _keys(h: np.ndarray, owner: np.ndarray, bits: int) -> np.ndarray:
    """Sorted distinct keys: an n-gram's hash with its low `bits` bits replaced by its text's index."""
    low = np.uint64((1 << bits) - 1)
    keys = (h & ~low) | owner.astype(np.uint64)
    keys.sort()
    return keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if len(keys) else keys


def _ranges(lo: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Concatenation of the index ranges [lo[i], lo[i] + count[i])."""
    offsets = np.arange(int(count.sum()), dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
    return np.repeat(lo, count) + offsets


@dataclass
class TrainingSetMatches:
    """What one training set does to the evaluation documents (decontamination.py reports it)."""

    matches: list[Match]
    ngrams: np.ndarray  # |G(e)| per evaluation document (0: unchecked)
    seen: np.ndarray  # per evaluation document: its n-grams that occur in any training document


def _training_keys(eval_hashes: np.ndarray, t_text: Sequence[str], n: int, bits: int) -> np.ndarray:
    """Sorted (hash, training document) keys of the training n-grams that may be evaluation n-grams.

    A bitmap of the evaluation hashes' top bits drops most of the others before the sort (a false
    positive costs time only)."""
    th, to = _hashes(t_text, n)
    shift = np.uint64(64 - _BITMAP_BITS)
    bitmap = np.zeros(1 << _BITMAP_BITS, bool)
    bitmap[eval_hashes >> shift] = True
    sel = bitmap[th >> shift]
    return _keys(th[sel], to[sel], bits)


def _rarest_first(
    g: np.ndarray, e: np.ndarray, m: np.ndarray, k: np.ndarray, df: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, rank, prefix): the (n-gram, eval doc) rows sorted per eval doc rarest n-gram first,
    each row's rank within its document, and per document how many of its rarest n-grams are
    counted in full (at least m − k + 1, and every n-gram with at most _DENSE_DF holders)."""
    n_eval = len(m)
    order = np.lexsort((g, df, e))
    rank = np.empty(len(e), np.int64)
    rank[order] = np.arange(len(e)) - (np.cumsum(m) - m)[e[order]]
    dense = np.bincount(e[df <= _DENSE_DF], minlength=n_eval)
    return order, rank, np.maximum(m - k + 1, dense)


def _prefix_pairs(
    e: np.ndarray, head: np.ndarray, tk: np.ndarray, lo: np.ndarray, df: np.ndarray, n_train: int, low: np.uint64
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(eval doc, training doc, n-grams shared within the prefix) per pair sharing at least one
    prefix n-gram (`head` marks the prefix rows); None when no pair shares one."""
    pair = np.repeat(e[head], df[head]) * n_train + (tk[_ranges(lo[head], df[head])] & low).astype(np.int64)
    pair.sort()
    if not len(pair):
        return None
    starts = np.flatnonzero(np.concatenate(([True], pair[1:] != pair[:-1])))
    shared = np.diff(np.append(starts, len(pair)))
    return pair[starts] // n_train, pair[starts] % n_train, shared


def _exact_matches(
    pe: np.ndarray,
    pt: np.ndarray,
    eval_docs: Sequence[Document],
    train_docs: Sequence[Document],
    n: int,
    frac: Fraction,
) -> list[Match]:
    """The candidate pairs (best first) checked on the strings; per eval doc the first that holds."""
    num, den = frac.numerator, frac.denominator
    matches: dict[int, Match] = {}
    for ei, ti in zip(pe.tolist(), pt.tolist()):
        if ei in matches:
            continue
        ge = ngrams(eval_docs[ei].text, n)
        common = len(ge & ngrams(train_docs[ti].text, n))
        if ge and common * den >= num * len(ge):
            matches[ei] = Match(ei, ti, common, len(ge), eval_docs[ei].source, train_docs[ti].source)
    return [matches[i] for i in sorted(matches)]


def match_training_set(
    eval_docs: Sequence[Document], train_docs: Sequence[Document], cfg: DedupConfig
) -> TrainingSetMatches:
    """The contaminated evaluation documents of one training set (module docstring: the method)."""
    n = cfg.ngram
    frac = Fraction(cfg.threshold).limit_denominator(10**6)  # 0.3 → 3/10: integer comparisons
    num, den = frac.numerator, frac.denominator
    e_text = [_squash(d.text) for d in eval_docs]
    t_text = [_squash(d.text) for d in train_docs]
    n_eval, n_train = len(e_text), len(t_text)
    bits = max(n_eval, n_train, 1).bit_length()
    low = np.uint64((1 << bits) - 1)
    eh, eo = _hashes(e_text, n)
    ek = _keys(eh, eo, bits)
    g, e = ek & ~low, (ek & low).astype(np.int64)  # each (n-gram, eval doc) once
    m = np.bincount(e, minlength=n_eval)  # |G(e)|, on the hashes
    tk = _training_keys(eh, t_text, n, bits)
    if not len(tk) or not len(g):
        return TrainingSetMatches([], m, np.zeros(n_eval, np.int64))
    lo = np.searchsorted(tk, g, "left")
    df = np.searchsorted(tk, g | low, "right") - lo  # training documents that hold the n-gram
    seen = np.bincount(e[df > 0], minlength=n_eval)

    k = (num * m + den - 1) // den  # shared n-grams needed: ⌈threshold·m⌉
    order, rank, prefix = _rarest_first(g, e, m, k, df)
    pairs = _prefix_pairs(e, (rank < prefix[e]) & (df > 0), tk, lo, df, n_train, low)
    if pairs is None:
        return TrainingSetMatches([], m, seen)
    pe, pt, shared = pairs
    rest = m[pe] - prefix[pe]  # n-grams of e outside its prefix
    keep = shared + rest >= k[pe]  # can still reach k
    pe, pt, shared, rest = pe[keep], pt[keep], shared[keep], rest[keep]

    # Complete the count with the n-grams outside the prefix: look up (n-gram, t) directly.
    todo = np.flatnonzero(rest > 0)
    if len(todo):
        tail = order[rank[order] >= prefix[e[order]]]  # grouped by eval doc, like `order`
        first = np.searchsorted(e[tail], pe[todo], "left")
        owner = np.repeat(todo, rest[todo])
        probe = g[tail[_ranges(first, rest[todo])]] | pt[owner].astype(np.uint64)
        hit = tk[np.minimum(np.searchsorted(tk, probe), len(tk) - 1)] == probe
        shared = shared + np.bincount(owner[hit], minlength=len(pe))
    cand = np.flatnonzero(shared * den >= num * m[pe])
    cand = cand[np.lexsort((pt[cand], -shared[cand], pe[cand]))]  # best candidate first
    return TrainingSetMatches(_exact_matches(pe[cand], pt[cand], eval_docs, train_docs, n, frac), m, seen)


def find_contaminated(
    eval_docs: Sequence[Document], train_docs: Sequence[Document], config: DedupConfig | None = None
) -> list[Match]:
    """One `Match` per contaminated evaluation document, sorted by eval_index: the training
    document sharing the most n-grams with it (ties: lowest index). Rule: module docstring."""
    return match_training_set(eval_docs, train_docs, config or DedupConfig()).matches
