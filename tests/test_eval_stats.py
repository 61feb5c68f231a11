"""Statistics against scipy / sacrebleu / hand-worked examples; BLEU and chrF against sacrebleu."""

from __future__ import annotations

import numpy as np
import pytest
import sacrebleu
from scipy import stats as sps

from ja_adapt.data.documents import Document
from ja_adapt.evaluate.generation import bleu_chrf, make_prompts
from ja_adapt.evaluate.stats import bleu_chrf_paired_bootstrap, holm, paired_compare, seed_compare

HYPS = ["今日は良い天気です。", "猫が好きです", "東京の桜は三月に咲く。", "本を読みました。"]
REFS = ["今日は良い天気ですね。", "犬が好きです", "東京の桜は三月の終わりに咲きます。", "本を読みます。"]
OTHER = ["今日は天気。", "猫が好き", "東京の桜。", "本を読みます。"]


def test_bleu_and_chrf_equal_sacrebleu():
    r = bleu_chrf(HYPS, REFS)
    ref = sacrebleu.corpus_bleu(HYPS, [REFS], tokenize="ja-mecab")
    assert r["bleu"] == pytest.approx(ref.score)
    assert r["bleu_1_precision"] == pytest.approx(ref.precisions[0])
    assert r["bleu_4_precision"] == pytest.approx(ref.precisions[3])
    assert r["chrf"] == pytest.approx(sacrebleu.corpus_chrf(HYPS, [REFS]).score)
    sent = [sacrebleu.sentence_bleu(h, [x], tokenize="ja-mecab").score for h, x in zip(HYPS, REFS)]
    assert r["sentence_bleu_mean"] == pytest.approx(np.mean(sent))
    assert r["sentence_bleu_std"] == pytest.approx(np.std(sent, ddof=1))
    assert "tok:ja-mecab" in r["bleu_signature"] and "13a" not in r["bleu_signature"]
    assert r["bleu"] != pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS]).score)  # 13a differs


def test_prompts_are_seeded_and_cut_from_documents():
    docs = [Document("あいうえお" * 5, source=str(i)) for i in range(6)] + [Document("短い")]
    p1, p2 = make_prompts(docs, 4, 10, 8, seed=3), make_prompts(docs, 4, 10, 8, seed=3)
    assert [p.source for p in p1] == [p.source for p in p2] and len(p1) == 4
    assert all(p.prompt == ("あいうえお" * 5)[:10] and p.reference == ("あいうえお" * 5)[10:18] for p in p1)
    assert make_prompts(docs, 50, 10, 8)[-1].source != ""   # the short document is never used


def test_paired_compare_equals_scipy():
    rng = np.random.default_rng(1)
    a = rng.normal(3.0, 0.5, 30)
    b = a + rng.normal(0.1, 0.2, 30)
    r = paired_compare(a, b, resamples=500, seed=7)
    assert r["wilcoxon_p"] == pytest.approx(sps.wilcoxon(a, b).pvalue)
    assert r["ttest_p"] == pytest.approx(sps.ttest_rel(a, b).pvalue)
    d = a - b
    assert r["cohens_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert r["ci_low"] <= r["mean_diff"] <= r["ci_high"]
    assert paired_compare(a, b, resamples=500, seed=7) == r
    assert paired_compare(a, b, resamples=500, seed=8)["ci_low"] != r["ci_low"]


def test_bootstrap_ci_is_the_percentile_interval():
    d = np.array([0.1, -0.2, 0.4, 0.3, 0.0, 0.25])
    r = paired_compare(d, np.zeros(6), resamples=2000, seed=0)
    idx = np.random.default_rng(0).integers(0, 6, size=(2000, 6))
    assert r["ci_low"] == pytest.approx(np.percentile(d[idx].mean(1), 2.5))


def test_degenerate_pairs():
    assert paired_compare([1.0], [2.0])["skipped"]
    same = paired_compare([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert same["wilcoxon_p"] == 1.0 and same["cohens_dz"] is None


def test_seed_compare_pairs_matching_seeds():
    a, b = {0: 3.1, 1: 3.0, 2: 3.3, 5: 9.9}, {0: 3.4, 1: 3.2, 2: 3.4, 7: 0.0}
    r = seed_compare(a, b)
    assert r["n"] == 3 and r["seeds"] == [0, 1, 2]
    assert r["ttest_p"] == pytest.approx(sps.ttest_rel([3.1, 3.0, 3.3], [3.4, 3.2, 3.4]).pvalue)
    assert seed_compare({0: 1.0}, {0: 2.0, 1: 3.0})["skipped"]


def test_holm_hand_example():
    # m = 4; sorted 0.005, 0.01, 0.03, 0.04 → ×4, ×3, ×2, ×1 = 0.02, 0.03, 0.06, 0.04 → running max
    # gives 0.02, 0.03, 0.06, 0.06; back in input order:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_paired_bootstrap_matches_sacrebleu_and_is_seeded():
    r = bleu_chrf_paired_bootstrap(HYPS, OTHER, REFS, resamples=200, seed=1)
    assert r["bleu"]["a"] == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS], tokenize="ja-mecab").score)
    assert r["bleu"]["b"] == pytest.approx(sacrebleu.corpus_bleu(OTHER, [REFS], tokenize="ja-mecab").score)
    assert r["chrf"]["b"] == pytest.approx(sacrebleu.corpus_chrf(OTHER, [REFS]).score)
    assert 0 < r["bleu"]["p_value"] <= 1 and "bs:200" in r["bleu"]["signature"]
    assert bleu_chrf_paired_bootstrap(HYPS, OTHER, REFS, resamples=200, seed=1) == r
    assert bleu_chrf_paired_bootstrap(HYPS, HYPS, REFS, resamples=50)["chrf"]["p_value"] == 1.0
