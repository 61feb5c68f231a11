"""Paired statistics for comparing two models evaluated on the same text (docs/metrics.md#statistics).

A deterministic evaluation repeated n times is one measurement, not n samples; the samples here are
documents (paired by identity), generation prompts (paired bootstrap), or training seeds.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import numpy as np
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.significance import PairedTest
from scipy import stats as sps

from ja_adapt.evaluate.generation import BLEU_TOKENIZER


def paired_compare(a, b, *, resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Paired comparison of per-unit values a[i], b[i] (e.g. per-document bits per character).

    diff = a - b. Returns n, means, mean_diff, Wilcoxon signed-rank and paired t-test (scipy),
    Cohen's d_z = mean(diff) / sd(diff, ddof=1), and a percentile paired-bootstrap CI of the mean
    difference (units resampled with replacement, `resamples` times, numpy Generator(seed)).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need equal 1-D shapes, got {a.shape} and {b.shape}")
    n = len(a)
    if n < 2:
        return {"n": n, "skipped": "fewer than 2 paired units"}
    diff = a - b
    sd = float(diff.std(ddof=1))
    out = {"n": n, "mean_a": float(a.mean()), "mean_b": float(b.mean()), "mean_diff": float(diff.mean()),
           "sd_diff": sd, "cohens_dz": float(diff.mean()) / sd if sd > 0 else None}
    if np.all(diff == 0):
        out.update(wilcoxon_p=1.0, wilcoxon_stat=None, ttest_p=1.0, ttest_t=None)
    else:
        w = sps.wilcoxon(a, b)
        t = sps.ttest_rel(a, b)
        out.update(wilcoxon_p=float(w.pvalue), wilcoxon_stat=float(w.statistic),
                   ttest_p=float(t.pvalue), ttest_t=float(t.statistic))
    lo, hi = bootstrap_ci(diff, resamples=resamples, seed=seed, confidence=confidence)
    out.update(ci_low=lo, ci_high=hi, ci_confidence=confidence, bootstrap_resamples=resamples,
               bootstrap_seed=seed)
    return out


def bootstrap_ci(diff, *, resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of mean(diff): resample units with replacement, [resamples, n]."""
    diff = np.asarray(diff, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(resamples, len(diff)))
    means = diff[idx].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


def seed_compare(values_a: dict, values_b: dict) -> dict:
    """Paired t-test over training seeds run for both setups: values_x maps seed -> one metric value.

    Only seeds present in both are paired; with n < 2 nothing is tested and the reason is returned.
    """
    seeds = sorted(set(values_a) & set(values_b), key=str)
    n = len(seeds)
    if n < 2:
        return {"n": n, "seeds": seeds, "skipped": "fewer than 2 seed-matched runs; no test possible"}
    a = np.array([values_a[s] for s in seeds], dtype=np.float64)
    b = np.array([values_b[s] for s in seeds], dtype=np.float64)
    out = {"n": n, "seeds": seeds, "mean_a": float(a.mean()), "mean_b": float(b.mean()),
           "mean_diff": float((a - b).mean())}
    if np.all(a == b):
        out.update(ttest_p=1.0, ttest_t=None)
    else:
        t = sps.ttest_rel(a, b)
        out.update(ttest_p=float(t.pvalue), ttest_t=float(t.statistic))
    return out


def holm(pvalues) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input order.

    Written by hand: scipy.stats.false_discovery_control does Benjamini–Hochberg (FDR), not Holm
    (family-wise error), and statsmodels is not a dependency. Sorted ascending, p_(i) is multiplied
    by (m - i) for 0-based i, capped at 1, and made monotone with a running maximum.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


@contextmanager
def _sacrebleu_seed(seed: int):
    # sacrebleu's PairedTest reads its RNG seed only from SACREBLEU_SEED, and treats 0 as "unseeded";
    # the offset keeps every non-negative seed a fixed, non-zero one.
    old = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(12345 + seed)
    try:
        yield 12345 + seed
    finally:
        if old is None:
            del os.environ["SACREBLEU_SEED"]
        else:
            os.environ["SACREBLEU_SEED"] = old


def bleu_chrf_paired_bootstrap(hyps_a: list[str], hyps_b: list[str], references: list[str], *,
                               resamples: int = 1000, seed: int = 0) -> dict:
    """sacrebleu's paired bootstrap resampling (Koehn 2004) of system b against baseline a.

    Returns per metric (BLEU with ja-mecab, chrF): both scores, b - a, b's p-value, b's bootstrap
    mean and 95% CI half-width, and the signature (which records the seed and resamples).
    """
    if not (len(hyps_a) == len(hyps_b) == len(references)):
        raise ValueError("paired bootstrap needs the same prompts for both systems")
    if len(references) < 2:
        return {"n": len(references), "skipped": "fewer than 2 prompts"}
    metrics = {"BLEU": BLEU(tokenize=BLEU_TOKENIZER), "chrF": CHRF()}
    with _sacrebleu_seed(seed) as used_seed:
        test = PairedTest([("a", hyps_a), ("b", hyps_b)], metrics, [references], test_type="bs",
                          n_samples=resamples)
        signatures, scores = test()
    out = {"n": len(references), "resamples": resamples, "sacrebleu_seed": used_seed}
    for name in signatures:
        base, sys_ = scores[name]
        key = "bleu" if name.startswith("BLEU") else "chrf"  # sacrebleu names chrF "chrF2" (beta=2)
        # sacrebleu counts resamples with |diff| strictly above the observed one: with an observed
        # difference of 0 and no variation (e.g. both systems score 0) it returns 1/(R+1), not 1.
        p = 1.0 if sys_.score == base.score else float(sys_.p_value)
        out[key] = {"a": float(base.score), "b": float(sys_.score),
                    "diff_b_minus_a": float(sys_.score - base.score), "p_value": p,
                    "b_mean": float(sys_.mean), "b_ci_halfwidth": float(sys_.ci),
                    "signature": str(signatures[name])}
    return out

