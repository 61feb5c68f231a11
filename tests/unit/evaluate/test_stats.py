"""Statistics against scipy / sacrebleu / hand-worked examples and plain numpy recomputation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sacrebleu
from scipy import stats as sps

from ja_adapt.evaluate import bootstrap
from ja_adapt.evaluate.stats import (
    bleu_chrf_paired_bootstrap,
    corpus_compare,
    holm,
    holm_family,
    paired_compare,
    seed_compare,
    wilcoxon_min_p,
)

HYPS = ["今日は良い天気です。", "猫が好きです", "東京の桜は三月に咲く。", "本を読みました。"]
REFS = ["今日は良い天気ですね。", "犬が好きです", "東京の桜は三月の終わりに咲きます。", "本を読みます。"]
OTHER = ["今日は天気。", "猫が好き", "東京の桜。", "本を読みます。"]


def test_paired_compare_equals_scipy():
    rng = np.random.default_rng(1)
    a = rng.normal(3.0, 0.5, 30)
    b = a + rng.normal(0.1, 0.2, 30)
    r = paired_compare(a, b, resamples=500, seed=7)
    assert r["wilcoxon_p"] == pytest.approx(sps.wilcoxon(a, b).pvalue) == r["wilcoxon"]["p"]
    assert r["ttest_p"] == pytest.approx(sps.ttest_rel(a, b).pvalue)
    d = a - b
    assert r["cohens_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert r["ci_low"] <= r["mean_diff"] <= r["ci_high"]
    assert r["level"] == "document" and "each document counts once" in r["weighting"]
    assert paired_compare(a, b, resamples=500, seed=7) == r
    assert paired_compare(a, b, resamples=500, seed=8)["ci_low"] != r["ci_low"]


def test_bootstrap_ci_is_the_percentile_interval():
    d = np.array([0.1, -0.2, 0.4, 0.3, 0.0, 0.25])
    r = paired_compare(d, np.zeros(6), resamples=2000, seed=0)
    idx = np.random.default_rng(0).integers(0, 6, size=(2000, 6))
    assert r["ci_low"] == pytest.approx(np.percentile(d[idx].mean(1), 2.5))


def test_wilcoxon_underpowered_below_six_nonzero_differences():
    # exact two-sided minimum p = 2 / 2^n: all differences of one sign
    for n in (2, 5, 6, 8):
        a, b = np.arange(1.0, n + 1) + 0.5, np.arange(1.0, n + 1)
        assert sps.wilcoxon(a + np.arange(n) * 0.01, b).pvalue == pytest.approx(wilcoxon_min_p(n))
    five = paired_compare(np.arange(5.0) * 1.1 + 1, np.arange(5.0), resamples=50)
    assert five["wilcoxon"] == {
        "underpowered": True,
        "n": 5,
        "min_attainable_p": 0.0625,
        "reason": five["wilcoxon"]["reason"],
    }
    assert "wilcoxon_p" not in five and "ttest_p" in five  # the t-test runs from n = 2
    # zero differences are dropped (scipy's default), so 7 documents with 2 zeros are 5: underpowered
    seven = paired_compare([1.0, 2, 3, 4, 5, 6, 7], [0.0, 1, 2, 3, 4, 6, 7], resamples=50)
    assert seven["wilcoxon"]["underpowered"] and seven["wilcoxon"]["n"] == 5
    six = paired_compare(np.arange(6.0) * 1.1 + 1.5, np.arange(6.0), resamples=50)
    assert six["wilcoxon_p"] == pytest.approx(2 / 64)
    const = paired_compare(np.arange(6.0) + 1, np.arange(6.0), resamples=50)
    assert const["ttest"]["p"] is None and "no variance" in const["ttest"]["skipped"]


def test_degenerate_pairs():
    one = paired_compare([1.0], [2.0])
    assert one["skipped"] and one["ttest"]["underpowered"] and one["wilcoxon"]["underpowered"]
    same = paired_compare([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert same["ttest_p"] == 1.0 and same["cohens_dz"] is None and same["wilcoxon"]["underpowered"]


def test_char_weighted_difference_is_the_corpus_difference_with_a_paired_bootstrap():
    rng = np.random.default_rng(3)
    chars = rng.integers(20, 400, 25).astype(float)
    nll_a = chars * rng.uniform(1.5, 2.5, 25)
    nll_b = nll_a * rng.uniform(0.9, 1.05, 25)
    r = corpus_compare(nll_a, nll_b, chars, resamples=300, seed=4)
    ln2 = math.log(2)
    assert r["a"] == pytest.approx(nll_a.sum() / ln2 / chars.sum())
    assert r["diff"] == pytest.approx((nll_a.sum() - nll_b.sum()) / ln2 / chars.sum())
    idx = np.random.default_rng(4).integers(0, 25, size=(300, 25))
    reps = nll_a[idx].sum(1) / ln2 / chars[idx].sum(1) - nll_b[idx].sum(1) / ln2 / chars[idx].sum(1)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx(tuple(np.percentile(reps, [2.5, 97.5])))
    assert "char-weighted" in r["weighting"]
    # it differs from the unweighted mean of per-document differences when lengths matter
    per_doc = paired_compare(nll_a / ln2 / chars, nll_b / ln2 / chars, resamples=50)
    assert per_doc["mean_diff"] != pytest.approx(r["diff"], rel=1e-3)


def test_seed_compare_welch_paired_and_intervals_by_hand():
    a, b = {0: 3.1, 1: 3.0, 2: 3.3, 5: 3.2}, {0: 3.4, 1: 3.2, 2: 3.45, 7: 3.5}
    r = seed_compare(a, b)
    assert r["level"] == "seed"
    va, vb = np.array([3.1, 3.0, 3.3, 3.2]), np.array([3.4, 3.2, 3.45, 3.5])
    # one-sample t-interval of each mean
    half = sps.t.ppf(0.975, 3) * va.std(ddof=1) / 2
    m = r["methods"]
    assert (m["a"]["ci_low"], m["a"]["ci_high"]) == pytest.approx((va.mean() - half, va.mean() + half))
    assert m["a"]["sd"] == pytest.approx(va.std(ddof=1)) and m["b"]["mean"] == pytest.approx(vb.mean())
    # Welch: Satterthwaite df, interval of the difference of means
    se2a, se2b = va.var(ddof=1) / 4, vb.var(ddof=1) / 4
    df = (se2a + se2b) ** 2 / (se2a**2 / 3 + se2b**2 / 3)
    diff, half = va.mean() - vb.mean(), sps.t.ppf(0.975, df) * math.sqrt(se2a + se2b)
    w = r["welch"]
    assert w["df"] == pytest.approx(df) and w["diff"] == pytest.approx(diff)
    assert (w["ci_low"], w["ci_high"]) == pytest.approx((diff - half, diff + half))
    assert w["p"] == pytest.approx(2 * sps.t.sf(abs(diff) / math.sqrt(se2a + se2b), df))
    # paired over the common seeds 0, 1, 2
    d = np.array([3.1 - 3.4, 3.0 - 3.2, 3.3 - 3.45])
    half = sps.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    p = r["paired"]
    assert p["n"] == 3 and p["seeds"] == [0, 1, 2]
    assert (p["ci_low"], p["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert p["p"] == pytest.approx(sps.ttest_rel([3.1, 3.0, 3.3], [3.4, 3.2, 3.45]).pvalue) == r["ttest_p"]
    assert r["n"] == 3 and r["mean_diff"] == pytest.approx(d.mean())


def test_seed_compare_says_why_a_test_is_skipped():
    r = seed_compare({0: 1.0}, {0: 2.0, 1: 3.0})
    assert r["skipped"] and r["paired"]["n"] == 1 and "n >= 2" in r["welch"]["skipped"]
    assert "n >= 2" in r["methods"]["a"]["skipped"] and r["methods"]["b"]["ci_low"] is not None
    flat = seed_compare({0: 1.0, 1: 1.0}, {0: 1.0, 1: 1.0})
    assert flat["welch"]["skipped"] and flat["paired"]["p"] == 1.0


def test_holm_hand_example():
    # m = 4; sorted 0.005, 0.01, 0.03, 0.04 → ×4, ×3, ×2, ×1 = 0.02, 0.03, 0.06, 0.04 → running max
    # gives 0.02, 0.03, 0.06, 0.06; back in input order:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_holm_family_leaves_underpowered_tests_out():
    small = paired_compare([1.0, 2, 3], [0.0, 1.5, 2])["wilcoxon"]
    fam = holm_family("q", {"x": {"p": 0.01}, "y": {"p": 0.04}, "small": small, "none": None})
    assert fam["members"] == ["x", "y"] and fam["tests"] == 2
    assert fam["p_holm"] == pytest.approx({"x": 0.02, "y": 0.04})
    assert set(fam["not_members"]) == {"small", "none"} and "2/2^3" in fam["not_members"]["small"]


def test_paired_bootstrap_matches_sacrebleu_and_is_seeded():
    r = bleu_chrf_paired_bootstrap(HYPS, OTHER, REFS, resamples=200, seed=1)
    assert r["bleu"]["a"] == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS], tokenize="ja-mecab").score)
    assert r["bleu"]["b"] == pytest.approx(sacrebleu.corpus_bleu(OTHER, [REFS], tokenize="ja-mecab").score)
    assert r["chrf"]["b"] == pytest.approx(sacrebleu.corpus_chrf(OTHER, [REFS]).score)
    assert 0 < r["bleu"]["p_value"] <= 1 and "bs:200" in r["bleu"]["signature"]
    assert bleu_chrf_paired_bootstrap(HYPS, OTHER, REFS, resamples=200, seed=1) == r
    assert bleu_chrf_paired_bootstrap(HYPS, HYPS, REFS, resamples=50)["chrf"]["p_value"] == 1.0
    # the difference interval: both systems rescored by sacrebleu on the same prompt resamples
    idx = np.random.default_rng(1).integers(0, 4, size=(200, 4))
    diffs = [
        sacrebleu.corpus_chrf([OTHER[i] for i in row], [[REFS[i] for i in row]]).score
        - sacrebleu.corpus_chrf([HYPS[i] for i in row], [[REFS[i] for i in row]]).score
        for row in idx
    ]
    ci = r["chrf"]["diff_ci"]
    assert (ci["ci_low"], ci["ci_high"]) == pytest.approx(tuple(np.percentile(diffs, [2.5, 97.5])))
    assert "b_mean" not in r["chrf"]  # sacrebleu's replicate mean is not the score (metrics.md)


def test_paired_bootstrap_p_floor_is_reported_as_such():
    refs = [f"{s}そして{s}" for s in REFS] * 5
    good, bad = refs, ["、" + " " * 10] * len(refs)
    r = bleu_chrf_paired_bootstrap(bad, good, refs, resamples=199, seed=0)
    assert r["p_floor"] == pytest.approx(1 / 200)
    for m in ("bleu", "chrf"):
        assert r[m]["p_at_floor"] and r[m]["p_value"] == pytest.approx(1 / 200)
        assert r[m]["p_text"].startswith("p < 0.005")
    close = bleu_chrf_paired_bootstrap(HYPS, OTHER, REFS, resamples=199, seed=0)
    assert not close["chrf"]["p_at_floor"] and close["chrf"]["p_text"].startswith("p = ")
    few = bleu_chrf_paired_bootstrap(HYPS, OTHER, REFS, resamples=10, seed=0)
    assert few["bleu"]["underpowered"] and "p_value" not in few["bleu"]


def test_ratio_interval_blocks_equal_one_draw_and_undefined_resamples_are_dropped(monkeypatch):
    rng = np.random.default_rng(5)
    num, den = rng.uniform(0, 1, 40), rng.integers(1, 9, 40).astype(float)
    one = bootstrap.ratio_interval(num, den, resamples=300, seed=2)
    monkeypatch.setattr(bootstrap, "_CHUNK_ELEMENTS", 7 * 40)  # blocks of 7 resamples
    assert bootstrap.ratio_interval(num, den, resamples=300, seed=2) == one
    idx = np.random.default_rng(2).integers(0, 40, size=(300, 40))
    assert (one["ci_low"], one["ci_high"]) == pytest.approx(
        tuple(np.percentile(num[idx].sum(1) / den[idx].sum(1), [2.5, 97.5]))
    )
    # one document holds every katakana character: resamples without it are undefined, not 0
    rare = bootstrap.ratio_interval(np.array([1.0, 0, 0, 0]), np.array([2.0, 0, 0, 0]), resamples=200, seed=0)
    idx = np.random.default_rng(0).integers(0, 4, size=(200, 4))
    assert rare["resamples"] == int((idx == 0).any(1).sum()) < 200 and rare["resamples_requested"] == 200
    assert rare["ci_low"] == rare["ci_high"] == 0.5
