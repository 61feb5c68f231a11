"""Paired statistics of two models on the same downstream items (docs/metrics.md#downstream).

The unit is an item of an lm-eval task (paired by lm-eval's doc_id): accuracy with a percentile
bootstrap interval over items, the difference a - b with a paired item-bootstrap interval, and
McNemar's exact test (the two-sided binomial test on the discordant items, scipy). One Holm family
per pair of models: the tasks' main-metric tests. Like compare.py, this is about one pair of
checkpoints (level "document"); claims about methods need seeds.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as sps

from ja_adapt.evaluate.bootstrap import ratio_interval
from ja_adapt.evaluate.stats import ALPHA, bootstrap_ci, holm_family, underpowered

DOCS = "docs/metrics.md"


def accuracy_record(outcomes, *, resamples: int, seed: int) -> dict:
    """n, correct, accuracy and its percentile interval over resampled items (outcomes: 0/1)."""
    x = np.asarray(outcomes, dtype=np.float64)
    out = {"n": len(x), "correct": int(x.sum()), "accuracy": float(x.mean()) if len(x) else None}
    if len(x):
        ci = ratio_interval(x, np.ones_like(x), resamples=resamples, seed=seed)
        out.update({k: v for k, v in ci.items() if k != "unit"}, unit="item")
    return out


def mcnemar_exact(a, b) -> dict:
    """McNemar's exact test on paired 0/1 outcomes: under H0 each discordant item is a's win with
    probability 1/2 (scipy.stats.binomtest, two-sided). Underpowered when even all discordant items
    going one way could not give p < ALPHA (2 / 2^n >= ALPHA)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = a_only + b_only
    rec = {
        "test": "McNemar exact (two-sided binomial test on discordant items)",
        "a_only": a_only,
        "b_only": b_only,
        "n_discordant": n,
        "n_items": len(a),
    }
    min_p = min(1.0, 2.0 / 2.0**n)
    if min_p >= ALPHA:
        return {**rec, **underpowered(n, min_p, f"exact two-sided minimum p = 2/2^{n} (discordant items)")}
    return {**rec, "p": float(sps.binomtest(a_only, n, 0.5).pvalue), "min_attainable_p": min_p}


def _binary_metrics(samples: list[dict]) -> list[str]:
    """Per-item metrics whose values are all 0 or 1 (acc, acc_norm, exact_match, ...)."""
    keys = [k for k in samples[0] if k not in ("doc_id", "target")] if samples else []
    return [k for k in keys if all(s.get(k) in (0, 1, 0.0, 1.0, True, False) for s in samples)]


def task_compare(ta: dict, tb: dict, *, resamples: int, seed: int) -> dict:
    """One task of two eval.json downstream sections: per binary metric, each model's accuracy
    with its interval, the difference a - b with a paired bootstrap interval, and McNemar's test."""
    sa, sb = ta["samples"], tb["samples"]
    if ta.get("config_sha256") != tb.get("config_sha256") or [s["doc_id"] for s in sa] != [s["doc_id"] for s in sb]:
        return {"skipped": "the two evaluations ran different task configurations or items"}
    out = {
        "version": ta.get("version"),
        "num_fewshot": ta.get("num_fewshot"),
        "config_sha256": ta.get("config_sha256"),
        "n": len(sa),
        "metrics": {},
    }
    kw = {"resamples": resamples, "seed": seed}
    for m in _binary_metrics(sa):
        a = np.array([s[m] for s in sa], dtype=np.float64)
        b = np.array([s[m] for s in sb], dtype=np.float64)
        rec = {
            "a": accuracy_record(a, **kw),
            "b": accuracy_record(b, **kw),
            "diff": float((a - b).mean()),
            "mcnemar": mcnemar_exact(a, b),
        }
        if len(a) >= 2:
            lo, hi = bootstrap_ci(a - b, **kw)
            rec.update(diff_ci_low=lo, diff_ci_high=hi, diff_resamples=resamples, unit="item")
        out["metrics"][m] = rec
    out["main_metric"] = "acc" if "acc" in out["metrics"] else next(iter(out["metrics"]), None)
    return out


def downstream_compare(results_a: dict, results_b: dict, cfg) -> dict | None:
    """Model a against model b on the downstream tasks both eval.json files ran (cfg: EvalConfig),
    with one Holm family over the tasks' main-metric McNemar tests. None when either has none."""
    da, db = results_a.get("downstream"), results_b.get("downstream")
    if not da or not db:
        return None
    shared = sorted(set(da["tasks"]) & set(db["tasks"]))
    tasks = {
        t: task_compare(da["tasks"][t], db["tasks"][t], resamples=cfg.bootstrap_resamples, seed=cfg.seed)
        for t in shared
    }
    tests = {
        f"{t} {r['main_metric']} (McNemar exact)": r["metrics"][r["main_metric"]]["mcnemar"]
        for t, r in tasks.items()
        if r.get("main_metric")
    }
    return {
        "definition": f"{DOCS}#downstream",
        "level": "document",
        "direction": "diff = a - b (accuracy)",
        "engine": "lm-evaluation-harness",
        "lm_eval_version": da.get("lm_eval_version"),
        "lm_eval_version_b": db.get("lm_eval_version"),
        "tasks": tasks,
        "family": holm_family("does one model score better on the downstream tasks?", tests),
    }
