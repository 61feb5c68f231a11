"""Decontamination of an evaluation set: the evaluation documents contained in a training document
are removed, and a JSON-ready report says what was removed, by which training set, and how much of
what was kept occurs in training text. The rule and how matches are found: data/dedup.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ja_adapt.data.dedup import DedupConfig, Match, TrainingSetMatches, match_training_set, ngrams, normalize
from ja_adapt.data.documents import Document

_EXAMPLES = 5  # example matches per training set in the report


def _size(docs: Sequence[Document]) -> dict:
    return {"docs": len(docs), "chars": sum(len(d.text) for d in docs)}


def _examples(matches: list[Match], eval_docs: Sequence[Document]) -> list[dict]:
    """Up to _EXAMPLES matches spread over the range of containment, lowest first."""
    ranked = sorted(matches, key=lambda x: (x.containment, x.eval_index))
    picks = (
        range(len(ranked))
        if len(ranked) <= _EXAMPLES
        else sorted({round(i * (len(ranked) - 1) / (_EXAMPLES - 1)) for i in range(_EXAMPLES)})
    )
    return [
        {
            "eval_index": x.eval_index,
            "eval_source": x.eval_source,
            "eval_start": normalize(eval_docs[x.eval_index].text)[:40],
            "train_index": x.train_index,
            "train_source": x.train_source,
            "containment": round(x.containment, 4),
            "shared_ngrams": x.shared,
            "ngrams": x.ngrams,
        }
        for x in (ranked[i] for i in picks)
    ]


_RULE_TEXT = {
    "contaminated": "|G(e) ∩ G(t)| / |G(e)| ≥ threshold for one training document t; "
    "G(x) = distinct character n-grams of normalise(x)",
    "normalise": "lower case; whitespace runs → one space, stripped; full-width forms U+FF01–U+FF5E → ASCII",
    "unchecked": "documents with no n-gram (shorter than n once normalised) are kept",
}


@dataclass
class _Tally:
    """Counts over the evaluation documents, given which were checked and which removed."""

    eval_docs: list[Document]
    checked: np.ndarray
    removed: np.ndarray

    def counts(self, sel: np.ndarray) -> dict:
        """docs and chars of the selected documents: all, checked, unchecked, removed, kept."""
        out = {}
        for key, mask in (
            ("", sel),
            ("checked_", self.checked),
            ("unchecked_", ~self.checked),
            ("removed_", self.removed),
            ("kept_", ~self.removed),
        ):
            size = _size([d for d, s in zip(self.eval_docs, mask & sel) if s])
            out[f"{key}docs"], out[f"{key}chars"] = size["docs"], size["chars"]
        return out

    def seen_share(self, res: TrainingSetMatches, sel: np.ndarray) -> float | None:
        """kept_ngrams_seen of the selected documents against one training set."""
        kept = ~self.removed
        total = int(res.ngrams[sel & kept].sum())
        return round(int(res.seen[sel & kept].sum()) / total, 4) if total else None


def _group_reports(tally: _Tally, results: dict[str, TrainingSetMatches], by_set: dict[str, np.ndarray]) -> dict:
    """Per evaluation (lang/domain) group: its counts, and per training set what it removed and saw."""
    eval_docs = tally.eval_docs
    groups = {}
    for lang, domain in sorted({(d.lang, d.domain) for d in eval_docs}):
        sel = np.array([(d.lang, d.domain) == (lang, domain) for d in eval_docs])
        groups[f"{lang}/{domain}"] = {
            **tally.counts(sel),
            "removed_by": {name: int((by_set[name] & sel).sum()) for name in results},
            "kept_ngrams_seen": {name: tally.seen_share(res, sel) for name, res in results.items()},
        }
    return groups


def _set_reports(
    tally: _Tally,
    results: dict[str, TrainingSetMatches],
    by_set: dict[str, np.ndarray],
    train_sets: Mapping[str, Sequence[Document]],
) -> dict:
    """Per training set: its size, what it removed, kept_ngrams_seen and example matches."""
    everything = np.ones(len(tally.eval_docs), bool)
    sets = {}
    for name, res in results.items():
        hit = by_set[name]
        sets[name] = {
            **{f"train_{k}": v for k, v in _size(train_sets[name]).items()},
            "removed_docs": int(hit.sum()),
            "removed_chars": sum(len(d.text) for d, h in zip(tally.eval_docs, hit) if h),
            "kept_ngrams_seen": tally.seen_share(res, everything),
            "examples": _examples(res.matches, tally.eval_docs),
        }
    return sets


def decontaminate(
    eval_docs: Sequence[Document], train_sets: Mapping[str, Sequence[Document]], config: DedupConfig | None = None
) -> tuple[list[Document], dict]:
    """(kept evaluation documents in input order, JSON-ready report).

    An evaluation document is removed when it is contaminated (data/dedup.py) by a document of
    any training set. The report: the rule; totals over the evaluation documents (docs and chars:
    all, checked, unchecked, removed, kept); per training set its size, the evaluation documents
    it contaminates (a document contaminated by several sets counts under each, and once in the
    totals), `kept_ngrams_seen` and example matches; per evaluation (lang/domain) group the same
    counts and, per training set, removed documents and `kept_ngrams_seen`. `kept_ngrams_seen` is
    the share of the kept documents' n-grams that occur in some document of the training set.
    """
    cfg = config or DedupConfig()
    eval_docs = list(eval_docs)
    removed = np.zeros(len(eval_docs), bool)
    results = {name: match_training_set(eval_docs, list(docs), cfg) for name, docs in train_sets.items()}
    by_set = {name: np.zeros(len(eval_docs), bool) for name in results}
    for name, res in results.items():
        for x in res.matches:
            by_set[name][x.eval_index] = True
        removed |= by_set[name]
    m = (
        next(iter(results.values())).ngrams
        if results
        else np.array([len(ngrams(d.text, cfg.ngram)) for d in eval_docs], dtype=np.int64)
    )
    tally = _Tally(eval_docs, checked=m > 0, removed=removed)
    report = {
        "rule": {"ngram": cfg.ngram, "threshold": cfg.threshold, **_RULE_TEXT},
        "eval": tally.counts(np.ones(len(eval_docs), bool)),
        "train_sets": _set_reports(tally, results, by_set, train_sets),
        "groups": _group_reports(tally, results, by_set),
    }
    return [d for d, k in zip(eval_docs, ~removed) if k], report
