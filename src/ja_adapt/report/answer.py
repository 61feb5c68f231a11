"""The sections a demanding reader asks for first, read from the experiment directories.

    headline          each method at its chosen settings, seeds aggregated: mean ± sd with a 95%
                      t-interval over seeds per metric, and the seed-level LoRA − full difference
                      (Welch, with the paired-by-seed test beside it), Holm-adjusted per question;
                      a difference is *resolved* only when its 95% interval excludes zero and its
                      Holm-adjusted p is below 0.05
    base_model        is the base a language model of its languages: bits/char, top-1 token accuracy
                      and the most frequent argmax token's share, per language, with intervals
    lr_tuning         each method's grid, validation losses, chosen value, and the comparison at the
                      values both grids share (does the conclusion change at a shared rate?)
    evaluation_sets   characters and documents per evaluation set, and what decontamination removed

Every statistic is computed by the evaluation layer (evaluate.stats.seed_compare, holm) or read from
stats.json; nothing here is a new statistic.
"""

from __future__ import annotations

from ja_adapt.evaluate.stats import holm, seed_compare
from ja_adapt.report.load import adapts_linears

ALPHA = 0.05
MIN_EVAL_CHARS = 20_000      # the size an evaluation set should reach to resolve differences

# Headline metrics: key → (readable name, lower is better?, question, where the value comes from).
# "quality" keys are quality.quality(eval.json) keys; "summary" keys are summary.json keys.
HEADLINE = {
    "ja_bits_per_char": ("Japanese held-out bits/char", True, "japanese_quality", "quality"),
    "cross_domain_bits_per_char": ("cross-domain Japanese bits/char", True, "japanese_quality", "quality"),
    "char_accuracy_overall": ("character accuracy (all scripts)", False, "japanese_quality", "quality"),
    "char_accuracy_hiragana": ("hiragana accuracy", False, "japanese_quality", "quality"),
    "char_accuracy_katakana": ("katakana accuracy", False, "japanese_quality", "quality"),
    "char_accuracy_kanji": ("kanji accuracy", False, "japanese_quality", "quality"),
    "chrf": ("chrF (continuations)", False, "japanese_quality", "quality"),
    "bleu": ("BLEU (continuations, ja-mecab)", False, "japanese_quality", "quality"),
    "repeat_4gram_rate": ("repeated 4-gram rate of continuations", True, "japanese_quality", "quality"),
    "sft_bleu": ("supervised task BLEU (ja-mecab)", False, "supervised_task", "quality"),
    "sft_chrf": ("supervised task chrF", False, "supervised_task", "quality"),
    "sft_exact_match": ("supervised task exact match", False, "supervised_task", "quality"),
    "sft_response_bits_per_char": ("supervised task response bits/char", True, "supervised_task", "quality"),
    "en_bpb_increase": ("English bits/byte increase over the base", True, "forgetting", "quality"),
    "zh_bpb_increase": ("Chinese bits/byte increase over the base", True, "forgetting", "quality"),
    "peak_mem_bytes": ("peak memory", True, "cost", "summary"),
    "time_per_step_s": ("time per step", True, "cost", "summary"),
    "tokens_per_s": ("training tokens/s", False, "cost", "summary"),
    "params_trainable": ("trainable parameters", True, "cost", "summary"),
}


def _value(group, run, key: str, source: str):
    return group.quality[run.seed].get(key) if source == "quality" else run.summary.get(key)


def headline(lora, full) -> dict:
    """The LoRA-vs-full table over seeds (module docstring); lora / full: report.results.Group."""
    if lora is None or full is None:
        return {"status": "not run", "reason": "no LoRA and full fine-tuning groups to compare"}
    methods = {side: _side(g) for side, g in (("lora", lora), ("full", full))}
    metrics, families = {}, {}
    for key, (name, lower, question, source) in HEADLINE.items():
        a = {r.seed: v for r in lora.runs if (v := _value(lora, r, key, source)) is not None}
        b = {r.seed: v for r in full.runs if (v := _value(full, r, key, source)) is not None}
        if not a or not b:
            continue
        cmp = seed_compare(a, b)
        diff = cmp["welch"]
        if len(set(a.values())) == 1 and len(set(b.values())) == 1:   # exact (e.g. parameter counts)
            d = next(iter(a.values())) - next(iter(b.values()))
            diff = {"diff": d, "ci_low": d, "ci_high": d, "exact": True,
                    "note": "the same value at every seed: the difference is exact"}
        metrics[key] = {"name": name, "lower_is_better": lower, "question": question,
                        "lora": cmp["methods"]["a"], "full": cmp["methods"]["b"],
                        "difference": diff, "paired_by_seed": cmp["paired"]}
        if cmp["welch"].get("p") is not None:
            families.setdefault(question, {})[key] = cmp["welch"]["p"]
    for question, ps in families.items():
        for key, p_holm in zip(ps, holm(list(ps.values()))):
            metrics[key]["difference"]["p_holm"] = p_holm
    for m in metrics.values():
        m["resolved"], m["better"] = _resolved(m["difference"], m["lower_is_better"])
    return {"status": "ok", "level": "seed",
            "direction": "difference = LoRA − full (mean over seeds); Welch's t-interval",
            "rule": f"resolved: the 95% interval of the difference excludes 0 and the Holm-adjusted p "
                    f"(per question: {', '.join(sorted(families))}) is below {ALPHA}; a value equal at "
                    "every seed (a parameter count) is exact, its difference needs no test",
            "methods": methods, "metrics": metrics,
            "families": {q: sorted(ps) for q, ps in families.items()}}


def _side(g) -> dict:
    """Which configuration a side of the headline is: its group's label, arm, method and seeds, and
    for a LoRA-family method the adapted projections, rank and alpha (the LoRA it is about)."""
    out = {"label": g.label, "arm": g.arm, "method": g.method, "seeds": [r.seed for r in g.runs],
           "config": g.config}
    if adapts_linears(g.method):
        out.update(targets=g.config.get("lora.targets"), rank=g.config.get("lora.rank"),
                   alpha=g.config.get("lora.alpha"))
    return out


def _resolved(diff: dict, lower_is_better: bool) -> tuple[bool, str | None]:
    lo, hi, p = diff.get("ci_low"), diff.get("ci_high"), diff.get("p_holm")
    if diff.get("exact"):                     # no sampling error: any nonzero difference is real
        p = 0.0
    if None in (lo, hi, p) or not (lo > 0 or hi < 0) or p >= ALPHA:
        return False, None
    lora_lower = hi < 0
    return True, "lora" if lora_lower == lower_is_better else "full"


def base_model(base_eval: dict | None) -> dict:
    """Per language: bits/char, top-1 accuracy and the top argmax token's share, with intervals."""
    by_lang = ((base_eval or {}).get("likelihood") or {}).get("by_lang") or {}
    if not by_lang:
        return {"status": "not run", "reason": "no base-model evaluation (OUT/base/eval.json)"}
    keys = ("documents", "chars", "tokens", "bits_per_char", "bits_per_char_ci", "top1_accuracy",
            "top1_accuracy_ci", "argmax_top_token", "argmax_top_share", "argmax_positions")
    fert = (base_eval or {}).get("fertility") or {}
    fertility = ({"by_lang": fert["by_lang"], "scripts": fert["scripts"], "definition": fert.get("definition")}
                 if fert.get("by_lang") else {"status": "not run", "reason": fert.get("skipped", "not in eval.json")})
    return {"status": "ok", "by_lang": {lang: {k: v.get(k) for k in keys} for lang, v in by_lang.items()},
            "fertility": fertility,
            "definition": "teacher-forced: top-1 = argmax next token equals the gold token; top argmax "
                          "share = the most frequent argmax token's share of all scored positions"}


def lr_tuning(exps, stats_of: dict, runs_by_name: dict) -> dict:
    """The tuning records of the compare experiments (experiments.run_compare), keyed by compared
    entry (method or arm), with each grid point's held-out Japanese bits/char and the LoRA − full
    comparisons at shared values (stats.json). An entry tuned in several experiments (the demo's
    methods comparison reuses LoRA's and full fine-tuning's runs) is shown from the first."""
    tuned = [e for e in exps if (e.manifest.get("tuning") or {}).get("spec")]
    if not tuned:
        return {"status": "not run", "reason": "the comparison was run at one configured value per "
                                               "method (no --tune grid)"}
    key, selection = tuned[0].manifest["tuning"]["spec"]["key"], tuned[0].manifest["tuning"]["spec"]["selection"]
    points, grids, chosen, at_edge = {}, {}, {}, {}
    for exp in tuned:
        t = exp.manifest["tuning"]
        if t["spec"]["key"] != key:
            continue
        for m, grid in t["spec"]["grids"].items():
            if m in points:
                continue
            pts = []
            for v in grid:
                run = next((r for r in exp.runs if r.arm == m and r.seed == t["spec"]["seed"]
                            and r.config.get(key) == v), None)
                held = (((run.eval or {}).get("domains") or {}).get("held_out") or {}) if run else {}
                pts.append({"value": v, "val_loss": t["val_loss"][m].get(str(v)),
                            "ja_bits_per_char": held.get("bits_per_char"),
                            "ja_bits_per_char_ci": held.get("bits_per_char_ci"),
                            "run": run.name if run else None})
            points[m], grids[m], chosen[m] = pts, grid, t["chosen"][m]
            at_edge[m] = t.get("at_grid_edge", {}).get(m)
    shared = []
    for v in sorted(set(grids.get("lora", [])) & set(grids.get("full", []))):
        a = next((p["run"] for p in points["lora"] if p["value"] == v), None)
        b = next((p["run"] for p in points["full"] if p["value"] == v), None)
        shared.append({"value": v, **_doc_diff(stats_of, a, b)})
    at_choice = _doc_diff(stats_of, *(next(p["run"] for p in points[m] if p["value"] == chosen[m])
                                      for m in ("lora", "full"))) if {"lora", "full"} <= set(chosen) else None
    changes = None
    if at_choice and shared and at_choice.get("resolved") is not None:
        changes = any((s.get("better"), s.get("resolved")) != (at_choice.get("better"), at_choice.get("resolved"))
                      for s in shared)
    return {"status": "ok", "key": key, "selection": selection, "grids": grids,
            "points": points, "chosen": chosen, "at_grid_edge": at_edge,
            "at_chosen": at_choice, "at_shared_values": shared, "conclusion_changes_at_shared_value": changes,
            "level": "document (one pair of seed-0 checkpoints per row)"}


def _doc_diff(stats_of: dict, a: str | None, b: str | None) -> dict:
    """LoRA − full held-out Japanese bits/char of runs a, b from stats.json (document level)."""
    if not a or not b:
        return {"skipped": "missing run"}
    st, flipped = None, False
    for e in stats_of.get(a, {}).get("pairs", []):
        if {e["a"], e["b"]} == {a, b}:
            st, flipped = e["stats"], e["a"] != a
    corpus = ((((st or {}).get("bits_per_char") or {}).get("held_out") or {}).get("char_weighted") or {})
    d, lo, hi = corpus.get("diff"), corpus.get("ci_low"), corpus.get("ci_high")
    if d is None or lo is None or hi is None:
        return {"lora_run": a, "full_run": b, "skipped": "no paired statistics in stats.json"}
    if flipped:
        d, lo, hi = -d, -hi, -lo
    resolved = lo > 0 or hi < 0
    return {"lora_run": a, "full_run": b, "diff": d, "ci_low": lo, "ci_high": hi, "resolved": resolved,
            "better": ("lora" if hi < 0 else "full") if resolved else None,
            "weighting": corpus.get("weighting")}


def evaluation_sets(exps, base_eval: dict | None) -> dict:
    """Characters and documents per evaluated (lang, domain), per language, and decontamination."""
    groups = ((base_eval or {}).get("likelihood") or {}).get("by_group") or {}
    by_group = {k: {"documents": v.get("documents"), "chars": v.get("chars"), "trained": v.get("trained")}
                for k, v in groups.items()}
    by_lang: dict[str, dict] = {}
    for k, v in by_group.items():
        lang = k.split("/", 1)[0]
        agg = by_lang.setdefault(lang, {"documents": 0, "chars": 0})
        agg["documents"] += v["documents"] or 0
        agg["chars"] += v["chars"] or 0
    for v in by_lang.values():
        v["at_least_min"] = v["chars"] >= MIN_EVAL_CHARS
    deco = next((e.decontamination for e in exps if e.decontamination), None)
    return {"status": "ok" if by_group else "not run", "min_chars": MIN_EVAL_CHARS,
            "by_group": by_group, "by_lang": by_lang, "decontamination": deco}
