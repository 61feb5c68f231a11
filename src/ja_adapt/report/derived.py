"""Sections derived across groups: rank / precision / learning-rate sweeps, trade-offs, recommendations.

A sweep over key K is any set of groups whose configurations are equal except for K (seed aside);
the quality metric of a sweep is Japanese held-out bits/char when the runs were evaluated, else the
final validation loss (the section says which).
"""

from __future__ import annotations

from ja_adapt import analysis as an
from ja_adapt.report import fmt
from ja_adapt.report.load import IGNORED_KEYS
from ja_adapt.report.quality import METRICS

NOT_RUN = {"status": "not run"}


def _metric(groups) -> tuple[str, callable]:
    if all(g.q("ja_bits_per_char")["n"] for g in groups):
        return "ja_bits_per_char", lambda g: g.q("ja_bits_per_char")
    return "final_val_loss", lambda g: g.summary("final_val_loss")


def sweeps(groups, key: str, method: str | None = None) -> list[list]:
    """Buckets of groups equal in everything but `key` (and the seed), with >= 2 values of key."""
    buckets: dict[str, list] = {}
    for g in groups:
        if method and g.method != method:
            continue
        rest = {k: str(v) for k, v in sorted(g.config.items()) if k != key and k not in IGNORED_KEYS}
        buckets.setdefault(repr(rest), []).append(g)
    return [b for b in buckets.values() if len({str(g.config.get(key)) for g in b}) >= 2]


def _largest(buckets: list[list], key: str):
    return max(buckets, key=lambda b: len({str(g.config.get(key)) for g in b})) if buckets else None


def rank_sensitivity(groups, cfg: an.AnalysisConfig) -> dict:
    bucket = _largest(sweeps(groups, "lora.rank", "lora"), "lora.rank")
    if bucket is None:
        return dict(NOT_RUN)
    name, metric = _metric(bucket)
    pts = []
    for g in sorted(bucket, key=lambda g: g.config["lora.rank"]):
        m, p = metric(g), g.summary("params_trainable")
        pts.append({"rank": g.config["lora.rank"], "label": g.label, "params_trainable": p, "metric": m,
                    "peak_mem_bytes": g.summary("peak_mem_bytes"), "time_per_step_s": g.summary("time_per_step_s")})
    dr = an.diminishing_returns([(p["rank"], p["metric"]["mean"]) for p in pts], cfg.rank_tolerance)
    best = min((p for p in pts if p["metric"]["mean"] is not None), key=lambda p: p["metric"]["mean"], default=None)
    return {"status": "ok", "metric": name, "points": pts, "diminishing_returns_rank": dr,
            "best_rank": best["rank"] if best else None, "rule": "diminishing_returns_rank"}


def precision_comparison(groups, cfg: an.AnalysisConfig) -> dict:
    found = sweeps(groups, "precision")
    if not found:
        return dict(NOT_RUN)
    out = {"status": "ok", "by_method": {}, "recommended": {}}
    for bucket in found:
        method = bucket[0].method
        if method in out["by_method"]:
            continue
        name, metric = _metric(bucket)
        out["metric"] = name
        rows = {g.config["precision"]: {"label": g.label, "metric": metric(g),
                                        "peak_mem_bytes": g.summary("peak_mem_bytes"),
                                        "time_per_step_s": g.summary("time_per_step_s"),
                                        "train_time_s": g.summary("train_time_s"),
                                        "tokens_per_s": g.summary("tokens_per_s")} for g in bucket}
        out["by_method"][method] = rows
        scored = {p: r["metric"]["mean"] for p, r in rows.items() if r["metric"]["mean"] is not None}
        if scored:
            best = min(scored.values())
            ok = [p for p, m in scored.items() if m <= best + cfg.precision_tolerance * abs(best)]
            out["recommended"][method] = min(ok, key=lambda p: rows[p]["time_per_step_s"]["mean"] or float("inf"))
    return out


def lr_sensitivity(groups, cfg: an.AnalysisConfig) -> dict:
    out = {"status": "ok", "by_method": {}}
    for method in sorted({g.method for g in groups}):
        bucket = _largest(sweeps(groups, "optim.lr", method), "optim.lr")
        if bucket is None:
            continue
        name, metric = _metric(bucket)
        pts = [{"lr": g.config["optim.lr"], "label": g.label, "metric": metric(g)}
               for g in sorted(bucket, key=lambda g: g.config["optim.lr"])]
        out["by_method"][method] = {"metric": name, "points": pts, **an.lr_sensitivity(
            [(p["lr"], p["metric"]["mean"]) for p in pts], cfg.lr_tolerance)}
    return out if out["by_method"] else dict(NOT_RUN)


def tradeoffs(res: dict, lora, full, base_q: dict) -> dict:
    if lora is None or full is None:
        return dict(NOT_RUN)
    ret = {}
    for key, (low, name) in METRICS.items():
        a, b = lora.q(key)["mean"], full.q(key)["mean"]
        if None not in (a, b):
            ret[key] = {"value": an.retention(a, b, low), "lora": a, "full": b,
                        "direction": "full / LoRA (lower is better)" if low else "LoRA / full (higher is better)"}
    mean = lambda g, k: g.summary(k)["mean"]          # noqa: E731
    out = {"status": "ok", "performance_retention": ret,
           "gain_retention": an.gain_retention(base_q.get("ja_bits_per_char"), lora.q("ja_bits_per_char")["mean"],
                                               full.q("ja_bits_per_char")["mean"]),
           "parameter_efficiency_gain": an.ratio(mean(full, "params_trainable"), mean(lora, "params_trainable")),
           "memory_efficiency_gain": an.ratio(mean(full, "peak_mem_bytes"), mean(lora, "peak_mem_bytes")),
           "time_efficiency_gain": an.ratio(mean(full, "train_time_s"), mean(lora, "train_time_s")),
           "storage_efficiency_gain": an.ratio(mean(full, "artifact_bytes"), mean(lora, "artifact_bytes")),
           "gains_direction": "full / LoRA for costs; > 1: LoRA costs less"}
    out["efficiency_score"] = {"value": an.efficiency_score(out["gain_retention"], out["memory_efficiency_gain"],
                                                            out["time_efficiency_gain"]),
                               "formula": "gain_retention × sqrt(memory_efficiency_gain × time_efficiency_gain)"}
    return out


def _device_text(res: dict) -> tuple[str, float | None]:
    """('NVIDIA H100 80GB HBM3', total bytes or None) of the first recorded device."""
    hw = (res.get("environment") or {}).get("hardware") or []
    if not hw:
        return "the recorded hardware", None
    d = hw[0]
    name = d.get("device_name") or d.get("device_type") or "the recorded device"
    total = d.get("device_memory_bytes")            # telemetry.device_info (CUDA devices only)
    total = total if isinstance(total, (int, float)) and total > 0 else None
    return str(name), total


def recommendations(res: dict, lora, full) -> dict:
    """Sentences whose every number comes from the measured sections above (basis kept beside)."""
    items = []
    device, total = _device_text(res)
    trade = res.get("tradeoff_analysis", {})
    if trade.get("status") == "ok":
        cfg = an.AnalysisConfig(**res.get("analysis_config", {})) if res.get("analysis_config") else an.AnalysisConfig()
        kept = trade.get("gain_retention")
        kept_kind = "of full fine-tuning's bits/char improvement over the base model"
        if kept is None:
            kept = (trade["performance_retention"].get("ja_bits_per_char") or {}).get("value")
            kept_kind = "of full fine-tuning's bits/char (full / LoRA)"
        mem = res["memory_usage"].get("lora_vs_full") or {}
        tim = res["time_efficiency"].get("lora_vs_full") or {}
        basis = {"retention": kept, "peak_reduction_pct": mem.get("peak_reduction_pct"),
                 "total_time_reduction_pct": tim.get("total_time_reduction_pct"),
                 "retention_target": cfg.retention_target}
        if kept is not None and kept >= cfg.retention_target:
            text = (f"Use LoRA by default on {device}: it kept {fmt.share(kept)} {kept_kind} with "
                    f"{fmt.less(mem.get('peak_reduction_pct'))} peak memory and "
                    f"{fmt.less(tim.get('total_time_reduction_pct'))} training time.")
        else:
            text = (f"Prefer full fine-tuning on {device} when Japanese quality matters most: LoRA kept only "
                    f"{fmt.share(kept)} {kept_kind} (target {fmt.share(cfg.retention_target)}); choose LoRA "
                    f"when memory or time is the constraint (LoRA needed {fmt.less(mem.get('peak_reduction_pct'))} "
                    f"peak memory and {fmt.less(tim.get('total_time_reduction_pct'))} training time).")
        items.append({"topic": "method", "text": text, "basis": basis})
        peaks = {g.method: g.summary("peak_mem_bytes")["mean"] for g in (lora, full)}
        if total and all(peaks.values()):
            items.append({"topic": "hardware", "basis": {"device_total_bytes": total, **peaks},
                          "text": f"On {device} ({fmt.nbytes(total)}), full fine-tuning peaked at "
                                  f"{fmt.nbytes(peaks['full'])} ({fmt.share(peaks['full'] / total)} of the device) and "
                                  f"LoRA at {fmt.nbytes(peaks['lora'])} ({fmt.share(peaks['lora'] / total)}) with this "
                                  "batch and sequence length."})
        forget = res.get("generalization_results", {}).get("catastrophic_forgetting", {})
        for lang in forget.get("langs", []):
            a = forget["groups"][lora.label][f"{lang}_retention"]["mean"]
            b = forget["groups"][full.label][f"{lang}_retention"]["mean"]
            if None not in (a, b):
                better = "LoRA" if a > b else "full fine-tuning"
                items.append({"topic": f"forgetting:{lang}", "basis": {"lora": a, "full": b},
                              "text": f"Where {lang} ability must be kept, {better} forgot less: {lang} retention "
                                      f"{fmt.num(a)} (LoRA) vs {fmt.num(b)} (full)."})
    rank = res.get("rank_sensitivity", {})
    if rank.get("status") == "ok" and rank.get("diminishing_returns_rank") is not None:
        r = rank["diminishing_returns_rank"]
        p = next(x for x in rank["points"] if x["rank"] == r)
        items.append({"topic": "rank", "basis": {"rank": r, "best_rank": rank["best_rank"]},
                      "text": f"Use LoRA rank {r}: the smallest rank within the tolerance of the best rank "
                              f"({rank['best_rank']}) on {rank['metric']}, with {fmt.integer(p['params_trainable']['mean'])} "
                              f"trainable parameters and {fmt.nbytes(p['peak_mem_bytes']['mean'])} peak memory."})
    prec = res.get("precision_comparison", {})
    for method, p in (prec.get("recommended") or {}).items():
        row = prec["by_method"][method][p]
        items.append({"topic": f"precision:{method}", "basis": {"precision": p},
                      "text": f"Train {method} in {p} on {device}: the fastest precision matching the best "
                              f"{prec['metric']} ({fmt.seconds(row['time_per_step_s']['mean'])} per step, "
                              f"{fmt.nbytes(row['peak_mem_bytes']['mean'])} peak)."})
    for method, s in (res.get("lr_sensitivity", {}).get("by_method") or {}).items():
        if s.get("best_lr") is not None:
            items.append({"topic": f"lr:{method}", "basis": {k: s.get(k) for k in ("best_lr", "range",
                                                                                    "sensitivity_coefficient")},
                          "text": f"Use lr {fmt.num(s['best_lr'])} for {method}; learning rates from "
                                  f"{fmt.num(s['range'][0])} to {fmt.num(s['range'][1])} stayed within the tolerance "
                                  f"(sensitivity {fmt.num(s['sensitivity_coefficient'])} per decade)."})
    if not items:
        return {"status": "not run", "reason": "no LoRA-vs-full comparison or sweep to base advice on"}
    return {"status": "ok", "items": items}
