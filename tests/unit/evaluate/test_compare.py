"""compare_models on synthetic eval.json contents: pools, weighting, Holm families per question."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from scipy import stats as sps

from ja_adapt.config import EvalConfig
from ja_adapt.evaluate.compare import compare_models
from ja_adapt.evaluate.stats import holm

CFG = EvalConfig(bootstrap_resamples=200, seed=0)
REFS = [
    "今日は良い天気ですね。",
    "東京の桜は三月に咲きます。",
    "私は毎朝コーヒーを飲みます。",
    "京都には古いお寺があります。",
] * 6


def _group(lang, domain, trained, bpc, chars):
    per_doc = [
        {
            "source": f"{domain}-{i}",
            "nll": b * c * math.log(2),
            "chars": c,
            "bytes": 3 * c,
            "tokens": c // 2,
            "bits_per_char": b,
        }
        for i, (b, c) in enumerate(zip(bpc, chars))
    ]
    return {"lang": lang, "domain": domain, "trained": trained, "per_doc": per_doc}


def _eval(shift: float, hyps: list[str], seed: int) -> dict:
    rng = np.random.default_rng(seed)
    sizes = {"ja/news": 12, "ja/wiki": 8, "en/docs": 3, "zh/news": 8}
    groups = {}
    for key, n in sizes.items():
        lang, dom = key.split("/")
        base = np.random.default_rng(len(key) * 7 + n).uniform(2.0, 4.0, n)  # same documents in a and b
        chars = np.random.default_rng(n).integers(30, 300, n).tolist()
        groups[key] = _group(lang, dom, key == "ja/news", base + shift + 0.05 * rng.standard_normal(n), chars)
    return {
        "tokenizer": {"sha256": "t"},
        "likelihood": {"by_group": groups},
        "generation": {"samples": [{"reference": r, "hypothesis": h} for r, h in zip(REFS, hyps)]},
    }


@pytest.fixture(scope="module")
def pair():
    a = _eval(0.0, REFS, seed=1)
    b = _eval(0.2, ["、" + " " * 8] * len(REFS), seed=2)
    return a, b, compare_models(a, b, CFG)


def test_pools_follow_the_trained_flags(pair):
    a, b, c = pair
    bpc = c["bits_per_char"]
    assert bpc["held_out"]["groups"] == ["ja/news"] and bpc["cross_domain"]["groups"] == ["ja/wiki"]
    da, db = a["likelihood"]["by_group"]["ja/news"]["per_doc"], b["likelihood"]["by_group"]["ja/news"]["per_doc"]
    xa, xb = np.array([d["bits_per_char"] for d in da]), np.array([d["bits_per_char"] for d in db])
    assert bpc["held_out"]["wilcoxon_p"] == pytest.approx(sps.wilcoxon(xa, xb).pvalue)
    chars = np.array([d["chars"] for d in da])
    weighted = ((xa * chars).sum() - (xb * chars).sum()) / chars.sum()  # Σ bits / Σ chars, a - b
    cw = bpc["held_out"]["char_weighted"]
    assert cw["diff"] == pytest.approx(weighted) and cw["ci_low"] <= cw["diff"] <= cw["ci_high"]
    assert bpc["held_out"]["mean_diff"] == pytest.approx((xa - xb).mean())
    assert bpc["ja"]["n"] == 20 and bpc["by_lang"]["en"]["n"] == 3


def test_holm_families_per_question_without_underpowered_tests(pair):
    _, _, c = pair
    fam = c["families"]
    q = fam["japanese_quality"]
    assert q["members"] == [
        "held_out ja bits/char (Wilcoxon, per document)",
        "cross_domain ja bits/char (Wilcoxon, per document)",
        "bleu (sacrebleu paired bootstrap)",
        "chrf (sacrebleu paired bootstrap)",
    ]
    assert list(q["p_holm"].values()) == pytest.approx(holm(list(q["p"].values())))
    assert q["p"]["bleu (sacrebleu paired bootstrap)"] == c["generation"]["bleu"]["p_value"]
    f = fam["forgetting"]
    assert f["members"] == ["zh bits/char (Wilcoxon, per document)"]  # en: 3 documents
    assert "2/2^3" in f["not_members"]["en bits/char (Wilcoxon, per document)"]
    assert f["p_holm"]["zh bits/char (Wilcoxon, per document)"] == pytest.approx(
        c["bits_per_char"]["by_lang"]["zh"]["wilcoxon_p"]
    )
    d = fam["per_domain"]
    assert d["descriptive"] and d["tests"] == 2 and not q["descriptive"]
    assert "holm" not in c  # no pooled family


def test_generation_p_at_floor_and_untrained_pools(pair):
    a, b, c = (copy.deepcopy(x) for x in pair)
    assert c["generation"]["chrf"]["p_at_floor"] and c["generation"]["chrf"]["p_text"].startswith("p < ")
    for g in (a, b):
        g["likelihood"]["by_group"]["ja/news"]["trained"] = False
    untrained = compare_models(a, b, CFG)["bits_per_char"]
    assert "held_out" not in untrained and untrained["cross_domain"]["groups"] == ["ja/news", "ja/wiki"]
