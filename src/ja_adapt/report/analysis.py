"""Analysis definitions: training dynamics, stability, overfitting, sweeps, trade-offs.

Every function takes plain numbers (lists of steps / losses, dicts of measurements) and returns plain
numbers, so each definition can be tested on synthetic curves. The wording of each definition lives
in DEFINITIONS (copied into results.json and the report's appendix) beside the code that computes it;
the thresholds live in AnalysisConfig.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps
from scipy.ndimage import uniform_filter1d


@dataclass
class AnalysisConfig:
    smooth_window: int = 20  # centred moving-average width for training loss (records)
    val_smooth_window: int = 3  # centred moving-average width for validation loss (evaluations)
    convergence_tolerance: float = 0.02  # x: converged once the smoothed val loss stays within x of its final value
    target_fraction: float = 0.95  # "95% of final performance": share of the total loss reduction
    final_window_fraction: float = 0.1  # share of the logged training records forming the final window
    initial_drop_fraction: float = 0.1  # the initial drop is measured over this share of training
    overfit_tolerance: float = 0.01  # val loss must end this far (relative) above its minimum
    rank_tolerance: float = 0.01  # diminishing returns: within this (relative) of the best rank
    lr_tolerance: float = 0.02  # lr range: learning rates within this (relative) of the best
    precision_tolerance: float = 0.01  # a precision "matches" the best quality within this (relative)
    retention_target: float = 0.95  # recommend LoRA by default when it retains at least this share


DEFINITIONS = {
    "smoothing": "Smoothed loss: centred moving average over {smooth_window} logged training records "
    "({val_smooth_window} evaluations for validation loss), edges padded with the nearest value.",
    "initial_loss_drop": "First logged training loss minus the smoothed training loss at the record "
    "nearest to {initial_drop_fraction:.0%} of the logged steps (nats/token).",
    "convergence_step": "First step after which the smoothed validation loss stays within "
    "{convergence_tolerance:.0%} (relative) of its final value (smoothed training "
    "loss when a run has no validation).",
    "target_fraction": "Time / tokens to {target_fraction:.0%} of final performance: the first logged step "
    "at which the smoothed training loss has achieved {target_fraction:.0%} of its total "
    "reduction (initial smoothed loss minus final smoothed loss); elapsed training "
    "seconds and trained tokens at that step.",
    "final_window": "Final window: the last {final_window_fraction:.0%} of the logged training records (at least 2).",
    "loss_variance": "Variance (ddof=1) of the raw training loss over the final window (nats^2).",
    "grad_norm_variance": "Variance (ddof=1) of the pre-clipping global gradient norm over the final window.",
    "stability_score": "stability = 1 / (1 + cv_loss + cv_grad + skipped_fraction), where cv_x = sd(x) / "
    "mean(x) over the final window and skipped_fraction = non-finite steps / steps; "
    "1 is perfectly steady, lower is noisier.",
    "overfitting": "Overfitting: the smoothed validation loss ends more than {overfit_tolerance:.0%} "
    "(relative) above its minimum while the smoothed training loss at the end is below "
    "its value at that minimum; onset = the step of the minimum.",
    "seeds": "Across seeds: mean ± sample standard deviation (ddof=1; '±' omitted for one seed); "
    "statistics pair runs with the same seed.",
    "reduction_pct": "Reduction (%) of LoRA vs full = 100 × (1 − LoRA / full); an increase (%) = "
    "100 × (LoRA / full − 1). Gains (×) = full / LoRA for costs.",
    "performance_retention": "Performance retention = full / LoRA for lower-is-better metrics "
    "(bits/char, perplexity) and LoRA / full for higher-is-better ones "
    "(accuracy, BLEU, chrF, retention); 1 = parity, < 1 = LoRA worse. "
    "Gain retention = (base − LoRA) / (base − full) on bits/char: the share of "
    "full fine-tuning's improvement over the base model that LoRA achieves.",
    "efficiency_score": "Composite efficiency score = gain retention × sqrt(memory gain × time gain): "
    "quality kept, times the geometric mean of the peak-memory and training-time "
    "gains (> 1: LoRA's savings outweigh its quality loss).",
    "diminishing_returns_rank": "Diminishing-returns rank: the smallest rank whose Japanese bits/char is "
    "within {rank_tolerance:.0%} (relative) of the best rank's.",
    "lr_range": "Learning-rate range: the smallest and largest learning rates whose metric is within "
    "{lr_tolerance:.0%} (relative) of the best learning rate's.",
    "lr_sensitivity": "Sensitivity coefficient = mean over adjacent learning rates of |Δmetric| / "
    "metric(best) / |Δlog10(lr)|: relative metric change per decade of learning rate.",
    "precision_match": "A precision matches the best when its Japanese bits/char is within "
    "{precision_tolerance:.0%} (relative) of the best precision's.",
    "generalization_gap": "Generalization gap = final validation loss − final-window mean training loss (nats/token).",
    "cross_domain": "Cross-domain: Japanese bits/char on the evaluation-only domains (not trained on); "
    "mean and sd over those domains.",
}


def definitions(cfg: AnalysisConfig = AnalysisConfig()) -> dict[str, str]:
    """DEFINITIONS with the configured thresholds filled in."""
    return {k: v.format(**asdict(cfg)) for k, v in DEFINITIONS.items()}


# ---- curves -------------------------------------------------------------------------------------


def smooth(values, window: int) -> np.ndarray:
    """Centred moving average of width `window`, same length as values; edges repeat the nearest
    value (scipy.ndimage.uniform_filter1d, mode="nearest"). Centred, so a minimum is not shifted late."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return x
    return uniform_filter1d(x, size=max(1, min(window, len(x))), mode="nearest")


def initial_loss_drop(losses, cfg: AnalysisConfig = AnalysisConfig()) -> float | None:
    """First raw loss minus the smoothed loss at the record nearest initial_drop_fraction of training."""
    if len(losses) < 2:
        return None
    k = max(1, int(round(cfg.initial_drop_fraction * (len(losses) - 1))))
    return float(losses[0] - smooth(losses, cfg.smooth_window)[k])


def convergence_step(steps, values, tolerance: float) -> int | None:
    """First step after which values stay within `tolerance` (relative) of values[-1].

    steps, values: equal-length sequences (values already smoothed). None without data.
    """
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return None
    inside = np.abs(v - v[-1]) <= tolerance * abs(v[-1])
    outside = np.nonzero(~inside)[0]
    first = 0 if len(outside) == 0 else int(outside[-1]) + 1
    return int(steps[first])


def fraction_reached(losses, fraction: float, window: int) -> int | None:
    """Index of the first record at which the smoothed loss achieved `fraction` of its total reduction
    (smoothed[0] - smoothed[-1]); None when the loss did not go down."""
    s = smooth(losses, window)
    if len(s) < 2 or s[0] <= s[-1]:
        return None
    target = s[0] - fraction * (s[0] - s[-1])
    return int(np.nonzero(s <= target)[0][0])


def final_window(n: int, cfg: AnalysisConfig = AnalysisConfig()) -> int:
    return min(n, max(2, int(math.ceil(cfg.final_window_fraction * n))))


def _var(x) -> float | None:
    return float(np.var(x, ddof=1)) if len(x) >= 2 else None


def _cv(x) -> float | None:
    m = float(np.mean(x)) if len(x) else 0.0
    return float(np.std(x, ddof=1)) / abs(m) if len(x) >= 2 and m else None


def stability(losses, grad_norms, skipped: int, steps: int, cfg: AnalysisConfig = AnalysisConfig()) -> dict:
    """Final-window variances, coefficients of variation and the stability score (DEFINITIONS)."""
    w = final_window(len(losses), cfg)
    lw, gw = list(losses)[-w:], [g for g in list(grad_norms)[-w:] if g is not None and math.isfinite(g)]
    cv_l, cv_g = _cv(lw), _cv(gw)
    skipped_fraction = skipped / steps if steps else 0.0
    score = None
    if cv_l is not None:
        score = 1.0 / (1.0 + cv_l + (cv_g or 0.0) + skipped_fraction)
    return {
        "window": w,
        "loss_variance": _var(lw),
        "grad_norm_variance": _var(gw),
        "cv_loss": cv_l,
        "cv_grad_norm": cv_g,
        "skipped_fraction": skipped_fraction,
        "stability_score": score,
    }


def overfitting(val_steps, val_losses, train_steps, train_losses, cfg: AnalysisConfig = AnalysisConfig()) -> dict:
    """Detect validation loss rising while training loss falls (DEFINITIONS['overfitting'])."""
    if len(val_losses) < 3 or len(train_losses) < 2:
        return {"detected": False, "onset_step": None, "reason": "fewer than 3 validations"}
    sv = smooth(val_losses, cfg.val_smooth_window)
    st = smooth(train_losses, cfg.smooth_window)
    i = int(np.argmin(sv))
    onset = int(val_steps[i])
    rise = (sv[-1] - sv[i]) / abs(sv[i]) if sv[i] else 0.0
    j = int(np.searchsorted(np.asarray(train_steps), onset, side="right")) - 1
    train_fell = j >= 0 and st[-1] < st[max(j, 0)]
    detected = bool(rise > cfg.overfit_tolerance and train_fell)
    return {
        "detected": detected,
        "onset_step": onset if detected else None,
        "val_rise_relative": float(rise),
        "train_fell_after_min": bool(train_fell),
    }


def curve_analysis(train: list[dict], val: list[dict], summary: dict, cfg: AnalysisConfig = AnalysisConfig()) -> dict:
    """All training-dynamics figures of one run from its metrics.jsonl records and summary.json."""
    train = [r for r in train if not r.get("skipped") and r.get("loss") is not None and math.isfinite(r["loss"])]
    steps = [r["step"] for r in train]
    losses = [r["loss"] for r in train]
    out = {"initial_loss_drop": initial_loss_drop(losses, cfg)}
    vsteps = [r["step"] for r in val]
    vloss = [r["val_loss"] for r in val]
    if vloss:
        out["convergence_step"] = convergence_step(
            vsteps, smooth(vloss, cfg.val_smooth_window), cfg.convergence_tolerance
        )
        out["convergence_series"] = "val_loss"
    elif losses:
        out["convergence_step"] = convergence_step(steps, smooth(losses, cfg.smooth_window), cfg.convergence_tolerance)
        out["convergence_series"] = "train_loss"
    k = fraction_reached(losses, cfg.target_fraction, cfg.smooth_window)
    out["step_to_target"] = steps[k] if k is not None else None
    out["time_to_target_s"] = train[k].get("elapsed_s") if k is not None else None
    out["tokens_to_target"] = train[k].get("tokens_total") if k is not None else None
    out.update(
        stability(
            losses,
            [r.get("grad_norm") for r in train],
            summary.get("nonfinite_skipped") or 0,
            summary.get("steps") or len(train),
            cfg,
        )
    )
    out["overfitting"] = overfitting(vsteps, vloss, steps, losses, cfg)
    fv, ft = summary.get("final_val_loss"), summary.get("final_train_loss_window_mean")
    out["generalization_gap"] = fv - ft if None not in (fv, ft) else None
    return out


# ---- seeds, ratios ------------------------------------------------------------------------------


def aggregate(by_seed: dict, single_ci: dict | None = None) -> dict:
    """{seed: value} → {"mean", "sd" (ddof=1, None for one value), "n", "by_seed", and a 95%
    interval: over seeds (Student t of the mean, scipy) with ≥ 2 values; with one value,
    `single_ci` (that run's own bootstrap interval over documents or prompts) when given.
    None values dropped."""
    vals = {str(k): float(v) for k, v in by_seed.items() if v is not None and math.isfinite(float(v))}
    x = np.array(list(vals.values()), dtype=np.float64)
    out = {
        "mean": float(x.mean()) if len(x) else None,
        "sd": float(x.std(ddof=1)) if len(x) >= 2 else None,
        "n": len(x),
        "by_seed": vals,
    }
    if len(x) >= 2:
        half = float(sps.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
        out.update(ci_low=out["mean"] - half, ci_high=out["mean"] + half, ci_level="seed")
    elif len(x) == 1 and single_ci and single_ci.get("ci_low") is not None:
        out.update(
            ci_low=single_ci["ci_low"], ci_high=single_ci["ci_high"], ci_level=single_ci.get("unit", "bootstrap")
        )
    return out


def reduction_pct(lora, full) -> float | None:
    """100 × (1 − lora / full)."""
    return 100.0 * (1.0 - lora / full) if None not in (lora, full) and full else None


def increase_pct(lora, full) -> float | None:
    """100 × (lora / full − 1)."""
    return 100.0 * (lora / full - 1.0) if None not in (lora, full) and full else None


def ratio(a, b) -> float | None:
    return a / b if None not in (a, b) and b else None


def retention(lora, full, lower_is_better: bool) -> float | None:
    """full / lora for lower-is-better metrics, lora / full otherwise (1 = parity, < 1 = LoRA worse)."""
    return ratio(full, lora) if lower_is_better else ratio(lora, full)


def gain_retention(base, lora, full) -> float | None:
    """(base − lora) / (base − full) for a lower-is-better metric; None when full did not improve."""
    if None in (base, lora, full) or base - full <= 0:
        return None
    return (base - lora) / (base - full)


def efficiency_score(gain_ret, memory_gain, time_gain) -> float | None:
    """gain retention × sqrt(memory gain × time gain) (DEFINITIONS['efficiency_score'])."""
    if None in (gain_ret, memory_gain, time_gain) or memory_gain * time_gain < 0:
        return None
    return gain_ret * math.sqrt(memory_gain * time_gain)


# ---- sweeps -------------------------------------------------------------------------------------


def diminishing_returns(points: list[tuple[float, float]], tolerance: float) -> float | None:
    """Smallest x (rank) whose y (lower-is-better) is within `tolerance` (relative) of the best y."""
    pts = sorted((x, y) for x, y in points if y is not None)
    if not pts:
        return None
    best = min(y for _, y in pts)
    return next(x for x, y in pts if y <= best + tolerance * abs(best))


def lr_sensitivity(points: list[tuple[float, float]], tolerance: float) -> dict:
    """Best lr, the range within `tolerance` of the best, and the sensitivity coefficient.

    points: (lr, lower-is-better metric); points without a metric (diverged runs) are ignored.
    """
    pts = sorted((lr, m) for lr, m in points if m is not None and math.isfinite(m))
    if not pts:
        return {"best_lr": None}
    best_lr, best = min(pts, key=lambda p: p[1])
    inside = [lr for lr, m in pts if m <= best + tolerance * abs(best)]
    coef = None
    if len(pts) >= 2 and best:
        slopes = [
            abs(m2 - m1) / abs(best) / abs(math.log10(l2 / l1)) for (l1, m1), (l2, m2) in zip(pts, pts[1:]) if l2 != l1
        ]
        coef = float(np.mean(slopes)) if slopes else None
    return {
        "best_lr": best_lr,
        "best_metric": best,
        "range": [min(inside), max(inside)],
        "sensitivity_coefficient": coef,
        "n_lrs": len(pts),
    }
