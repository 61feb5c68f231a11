"""Statistics for comparing models (docs/metrics.md#statistics).

A deterministic evaluation repeated n times is one measurement, not n samples; the samples here are
documents (paired by identity), generation prompts (paired bootstrap), or training seeds. Results
say which: `level: "document"` is about one pair of checkpoints, `level: "seed"` about the methods.
A test that cannot reach p < ALPHA at its n is not run; it is reported as underpowered.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager

import numpy as np
from sacrebleu.significance import PairedTest
from scipy import stats as sps

from ja_adapt.evaluate.bootstrap import CONFIDENCE, percentile_interval, ratio_replicates
from ja_adapt.evaluate.genscores import degeneration, length_ratio, metric, prompt_replicates
from ja_adapt.evaluate.likelihood import bits_per

ALPHA = 0.05
PER_DOCUMENT = "per document: each document counts once, whatever its length"
CHAR_WEIGHTED = (
    "char-weighted: corpus bits/char (summed bits / summed characters), so each document weighs by its characters"
)


def underpowered(n: int, min_attainable_p: float | None, why: str) -> dict:
    return {"underpowered": True, "n": n, "min_attainable_p": min_attainable_p, "reason": why}


def wilcoxon_min_p(n: int) -> float:
    """Smallest two-sided p of the exact Wilcoxon signed-rank test with n nonzero differences: all n
    signs alike is 1 of 2^n equally likely sign patterns under H0, doubled for two sides."""
    return min(1.0, 2.0 / 2.0**n)


def wilcoxon_test(a: np.ndarray, b: np.ndarray) -> dict:
    """scipy's Wilcoxon signed-rank (defaults: zero differences dropped), or underpowered when its
    number of nonzero differences cannot give p < ALPHA (n <= 5)."""
    n = int(np.count_nonzero(a - b))
    min_p = wilcoxon_min_p(n)
    if min_p >= ALPHA:
        return underpowered(n, min_p, f"exact two-sided minimum p = 2/2^{n} (nonzero differences)")
    w = sps.wilcoxon(a, b)
    return {"p": float(w.pvalue), "statistic": float(w.statistic), "n": n, "min_attainable_p": min_p}


def ttest_paired(a: np.ndarray, b: np.ndarray) -> dict:
    """scipy's paired t-test; needs n >= 2 pairs (with n >= 2 any p is attainable: t is unbounded)."""
    n, diff = len(a), a - b
    if n < 2:
        return underpowered(n, None, "the paired t-test needs n >= 2")
    if np.all(diff == 0):
        return {"p": 1.0, "statistic": None, "n": n, "note": "all differences are 0"}
    if np.all(diff == diff[0]):
        return {
            "p": None,
            "statistic": None,
            "n": n,
            "skipped": "the same nonzero difference for every unit: no variance, t undefined",
        }
    t = sps.ttest_rel(a, b)
    p = float(t.pvalue)
    return {"p": p if math.isfinite(p) else None, "statistic": float(t.statistic), "n": n}


def paired_compare(a, b, *, resamples: int = 1000, seed: int = 0, confidence: float = CONFIDENCE) -> dict:
    """Paired comparison of per-unit values a[i], b[i] (e.g. per-document bits per character), each
    unit counting once. diff = a - b. Returns n, means, mean_diff, Cohen's d_z = mean(diff) /
    sd(diff, ddof=1), a percentile paired-bootstrap CI of mean(diff), the Wilcoxon signed-rank and
    paired t-test (scipy) or their underpowered records; flat *_p keys only for tests that ran."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need equal 1-D shapes, got {a.shape} and {b.shape}")
    n = len(a)
    out = {
        "n": n,
        "level": "document",
        "weighting": PER_DOCUMENT,
        "wilcoxon": wilcoxon_test(a, b),
        "ttest": ttest_paired(a, b),
    }
    if n < 2:
        return {**out, "skipped": "fewer than 2 paired units"}
    diff = a - b
    sd = float(diff.std(ddof=1))
    out.update(
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        mean_diff=float(diff.mean()),
        sd_diff=sd,
        cohens_dz=float(diff.mean()) / sd if sd > 0 else None,
    )
    if "p" in out["wilcoxon"]:
        out.update(wilcoxon_p=out["wilcoxon"]["p"], wilcoxon_stat=out["wilcoxon"]["statistic"])
    if "p" in out["ttest"]:
        out.update(ttest_p=out["ttest"]["p"], ttest_t=out["ttest"]["statistic"])
    lo, hi = bootstrap_ci(diff, resamples=resamples, seed=seed, confidence=confidence)
    out.update(ci_low=lo, ci_high=hi, ci_confidence=confidence, bootstrap_resamples=resamples, bootstrap_seed=seed)
    return out


def bootstrap_ci(diff, *, resamples: int = 1000, seed: int = 0, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap CI of mean(diff): resample units with replacement, [resamples, n]."""
    diff = np.asarray(diff, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(resamples, len(diff)))
    means = diff[idx].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


def corpus_compare(
    nll_a, nll_b, chars, *, resamples: int = 1000, seed: int = 0, confidence: float = CONFIDENCE
) -> dict:
    """Char-weighted difference of corpus bits/char, a - b, on the same documents (per-document
    summed NLL in nats and characters), with a paired document-bootstrap percentile CI: documents
    are resampled and both ratios of sums recomputed on each resample."""
    nll_a, nll_b, chars = (np.asarray(x, dtype=np.float64) for x in (nll_a, nll_b, chars))
    if not len(chars) or chars.sum() == 0:
        return {"n": len(chars), "weighting": CHAR_WEIGHTED, "skipped": "no characters"}
    a, b = bits_per(float(nll_a.sum()), float(chars.sum())), bits_per(float(nll_b.sum()), float(chars.sum()))
    reps = ratio_replicates((nll_a - nll_b) / math.log(2), chars, resamples=resamples, seed=seed)
    return {
        "n": len(chars),
        "level": "document",
        "weighting": CHAR_WEIGHTED,
        "a": float(a),
        "b": float(b),
        "diff": float(a - b),
        **percentile_interval(reps, confidence=confidence, requested=resamples),
    }


# ---- across training seeds ------------------------------------------------------------------------


def _describe(values: np.ndarray, seeds: list, confidence: float) -> dict:
    n = len(values)
    out = {
        "n": n,
        "seeds": seeds,
        "mean": float(values.mean()) if n else None,
        "sd": float(values.std(ddof=1)) if n > 1 else None,
    }
    if n < 2:
        return {**out, "skipped": "a t-interval needs n >= 2 seeds"}
    if out["sd"] == 0:
        return {**out, "ci_low": out["mean"], "ci_high": out["mean"], "ci_confidence": confidence}
    ci = sps.ttest_1samp(values, 0.0).confidence_interval(confidence)
    return {**out, "ci_low": float(ci.low), "ci_high": float(ci.high), "ci_confidence": confidence}


def _t_result(res, confidence: float, diff: float) -> dict:
    ci = res.confidence_interval(confidence)
    return {
        "diff": diff,
        "ci_low": float(ci.low),
        "ci_high": float(ci.high),
        "ci_confidence": confidence,
        "p": float(res.pvalue),
        "t": float(res.statistic),
        "df": float(res.df),
    }


def seed_compare(values_a: dict, values_b: dict, *, confidence: float = CONFIDENCE) -> dict:
    """Seed-level comparison of two methods (level "seed": about the methods, not one checkpoint
    pair). values_x maps seed -> one metric value of method x.

    Returns each method's mean ± sd with a t-interval of the mean (`methods.a`, `methods.b`);
    `welch`: the difference of means a - b with Welch's t-interval and p (scipy, unequal variances,
    all seeds of each); `paired`: the paired t-test and interval over the seeds both have (same
    seed = same data order). A test that cannot run says why with its n. Flat n / seeds / mean_a /
    mean_b / mean_diff / ttest_p keep the paired version's values for older readers.
    """
    sa, sb = sorted(values_a, key=str), sorted(values_b, key=str)
    va = np.array([values_a[s] for s in sa], dtype=np.float64)
    vb = np.array([values_b[s] for s in sb], dtype=np.float64)
    # per-method summaries under "methods": callers label the methods themselves with "a" / "b"
    out = {
        "level": "seed",
        "definition": "docs/metrics.md#seed-level",
        "direction": "diff = a - b",
        "methods": {"a": _describe(va, sa, confidence), "b": _describe(vb, sb, confidence)},
    }
    if min(len(va), len(vb)) < 2:
        out["welch"] = {"n_a": len(va), "n_b": len(vb), "skipped": "Welch's test needs n >= 2 seeds per method"}
    elif va.std() == 0 and vb.std() == 0:
        out["welch"] = {"n_a": len(va), "n_b": len(vb), "skipped": "no variation across seeds in either method"}
    else:
        res = sps.ttest_ind(va, vb, equal_var=False)
        out["welch"] = {"n_a": len(va), "n_b": len(vb), **_t_result(res, confidence, float(va.mean() - vb.mean()))}
    common = sorted(set(values_a) & set(values_b), key=str)
    pa = np.array([values_a[s] for s in common], dtype=np.float64)
    pb = np.array([values_b[s] for s in common], dtype=np.float64)
    n = len(common)
    paired = {"n": n, "seeds": common}
    if n < 2:
        paired["skipped"] = "fewer than 2 seed-matched runs; no paired test possible"
    elif np.all(pa - pb == pa[0] - pb[0]):
        d = float(pa[0] - pb[0])
        paired.update(
            diff=d,
            ci_low=d,
            ci_high=d,
            ci_confidence=confidence,
            p=1.0 if d == 0 else None,
            note="the same difference at every seed: no variance to test against",
        )
    else:
        paired.update(_t_result(sps.ttest_rel(pa, pb), confidence, float((pa - pb).mean())))
    out["paired"] = paired
    out.update(n=n, seeds=common)
    if n >= 2:
        out.update(mean_a=float(pa.mean()), mean_b=float(pb.mean()), mean_diff=float((pa - pb).mean()))
        if paired.get("p") is not None:
            out.update(ttest_p=paired["p"], ttest_t=paired.get("t"))
    else:
        out["skipped"] = paired["skipped"]
    return out


# ---- multiple testing -----------------------------------------------------------------------------


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


def holm_family(question: str, tests: dict[str, dict | None], *, descriptive: bool = False) -> dict:
    """One Holm family: the tests answering one question. tests: {name: a test record with "p", or
    an underpowered / skipped record}; only tests with a p are members (an underpowered test could
    never reject, it would only enlarge the family)."""
    members = {k: t["p"] for k, t in tests.items() if t and t.get("p") is not None}
    out = {
        "definition": "docs/metrics.md#holm",
        "question": question,
        "descriptive": descriptive,
        "members": list(members),
        "tests": len(members),
        "p": members,
        "p_holm": dict(zip(members, holm(list(members.values())))),
    }
    left = {
        k: (t or {}).get("reason") or (t or {}).get("skipped") or "no p-value"
        for k, t in tests.items()
        if k not in members
    }
    if left:
        out["not_members"] = left
    return out


# ---- BLEU / chrF between two systems --------------------------------------------------------------


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


def _diff_record(a: float | None, b: float | None, reps_a: np.ndarray, reps_b: np.ndarray, resamples: int) -> dict:
    return {
        "a": a,
        "b": b,
        "diff_b_minus_a": b - a if None not in (a, b) else None,
        "diff_ci": percentile_interval(reps_b - reps_a, requested=resamples, unit="prompt"),
    }


def bleu_chrf_paired_bootstrap(
    hyps_a: list[str], hyps_b: list[str], references: list[str], *, resamples: int = 1000, seed: int = 0
) -> dict:
    """System b against baseline a on the same prompts: sacrebleu's paired bootstrap p-value
    (Koehn 2004) for BLEU (ja-mecab) and chrF, and a paired percentile interval of each score
    difference b - a (the same corpus statistic as the point difference, both systems scored on the
    same prompt resamples; degeneration metrics too).

    The p-value cannot go below 1/(R+1) (R = resamples): at that floor it is reported with
    p_at_floor = true and read as p < 1/(R+1). With 1/(R+1) >= ALPHA the test is underpowered.
    """
    if not (len(hyps_a) == len(hyps_b) == len(references)):
        raise ValueError("paired bootstrap needs the same prompts for both systems")
    n = len(references)
    if n < 2:
        return {"n": n, "skipped": "fewer than 2 prompts"}
    floor = 1.0 / (resamples + 1)
    out = {"n": n, "level": "document", "unit": "prompt", "resamples": resamples, "p_floor": floor}
    ra = prompt_replicates(hyps_a, references, resamples=resamples, seed=seed)
    rb = prompt_replicates(hyps_b, references, resamples=resamples, seed=seed)
    metrics = {"BLEU": metric("bleu"), "chrF": metric("chrf")}  # shared: genscores.metric says why
    with _sacrebleu_seed(seed) as used_seed:
        test = PairedTest([("a", hyps_a), ("b", hyps_b)], metrics, [references], test_type="bs", n_samples=resamples)
        signatures, scores = test()
    out["sacrebleu_seed"] = used_seed
    for name in signatures:
        base, sys_ = scores[name]
        key = "bleu" if name.startswith("BLEU") else "chrf"  # sacrebleu names chrF "chrF2" (beta=2)
        rec = {
            **_diff_record(float(base.score), float(sys_.score), ra[key], rb[key], resamples),
            "signature": str(signatures[name]),
        }
        if floor >= ALPHA:
            rec.update(underpowered(resamples, floor, "a bootstrap p-value cannot go below 1/(R+1)"))
        else:
            # sacrebleu counts resamples with |diff| strictly above the observed one: with an observed
            # difference of 0 and no variation (e.g. both systems score 0) it returns 1/(R+1), not 1.
            p = 1.0 if sys_.score == base.score else float(sys_.p_value)
            at_floor = math.isclose(p, floor)
            rec.update(
                p=p,
                p_value=p,
                p_at_floor=at_floor,
                p_text=f"p < {floor:.4g} (floor 1/(R+1), R = {resamples})" if at_floor else f"p = {p:.4g}",
            )
        out[key] = rec
    da = {**degeneration(hyps_a), "length_ratio": length_ratio(hyps_a, references)}
    db = {**degeneration(hyps_b), "length_ratio": length_ratio(hyps_b, references)}
    out["degeneration"] = {k: _diff_record(da[k], db[k], ra[k], rb[k], resamples) for k in da}
    return out
