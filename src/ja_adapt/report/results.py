"""build_results: experiment directories → the results.json dict (schema: results.schema.json).

Every value is a measurement (from summary.json / metrics.jsonl / eval.json), a value computed from
measurements by ja_adapt.report.analysis, or a definition. Quality figures are mean ± sd over seeds
(analysis.aggregate); LoRA-vs-full ratios use those means.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ja_adapt.report import analysis as an
from ja_adapt.core.errors import UserError
from ja_adapt.evaluate.forgetting import learning_forgetting_points
from ja_adapt.evaluate.scripts import SCRIPTS
from ja_adapt.report import answer, derived
from ja_adapt.report.downstream import downstream_section
from ja_adapt.report.load import IGNORED_KEYS, Experiment, Run, adapts_linears, label, read_experiment
from ja_adapt.report.methods import methods_table
from ja_adapt.report.quality import (
    METRICS,
    SFT_KEYS,
    compare,
    cross_domains,
    doc_test_row,
    quality,
)

SCHEMA_VERSION = "ja-adapt-results/1"
NOT_RUN = {"status": "not run"}
MAX_CURVE_POINTS = 400           # curves stored in results.json are thinned to this many points


@dataclass
class Group:
    """Runs that differ only in their seed, with per-run analyses keyed by seed."""
    label: str
    method: str
    config: dict
    runs: list[Run]
    dynamics: dict = field(default_factory=dict)    # seed → analysis.curve_analysis
    quality: dict = field(default_factory=dict)     # seed → quality.quality
    from_compare: bool = False
    arm: str = ""                                   # the compared entry (Run.arm); default: the method

    def __post_init__(self):
        self.arm = self.arm or self.method

    def agg(self, fn) -> dict:
        """mean ± sd over seeds of fn(run) (analysis.aggregate)."""
        return an.aggregate({r.seed: fn(r) for r in self.runs})

    def summary(self, key: str) -> dict:
        return self.agg(lambda r: r.summary.get(key))

    def dyn(self, key: str) -> dict:
        return self.agg(lambda r: self.dynamics[r.seed].get(key))

    def q(self, key: str) -> dict:
        """mean ± sd over seeds with its interval (one seed: the run's own bootstrap interval)."""
        single = self.quality[self.runs[0].seed].get(f"{key}_ci") if len(self.runs) == 1 else None
        return an.aggregate({r.seed: self.quality[r.seed].get(key) for r in self.runs}, single)


def make_groups(runs: list[Run], cfg: an.AnalysisConfig, duplicates: list | None = None) -> list[Group]:
    """Group runs by configuration (seed aside); repeats of a (config, seed) go to `duplicates`."""
    duplicates = [] if duplicates is None else duplicates
    by_key: dict[str, list[Run]] = {}
    for r in runs:
        by_key.setdefault(r.group_key(), []).append(r)
    keys = set().union(*(r.config for r in runs))
    varied = {k for k in keys if len({str(r.config.get(k)) for r in runs}) > 1}
    groups = []
    for members in by_key.values():
        seen: dict[int, Run] = {}
        for r in members:                    # a repeat (same config and seed, e.g. a sweep point equal
            if r.seed in seen:               # to the compare run) is the same measurement: keep the first
                duplicates.append({"skipped": f"{r.out}/{r.name}", "kept": f"{seen[r.seed].out}/{seen[r.seed].name}"})
                continue
            seen[r.seed] = r
        members = sorted(seen.values(), key=lambda r: r.seed)
        # a compare run's arm names the group also where a sweep's run (whose arm is its method) is
        # listed first: the same configuration is the compared entry
        first = next((r for r in members if r.kind == "compare"), members[0])
        g = Group(label(first, varied - IGNORED_KEYS), first.method, first.config, members,
                  from_compare=first.kind == "compare", arm=first.arm)
        for r in members:
            g.dynamics[r.seed] = an.curve_analysis(r.train, r.val, r.summary, cfg)
            g.quality[r.seed] = quality(r.eval) if r.purpose == "quality" else {}   # probes: no quality
        groups.append(g)
    labels = [g.label for g in groups]
    for g in groups:                         # differing only in unlabelled keys: name the experiment
        if labels.count(g.label) > 1:
            g.label = f"{g.label} [{Path(g.runs[0].out).name}]"
    labels = [g.label for g in groups]
    for g in groups:                         # a swept key without a short label: the run's own name
        if labels.count(g.label) > 1:
            g.label = f"{g.label} {g.runs[0].name.rsplit('__s', 1)[0]}"
    return sorted(groups, key=lambda g: g.label)


def stats_by_run(exps: list[Experiment]) -> dict:
    """Run name → the stats.json of the first experiment holding it (a run reused by a later
    experiment, e.g. the demo's methods comparison, keeps its own experiment's statistics)."""
    out: dict = {}
    for e in exps:
        for r in e.runs:
            out.setdefault(r.name, e.stats)
    return out


def timing_conditions(exps: list[Experiment], groups: list[Group]) -> dict:
    """How the groups' runs were timed: runs at once in their experiment (experiment.json jobs,
    experiments.py) and torch threads per run (summary.json)."""
    outs = {str(r.out) for g in groups for r in g.runs}
    return {"runs_at_once": sorted({e.manifest.get("jobs", 1) for e in exps if str(e.out) in outs}),
            "torch_threads": sorted({(r.summary.get("device") or {}).get("torch_threads")
                                     for g in groups for r in g.runs} - {None})}


def primary(groups: list[Group], arm: str) -> Group | None:
    """The group a compared entry (an arm, or a method: sweeps have no arms) is compared with: from
    a compare experiment if any, at its chosen settings, else the most seeds."""
    cands = [g for g in groups if g.arm == arm]
    if not cands:
        return None
    return max(cands, key=lambda g: (g.from_compare, any(r.chosen for r in g.runs), len(g.runs), -len(g.label)))


def lora_variants(groups: list[Group], lora: Group | None) -> list[Group]:
    """The primary groups of the compared arms of the LoRA family (method_spec adapts_linears)
    besides the primary LoRA arm: LoRA on every linear beside LoRA on q,v, DoRA, QLoRA, ..."""
    arms = sorted({g.arm for g in groups if g.from_compare and adapts_linears(g.method)} - {lora.arm if lora else "lora"})
    return [primary(groups, a) for a in arms]


def curve(records: list[dict], key: str, window: int) -> list[list[float]]:
    """[[step, value, smoothed]] thinned to MAX_CURVE_POINTS (smoothing on the full series)."""
    recs = [r for r in records if r.get(key) is not None and not r.get("skipped")]
    sm = an.smooth([r[key] for r in recs], window)
    stride = max(1, len(recs) // MAX_CURVE_POINTS + (len(recs) % MAX_CURVE_POINTS > 0))
    idx = list(range(0, len(recs), stride))
    if recs and idx[-1] != len(recs) - 1:
        idx.append(len(recs) - 1)
    return [[recs[i]["step"], float(recs[i][key]), float(sm[i])] for i in idx]


def per_group(groups: list[Group], fields: dict) -> dict:
    """{label: {field: fn(group)}} for every group."""
    return {g.label: {"method": g.method, "seeds": [r.seed for r in g.runs],
                      **{k: fn(g) for k, fn in fields.items()}} for g in groups}


def vs(lora: Group | None, full: Group | None, fields: dict) -> dict | None:
    """Derived LoRA-vs-full figures from the seed means: {name: (fn(mean_lora, mean_full), key, getter)}."""
    if lora is None or full is None:
        return None
    out = {}
    for name, (fn, getter) in fields.items():
        out[name] = fn(getter(lora)["mean"], getter(full)["mean"])
    return out


def build_results(out_dirs: list[Path], cfg: an.AnalysisConfig = an.AnalysisConfig()) -> dict:
    """Read every OUT directory, analyse, and return the results.json dict."""
    if not out_dirs:
        raise UserError("report: pass at least one experiment directory")
    exps = [read_experiment(Path(o)) for o in out_dirs]
    duplicates: list[dict] = []
    groups = make_groups([r for e in exps for r in e.runs], cfg, duplicates)
    lora, full = primary(groups, "lora"), primary(groups, "full")
    base_eval = next((e.base_eval for e in exps if e.base_eval), None)
    res = {"schema_version": SCHEMA_VERSION, "sources": [str(e.out) for e in exps],
           "experiments": [{"out": str(e.out), "kind": e.manifest["kind"], "grid": e.manifest.get("grid", {}),
                            "seeds": e.manifest.get("seeds", []), "runs": len(e.runs)} for e in exps],
           "duplicates_skipped": duplicates,
           "primary": {"lora": lora.label if lora else None, "full": full.label if full else None},
           "groups": {g.label: {"method": g.method, "arm": g.arm, "runs": [r.name for r in g.runs],
                                "seeds": [r.seed for r in g.runs], "config": g.config} for g in groups}}
    # The reference chapter's per-configuration tables hold the compared configurations; tuning
    # points and sweeps have their own sections.
    compared = [g for g in (lora, full) if g is not None] or groups
    stats_of = stats_by_run(exps)
    res["headline"] = answer.headline(lora, full)
    res["headline_variants"] = {g.arm: answer.headline(g, full) for g in lora_variants(groups, lora)} if full else {}
    res["base_model"] = answer.base_model(base_eval)
    res["lr_tuning"] = answer.lr_tuning(exps, stats_of, {r.name: r for e in exps for r in e.runs})
    res["evaluation_sets"] = answer.evaluation_sets(exps, base_eval)
    res["training_results"] = per_group(compared, {
        "final_train_loss": lambda g: g.summary("final_train_loss_window_mean"),
        "final_val_loss": lambda g: g.summary("final_val_loss"),
        "best_val_loss": lambda g: g.summary("best_val_loss"),
        "convergence_step": lambda g: g.dyn("convergence_step"),
        "stability_score": lambda g: g.dyn("stability_score"),
        "ja_bits_per_char": lambda g: g.q("ja_bits_per_char"),
        "ja_token_ppl": lambda g: g.q("ja_token_ppl"),
        "steps": lambda g: g.summary("steps")})
    res["efficiency_metrics"] = {"groups": per_group(compared, {
        "params_total": lambda g: g.summary("params_total"),
        "params_trainable": lambda g: g.summary("params_trainable"),
        "trainable_pct": lambda g: g.agg(lambda r: 100.0 * r.summary["params_trainable"] / r.summary["params_total"]),
        "artifact_bytes": lambda g: g.summary("artifact_bytes")}),
        "lora_vs_full": vs(lora, full, {
            "parameter_reduction_pct": (an.reduction_pct, lambda g: g.summary("params_trainable")),
            "parameter_gain": (lambda a, b: an.ratio(b, a), lambda g: g.summary("params_trainable")),
            "artifact_reduction_pct": (an.reduction_pct, lambda g: g.summary("artifact_bytes")),
            "artifact_gain": (lambda a, b: an.ratio(b, a), lambda g: g.summary("artifact_bytes"))})}
    res["memory_usage"] = memory_section(exps, compared, lora, full)
    res["time_efficiency"] = {"groups": per_group(compared, {
        "train_time_s": lambda g: g.summary("train_time_s"),
        "time_per_step_s": lambda g: g.summary("time_per_step_s"),
        "tokens_per_s": lambda g: g.summary("tokens_per_s"),
        "time_to_target_s": lambda g: g.dyn("time_to_target_s"),
        "tokens_to_target": lambda g: g.dyn("tokens_to_target")}),
        "lora_vs_full": vs(lora, full, {
            "total_time_reduction_pct": (an.reduction_pct, lambda g: g.summary("train_time_s")),
            "step_time_reduction_pct": (an.reduction_pct, lambda g: g.summary("time_per_step_s")),
            "throughput_increase_pct": (an.increase_pct, lambda g: g.summary("tokens_per_s")),
            "time_to_target_reduction_pct": (an.reduction_pct, lambda g: g.dyn("time_to_target_s"))}),
        "conditions": timing_conditions(exps, compared)}
    res["learning_dynamics"] = {"groups": per_group(compared, {
        "initial_loss_drop": lambda g: g.dyn("initial_loss_drop"),
        "convergence_step": lambda g: g.dyn("convergence_step"),
        "step_to_target": lambda g: g.dyn("step_to_target"),
        "generalization_gap": lambda g: g.dyn("generalization_gap"),
        "overfitting_onset_step": lambda g: g.agg(lambda r: g.dynamics[r.seed]["overfitting"]["onset_step"]),
        "overfitting_detected": lambda g: {str(r.seed): g.dynamics[r.seed]["overfitting"]["detected"]
                                           for r in g.runs}}),
        "curves": {r.name: {"group": g.label, "seed": r.seed,
                            "train": curve(r.train, "loss", cfg.smooth_window),
                            "val": curve(r.val, "val_loss", cfg.val_smooth_window)}
                   for g in compared for r in g.runs}}
    res["stability_analysis"] = {"groups": per_group(compared, {
        k: (lambda key: lambda g: g.dyn(key))(k)
        for k in ("loss_variance", "grad_norm_variance", "cv_loss", "cv_grad_norm", "skipped_fraction",
                  "stability_score")})}
    has_eval = any(g.quality[s] for g in groups for s in g.quality)
    qgroups = [g for g in (lora, full) if g is not None]
    base_q = quality(base_eval)
    res["statistical_results"] = statistics_section(exps, lora, full, base_eval) if has_eval and lora and full else dict(NOT_RUN)
    has_scripts = any(g.q("char_accuracy_overall")["n"] for g in qgroups)
    res["japanese_performance"] = japanese(qgroups, base_q) if has_scripts else dict(NOT_RUN)
    res["bleu_evaluation"] = bleu(qgroups, base_q, lora, full)
    res["supervised_task"] = supervised(qgroups, base_q, base_eval)
    res["generalization_results"] = generalization(qgroups, base_q, base_eval, lora, full) if has_eval else dict(NOT_RUN)
    res["complexity_analysis"] = complexity(qgroups, base_q, lora, full)
    res["downstream"] = downstream_section(exps, lora, full)
    res["methods"] = methods_table({a: primary(groups, a) for a in {g.arm for g in groups}}, base_q)
    aliases: dict[str, set] = {}
    for d in duplicates:                     # the same run copied into another experiment
        kept, skipped = d["kept"].rsplit("/", 1)[-1], d["skipped"].rsplit("/", 1)[-1]
        aliases.setdefault(kept, set()).add(skipped)
    res["rank_sensitivity"] = derived.rank_sensitivity(groups, cfg, stats_of, aliases)
    res["precision_comparison"] = derived.precision_comparison(groups, cfg)
    res["lr_sensitivity"] = derived.lr_sensitivity(groups, cfg)
    res["tradeoff_analysis"] = derived.tradeoffs(res, lora, full, base_q)
    res["environment"] = derived.environment(exps)
    res["recommendations"] = derived.recommendations(res, lora, full)
    res["definitions"] = {**an.definitions(cfg), **{f"metric:{k}": f"{name} ({'lower' if low else 'higher'} "
                                                    "is better)" for k, (low, name) in METRICS.items()}}
    res["analysis_config"] = dict(vars(cfg))
    return res


def memory_section(exps: list[Experiment], groups, lora, full) -> dict:
    out = {"groups": per_group(groups, {
        "peak_mem_bytes": lambda g: g.summary("peak_mem_bytes"),
        "mean_mem_bytes": lambda g: g.summary("mean_mem_bytes"),
        "optimizer_state_bytes": lambda g: g.summary("optimizer_state_bytes"),
        "model_state_bytes": lambda g: g.summary("model_state_bytes"),
        "memory_kind": lambda g: g.runs[0].summary.get("memory_kind")}),
        "lora_vs_full": vs(lora, full, {
            k: (an.reduction_pct, (lambda key: lambda g: g.summary(key))(key))
            for k, key in (("peak_reduction_pct", "peak_mem_bytes"), ("mean_reduction_pct", "mean_mem_bytes"),
                           ("optimizer_reduction_pct", "optimizer_state_bytes"),
                           ("model_reduction_pct", "model_state_bytes"))})}
    predicted = {}
    for e in exps:
        for r in e.runs:
            plan = (e.plan or {}).get(r.name)
            if not isinstance(plan, dict):
                continue
            total = plan.get("total_bytes", plan.get("total"))          # plan.plan_memory's keys
            alloc = plan.get("peak_allocated_bytes")
            if isinstance(total, (int, float)):
                measured = r.summary.get("peak_mem_bytes")
                # cuda_allocated peaks are comparable with the predicted allocator peak (no context)
                ref = alloc if isinstance(alloc, (int, float)) and r.summary.get("memory_kind") == "cuda_allocated" else total
                predicted[r.name] = {"method": r.method, "predicted_total_bytes": float(total),
                                     "predicted_allocated_bytes": float(alloc) if isinstance(alloc, (int, float)) else None,
                                     "measured_peak_bytes": measured, "memory_kind": r.summary.get("memory_kind"),
                                     "ratio_measured_over_predicted": an.ratio(measured, ref)}
    if predicted:
        out["predicted_vs_measured"] = predicted
    return out


def statistics_section(exps, lora: Group, full: Group, base_eval) -> dict:
    """Document-level rows (about one pair of checkpoints) read from each experiment's stats.json:
    LoRA vs full seed by seed, and each vs the base. Seed-level inference (about the methods) is the
    headline section's."""
    stats_of = stats_by_run(exps)
    rows = []
    fulls = {r.seed: r for r in full.runs}
    for r in lora.runs:
        f = fulls.get(r.seed)
        if f is not None and r.eval and f.eval:
            rows.append(doc_test_row(*compare(stats_of[r.name], r.name, f.name), r.seed))
    for g in (lora, full):
        for r in g.runs:
            if r.eval and base_eval:
                rows.append(doc_test_row(*compare(stats_of[r.name], r.name, "base"), r.seed))
    return {"status": "ok", "document_level": rows,
            "levels": {"document": "about one pair of checkpoints: the units are the evaluation's "
                                   "documents; Holm within each pair's questions (stats.json families)",
                       "seed": "about the methods: see the headline section (Welch over seeds)"}}


def japanese(groups: list[Group], base_q: dict) -> dict:
    names = (*SCRIPTS, "overall")
    out = {"character_accuracy": {}, "bits_per_char": {},
           "chars": {s: base_q.get(f"chars_{s}") for s in names} if base_q else {}}   # the same text for all
    if base_q:
        out["character_accuracy"]["base"] = {s: an.aggregate({0: base_q.get(f"char_accuracy_{s}")}, base_q.get(f"char_accuracy_{s}" + "_ci")) for s in names}
        out["bits_per_char"]["base"] = {s: an.aggregate({0: base_q.get(f"bits_per_char_{s}")}, base_q.get(f"bits_per_char_{s}" + "_ci")) for s in names}
    for g in groups:
        out["character_accuracy"][g.label] = {s: g.q(f"char_accuracy_{s}") for s in names}
        out["bits_per_char"][g.label] = {s: g.q(f"bits_per_char_{s}") for s in names}
    if len(groups) == 2:
        acc = out["character_accuracy"]
        out["performance_gap"] = {s: _diff(acc[groups[1].label][s]["mean"], acc[groups[0].label][s]["mean"])
                                  for s in names}
        out["performance_gap_direction"] = f"accuracy({groups[1].label}) − accuracy({groups[0].label}); > 0: {groups[1].label} more accurate"
    return {"status": "ok", **out}


def _diff(a, b):
    return a - b if None not in (a, b) else None


def bleu(groups: list[Group], base_q: dict, lora, full) -> dict:
    keys = ("bleu", "chrf", "bleu_1_precision", "bleu_4_precision", "sentence_bleu_mean", "sentence_bleu_std",
            "repeat_4gram_rate", "distinct_1", "distinct_2", "length_ratio", "gen_prompts")
    if not any(g.q("bleu")["n"] for g in groups):
        return dict(NOT_RUN)
    out = {"status": "ok", "groups": {}}
    if base_q.get("bleu") is not None:
        out["groups"]["base"] = {k: an.aggregate({0: base_q.get(k)}, base_q.get(k + "_ci")) for k in keys}
    for g in groups:
        out["groups"][g.label] = {k: g.q(k) for k in keys}
    if lora and full:
        out["performance_ratio"] = an.ratio(lora.q("bleu")["mean"], full.q("bleu")["mean"])
        out["chrf_ratio"] = an.ratio(lora.q("chrf")["mean"], full.q("chrf")["mean"])
        out["ratio_direction"] = "LoRA / full (seed means); < 1: LoRA scores lower"
    return out


SAMPLES_SHOWN = 3   # sample responses per model in the report


def supervised(groups: list[Group], base_q: dict, base_eval: dict | None) -> dict:
    """The supervised task (eval.json `supervised`): BLEU, chrF, exact match and response bits/char
    per model (intervals over seeds with >= 2 seeds, else the run's bootstrap over examples), and the
    first SAMPLES_SHOWN examples' responses of each model (its first seed)."""
    keys = [f"sft_{k}" for k in SFT_KEYS] + ["sft_examples"]
    if not any(g.q("sft_chrf")["n"] for g in groups):
        return dict(NOT_RUN)
    out = {"status": "ok", "definition": "docs/metrics.md#supervised", "groups": {}, "samples": {}}
    evals = {}
    if base_q.get("sft_chrf") is not None:
        out["groups"]["base"] = {k: an.aggregate({0: base_q.get(k)}, base_q.get(k + "_ci")) for k in keys}
        evals["base"] = base_eval
    for g in groups:
        out["groups"][g.label] = {k: g.q(k) for k in keys}
        evals[g.label] = g.runs[0].eval
    for label, ev in evals.items():
        samples = ((ev or {}).get("supervised") or {}).get("samples") or []
        out["samples"][label] = [{k: s[k] for k in ("prompt", "reference", "hypothesis", "exact_match")}
                                 for s in samples[:SAMPLES_SHOWN]]
    return out


def generalization(groups, base_q, base_eval, lora, full) -> dict:
    held = {g.label: {"ja_bits_per_char": g.q("ja_bits_per_char"), "ja_token_ppl": g.q("ja_token_ppl"),
                      "generalization_gap": g.dyn("generalization_gap"),
                      "gain_vs_base_bits_per_char": g.agg(lambda r, g=g: _diff(base_q.get("ja_bits_per_char"),
                                                                             g.quality[r.seed].get("ja_bits_per_char")))}
            for g in groups}
    if base_q:
        held["base"] = {"ja_bits_per_char": an.aggregate({0: base_q.get("ja_bits_per_char")}, base_q.get("ja_bits_per_char" + "_ci")),
                        "ja_token_ppl": an.aggregate({0: base_q.get("ja_token_ppl")}, base_q.get("ja_token_ppl" + "_ci"))}
    out = {"held_out": held}
    doms = cross_domains(next((r.eval for g in groups for r in g.runs if r.eval), None))
    if doms:
        cross = {g.label: {"mean_bits_per_char": g.q("cross_domain_bits_per_char"),
                           "sd_over_domains": g.q("cross_domain_sd_bits_per_char"),
                           "by_domain": {d: g.q(f"domain_{d}_bits_per_char") for d in doms}} for g in groups}
        if base_q:
            cross["base"] = {"mean_bits_per_char": an.aggregate({0: base_q.get("cross_domain_bits_per_char")}, base_q.get("cross_domain_bits_per_char" + "_ci")),
                             "by_domain": {d: an.aggregate({0: base_q.get(f"domain_{d}_bits_per_char")}, base_q.get(f"domain_{d}_bits_per_char" + "_ci")) for d in doms}}
        out["cross_domain"] = {"domains": doms, "groups": cross}
    else:
        out["cross_domain"] = dict(NOT_RUN)
    langs = sorted({k.split("_")[0] for g in groups for s in g.quality for k in g.quality[s]
                    if k.endswith("_retention") and g.quality[s][k] is not None})
    if langs:
        forget = {"langs": langs, "direction": "retention = base bpb / adapted bpb; 1 = no forgetting, < 1 = forgot",
                  "groups": {g.label: {f"{l}_{k}": g.q(f"{l}_{k}") for l in langs for k in ("retention", "bpb_increase")}
                             for g in groups}}
        if base_eval:
            forget["checkpoints"] = {r.name: {"group": g.label, "points": learning_forgetting_points(
                _with_final(r), base_eval, langs=tuple(langs))}
                for g in groups for r in g.runs if r.checkpoints}
        out["catastrophic_forgetting"] = forget
    else:
        out["catastrophic_forgetting"] = dict(NOT_RUN)
    return {"status": "ok", **out}


def _with_final(r: Run) -> list[tuple[int, dict]]:
    """Checkpoint evals plus the final eval when no checkpoint was taken at the last step."""
    steps = {s for s, _ in r.checkpoints}
    final = r.summary.get("steps")
    return r.checkpoints + ([(final, r.eval)] if r.eval and final not in steps else [])


def complexity(groups, base_q, lora, full) -> dict:
    buckets = sorted({k[len("bucket_"):-len("_bits_per_char")] for g in groups for s in g.quality
                      for k in g.quality[s] if k.startswith("bucket_") and g.quality[s][k] is not None})
    if not buckets:
        return dict(NOT_RUN)
    out = {"status": "ok", "buckets": buckets,
           "groups": {g.label: {b: g.q(f"bucket_{b}_bits_per_char") for b in buckets} for g in groups}}
    if base_q:
        out["groups"]["base"] = {b: an.aggregate({0: base_q.get(f"bucket_{b}_bits_per_char")}, base_q.get(f"bucket_{b}_bits_per_char" + "_ci")) for b in buckets}
    if lora and full:
        out["lora_full_retention"] = {b: an.retention(lora.q(f"bucket_{b}_bits_per_char")["mean"],
                                                      full.q(f"bucket_{b}_bits_per_char")["mean"], True)
                                      for b in buckets}
        out["direction"] = "full bits/char / LoRA bits/char per bucket; 1 = parity, < 1 = LoRA needs more bits"
    return out
