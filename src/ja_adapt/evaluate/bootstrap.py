"""Cluster bootstrap intervals of ratio-of-sums statistics (docs/metrics.md#intervals).

The unit resampled is the one that was sampled: a document for likelihood and script metrics, a
prompt for generation. Corpus figures here are ratios of sums (bits / characters, correct / judged),
so every resample recomputes the ratio of its own sums: the interval is for the corpus figure itself,
not for a mean of per-document ratios. Percentile intervals, seeded with numpy's default_rng.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

CONFIDENCE = 0.95
_CHUNK_ELEMENTS = 2_000_000  # bounds the [resamples, n] index block held at once


def resample_indices(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Blocks of bootstrap index rows, [rows, n] each; all blocks together equal
    default_rng(seed).integers(0, n, size=(resamples, n)) (numpy draws them in the same order)."""
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for start in range(0, resamples, rows):
        yield rng.integers(0, n, size=(min(rows, resamples - start), n))


def percentile_interval(
    values, *, confidence: float = CONFIDENCE, requested: int | None = None, unit: str = "document"
) -> dict:
    """{"ci_low", "ci_high", "ci_confidence", "resamples", "unit"} of bootstrap replicates (numpy's
    default linear-interpolated percentiles; unit: what was resampled). Undefined replicates (NaN:
    e.g. a resample without any character of a script) are dropped; `resamples` counts the defined
    ones, and `resamples_requested` appears when some were dropped."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    out = {"ci_low": None, "ci_high": None, "ci_confidence": confidence, "resamples": int(len(v)), "unit": unit}
    if len(v):
        tail = (1 - confidence) / 2 * 100
        lo, hi = np.percentile(v, [tail, 100 - tail])
        out.update(ci_low=float(lo), ci_high=float(hi))
    if requested is not None and requested != len(v):
        out["resamples_requested"] = requested
    return out


def replicates(units: int, statistic: Callable[[np.ndarray], np.ndarray], *, resamples: int, seed: int) -> np.ndarray:
    """statistic(idx) for every bootstrap block idx [rows, units] → [resamples, ...] replicates."""
    return np.concatenate([statistic(idx) for idx in resample_indices(units, resamples, seed)])


def ratio_replicates(num, den, *, resamples: int, seed: int) -> np.ndarray:
    """Bootstrap replicates of sum(num) / sum(den) over resampled units: [resamples] for 1-D
    inputs, [resamples, k] for [n, k] inputs (k ratios sharing the same resamples). A replicate
    whose denominator sums to 0 is NaN."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    if num.shape != den.shape or num.ndim not in (1, 2) or len(num) == 0:
        raise ValueError(f"ratio bootstrap needs equal non-empty 1-D or 2-D inputs, got {num.shape}, {den.shape}")

    def stat(idx):
        n_sum, d_sum = num[idx].sum(axis=1), den[idx].sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(d_sum > 0, n_sum / np.where(d_sum > 0, d_sum, 1), np.nan)

    return replicates(len(num), stat, resamples=resamples, seed=seed)


def ratio_interval(num, den, *, resamples: int, seed: int, confidence: float = CONFIDENCE):
    """Percentile interval of sum(num) / sum(den) by resampling units (rows); a list of intervals,
    one per column, for 2-D inputs. None when there are no units."""
    if len(num) == 0:
        return None
    reps = ratio_replicates(num, den, resamples=resamples, seed=seed)
    if reps.ndim == 1:
        return percentile_interval(reps, confidence=confidence, requested=resamples)
    return [percentile_interval(reps[:, j], confidence=confidence, requested=resamples) for j in range(reps.shape[1])]
