"""Sections derived across groups: rank / precision / learning-rate sweeps, trade-offs, recommendations.

A sweep over key K is any set of groups whose configurations are equal except for K (seed aside);
the quality metric of a sweep is Japanese held-out bits/char when the runs were evaluated, else the
final validation loss (the section says which).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

from ja_adapt.report import analysis as an
from ja_adapt.report import fmt, lead
from ja_adapt.report.load import IGNORED_KEYS, Experiment
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


def rank_sensitivity(groups, cfg: an.AnalysisConfig, stats_of: dict | None = None,
                     aliases: dict | None = None) -> dict:
    """Quality, parameters, memory and time per LoRA rank. The recommended rank is the smallest
    whose held-out bits/char is not resolved from the best rank's: the char-weighted difference's
    document-bootstrap 95% CI (stats.json, seed-matched runs) includes 0."""
    bucket = _largest(sweeps(groups, "lora.rank", "lora"), "lora.rank")
    if bucket is None:
        return dict(NOT_RUN)
    name, metric = _metric(bucket)
    pts = []
    for g in sorted(bucket, key=lambda g: g.config["lora.rank"]):
        m, p = metric(g), g.summary("params_trainable")
        held = ((g.runs[0].eval or {}).get("domains") or {}).get("held_out") or {}
        pts.append({"rank": g.config["lora.rank"], "label": g.label, "params_trainable": p, "metric": m,
                    "metric_ci_seed0": held.get("bits_per_char_ci") if name == "ja_bits_per_char" else None,
                    "peak_mem_bytes": g.summary("peak_mem_bytes"), "time_per_step_s": g.summary("time_per_step_s"),
                    "run": g.runs[0].name})
    dr = an.diminishing_returns([(p["rank"], p["metric"]["mean"]) for p in pts], cfg.rank_tolerance)
    best = min((p for p in pts if p["metric"]["mean"] is not None), key=lambda p: p["metric"]["mean"], default=None)
    out = {"status": "ok", "metric": name, "points": pts, "diminishing_returns_rank": dr,
           "best_rank": best["rank"] if best else None, "seeds": min(len(g.runs) for g in bucket)}
    if best is not None and stats_of:
        for p in pts:
            p["vs_best"] = _pair_diff(stats_of, p["run"], best["run"], aliases or {}) if p is not best else None
        unresolved = [p["rank"] for p in pts if p is best or (p["vs_best"] and p["vs_best"].get("resolved") is False)]
        out["recommended_rank"] = min(unresolved)
        out["rule"] = ("the smallest rank whose held-out Japanese bits/char is not resolved from the best "
                       "rank's (document level: char-weighted difference, bootstrap 95% CI includes 0; "
                       f"{out['seeds']} seed)")
    return out


def _pair_diff(stats_of: dict, a: str, b: str, aliases: dict) -> dict | None:
    """a − b held-out bits/char (char-weighted, document bootstrap CI) from stats.json, if present;
    aliases: run name → names of the same run copied into other experiments (report duplicates)."""
    names_a, names_b = {a, *aliases.get(a, ())}, {b, *aliases.get(b, ())}
    for e in (e for x in names_a for e in (stats_of.get(x) or {}).get("pairs", [])):
        if e["a"] in names_a | names_b and e["b"] in names_a | names_b and \
                (e["a"] in names_a) != (e["b"] in names_a):
            cw = (((e["stats"].get("bits_per_char") or {}).get("held_out") or {}).get("char_weighted") or {})
            if cw.get("diff") is None or cw.get("ci_low") is None:
                return None
            sign = 1 if e["a"] in names_a else -1
            lo, hi = sorted((sign * cw["ci_low"], sign * cw["ci_high"]))
            return {"diff": sign * cw["diff"], "ci_low": lo, "ci_high": hi, "resolved": lo > 0 or hi < 0}
    return None


def precision_comparison(groups, cfg: an.AnalysisConfig) -> dict:
    """Time and memory per precision, and quality only when the runs were long enough to compare it
    (a probe's groups carry no quality: then no metric and no recommendation)."""
    found = sweeps(groups, "precision")
    if not found:
        return dict(NOT_RUN)
    probe = all(r.purpose == "probe" for b in found for g in b for r in g.runs)
    out = {"status": "ok", "purpose": "probe" if probe else "quality", "by_method": {}, "recommended": {}}
    for bucket in found:
        method = bucket[0].method
        if method in out["by_method"]:
            continue
        name, metric = _metric(bucket) if not probe else (None, lambda g: None)
        out["metric"] = name
        rows = {g.config["precision"]: {"label": g.label, "metric": metric(g),
                                        "peak_mem_bytes": g.summary("peak_mem_bytes"),
                                        "time_per_step_s": g.summary("time_per_step_s"),
                                        "train_time_s": g.summary("train_time_s"),
                                        "tokens_per_s": g.summary("tokens_per_s")} for g in bucket}
        out["by_method"][method] = rows
        scored = {} if probe else {p: r["metric"]["mean"] for p, r in rows.items() if r["metric"]["mean"] is not None}
        if scored:
            best = min(scored.values())
            ok = [p for p, m in scored.items() if m <= best + cfg.precision_tolerance * abs(best)]
            out["recommended"][method] = min(ok, key=lambda p: rows[p]["time_per_step_s"]["mean"] or float("inf"))
    return out


def lr_sensitivity(groups, cfg: an.AnalysisConfig) -> dict:
    """Per compared entry (an arm of one arm's groups, else the method): its largest lr sweep. Two
    arms of one method (LoRA on q,v and on every linear) are two sweeps, each under its arm."""
    out = {"status": "ok", "by_method": {}}
    named: dict[str, list] = {}
    for bucket in sweeps(groups, "optim.lr"):
        arms = {g.arm for g in bucket}
        named.setdefault(arms.pop() if len(arms) == 1 else bucket[0].method, []).append(bucket)
    for entry in sorted(named):
        bucket = _largest(named[entry], "optim.lr")
        name, metric = _metric(bucket)
        pts = [{"lr": g.config["optim.lr"], "label": g.label, "metric": metric(g)}
               for g in sorted(bucket, key=lambda g: g.config["optim.lr"])]
        out["by_method"][entry] = {"metric": name, "points": pts, **an.lr_sensitivity(
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


def _diff_text(m: dict, key: str) -> str:
    d, unit = m["difference"], lead.unit_of(key)
    how = "exact" if d.get("exact") else (f"95% CI [{unit(d.get('ci_low'))}, {unit(d.get('ci_high'))}], "
                                          f"Holm p {fmt.num(d.get('p_holm'), 3)}")
    return (f"{m['name']}: LoRA {unit(m['lora'].get('mean'))} vs full {unit(m['full'].get('mean'))}, "
            f"difference {unit(d.get('diff'))} ({how})")


def recommendations(res: dict, lora, full) -> dict:
    """Advice drawn only from resolved differences (headline: seed level; rank sweep: document level)
    and from exact counts; every sentence's numbers are kept beside it as its basis."""
    items = []
    device, total = _device_text(res)
    head = res.get("headline", {})
    if head.get("status") == "ok":
        metrics = head["metrics"]
        n = min(len(v["seeds"]) for v in head["methods"].values())
        by_q = {q: [k for k in keys if k in metrics] for q, keys in head["families"].items()}
        quality = [k for k in by_q.get("japanese_quality", []) if metrics[k]["resolved"]]
        cost = [k for k in by_q.get("cost", []) if metrics[k]["resolved"]]
        forget = [k for k in by_q.get("forgetting", []) if metrics[k]["resolved"]]
        q_better = {metrics[k]["better"] for k in quality}
        cheaper = {metrics[k]["better"] for k in cost}
        params = metrics.get("params_trainable")
        if not quality:
            main = metrics.get("ja_bits_per_char")
            text = (f"No resolved difference in Japanese quality between LoRA and full fine-tuning at {n} seeds "
                    f"per method" + (f" ({_diff_text(main, 'ja_bits_per_char')})" if main else "") + ".")
            gains = [k for k in cost if metrics[k]["better"] == "lora" and k != "params_trainable"]
            if gains:
                text += f" LoRA costs less on {device} (" + "; ".join(_diff_text(metrics[k], k) for k in gains) + \
                        "), so use LoRA unless a larger study resolves a quality gap."
            items.append({"topic": "method", "text": text, "basis": {"resolved_quality": [], "n_seeds": n}})
        else:
            winner = "full fine-tuning" if q_better == {"full"} else "LoRA" if q_better == {"lora"} else None
            main = "ja_bits_per_char" if "ja_bits_per_char" in quality else quality[0]
            if winner:
                text = (f"Prefer {winner} on {device} when Japanese quality matters most: it is better on every "
                        f"resolved Japanese-quality metric ({len(quality)} of {len(by_q['japanese_quality'])}; "
                        f"{_diff_text(metrics[main], main)}).")
            else:
                text = ("Japanese-quality differences point both ways: " + "; ".join(
                    f"{metrics[k]['name']} ({'LoRA' if metrics[k]['better'] == 'lora' else 'full'} better)"
                    for k in quality) + ".")
            gains = sorted(k for k in cost if metrics[k]["better"] == "lora" and k != "params_trainable")
            if winner == "full fine-tuning" and gains:
                text += (" Choose LoRA when memory or time is the constraint (" +
                         "; ".join(_diff_text(metrics[k], k) for k in gains) + ").")
            elif winner == "full fine-tuning":
                text += (" No resolved memory or time saving for LoRA at this scale (its "
                         f"{fmt.integer(metrics['params_trainable']['lora']['mean'])} trainable parameters make "
                         "its artifact small, not its training)." if "params_trainable" in metrics else "")
            items.append({"topic": "method", "text": text,
                          "basis": {"resolved_quality": quality, "n_seeds": n}})
        if params:
            items.append({"topic": "parameters", "basis": {"lora": params["lora"]["mean"], "full": params["full"]["mean"]},
                          "text": f"LoRA trains {fmt.integer(params['lora']['mean'])} parameters against full "
                                  f"fine-tuning's {fmt.integer(params['full']['mean'])} (exact counts); its "
                                  f"artifact is an adapter on the base model."})
        for k in forget:
            m = metrics[k]
            items.append({"topic": "forgetting", "basis": m["difference"],
                          "text": f"Where the base model's other languages must be kept: {_diff_text(m, k)}; "
                                  f"{'LoRA' if m['better'] == 'lora' else 'full fine-tuning'} forgot less."})
        if not forget and by_q.get("forgetting"):
            items.append({"topic": "forgetting", "basis": {"resolved": []},
                          "text": "No resolved difference in forgetting of the other languages (" + "; ".join(
                              _diff_text(metrics[k], k) for k in by_q["forgetting"]) + ")."})
        task = by_q.get("supervised_task", [])
        task_resolved = [k for k in task if metrics[k]["resolved"]]
        if task:
            items.append({"topic": "supervised task", "basis": {"resolved": task_resolved},
                          "text": ("On the supervised task (held-out responses): " + "; ".join(
                              f"{_diff_text(metrics[k], k)}, {'LoRA' if metrics[k]['better'] == 'lora' else 'full fine-tuning'} better"
                              for k in task_resolved) + "." if task_resolved else
                              "No resolved difference on the supervised task (" + "; ".join(
                                  _diff_text(metrics[k], k) for k in task) + ").")})
        peaks = {"lora": lora.summary("peak_mem_bytes")["mean"], "full": full.summary("peak_mem_bytes")["mean"]}
        if total and all(peaks.values()):
            items.append({"topic": "hardware", "basis": {"device_total_bytes": total, **peaks},
                          "text": f"On {device} ({fmt.nbytes(total)}), full fine-tuning peaked at "
                                  f"{fmt.nbytes(peaks['full'])} ({fmt.share(peaks['full'] / total)} of the device) and "
                                  f"LoRA at {fmt.nbytes(peaks['lora'])} ({fmt.share(peaks['lora'] / total)}) with this "
                                  "batch and sequence length."})
    tuning = res.get("lr_tuning", {})
    if tuning.get("status") == "ok":
        edge = [m for m, e in tuning["at_grid_edge"].items() if e]
        text = "Learning rates chosen on validation loss: " + ", ".join(
            f"{m} {fmt.num(v)}" for m, v in tuning["chosen"].items()) + "."
        if edge:
            text += f" At the edge of its grid for {', '.join(edge)}: widen the grid before trusting the choice."
        items.append({"topic": "lr", "text": text, "basis": {"chosen": tuning["chosen"], "at_grid_edge": edge}})
    rank = res.get("rank_sensitivity", {})
    if rank.get("status") == "ok" and rank.get("recommended_rank") is not None:
        items.append({"topic": "rank", "basis": {k: rank.get(k) for k in ("recommended_rank", "best_rank", "rule")},
                      "text": f"LoRA rank {rank['recommended_rank']}: {rank['rule']} (best measured rank "
                              f"{rank['best_rank']})."})
    if not items:
        return {"status": "not run", "reason": "no LoRA-vs-full comparison or sweep to base advice on"}
    return {"status": "ok", "items": items, "rule": "a difference is stated only when resolved "
            "(headline rule); otherwise the sentence says there is none, with its interval"}


def environment(exps: list[Experiment]) -> dict:
    runs = [r for e in exps for r in e.runs]
    devices, versions, locks = [], [], []
    for r in runs:
        for src, dst in ((r.summary.get("device"), devices), (r.summary.get("versions"), versions),
                         (r.summary.get("lock"), locks)):
            if src and src not in dst:
                dst.append(src)
    return {"hardware": devices, "versions": versions, "locks": locks,
            "report_python": platform.python_version(),
            "config_hashes": {r.name: r.summary.get("config_hash") for r in runs},
            "data_hashes": sorted({str(r.summary.get("data_hash")) for r in runs}),
            "configs": {str(e.out): e.manifest.get("config", {}) for e in exps},
            "data_sources": data_sources(exps)}


def data_sources(exps: list[Experiment]) -> dict | None:
    """The corpus manifest (OUT/corpora.json: sources with licences and sizes, documents per set)
    of the first experiment that has one, e.g. the demo's; None when no experiment recorded one."""
    for e in exps:
        path = Path(e.out) / "corpora.json"
        if path.is_file():
            manifest = json.loads(path.read_text(encoding="utf-8"))
            return {"sources": manifest.get("sources", []), "sizes": manifest.get("sizes", [])}
    return None
