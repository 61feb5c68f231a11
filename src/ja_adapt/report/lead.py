"""The report's opening: the answer first (report/answer.py's sections as blocks, render.py).

Every number comes from the results dict and is formatted here (report/fmt.py); a difference is
called resolved only where results.json says so.
"""

from __future__ import annotations

from ja_adapt.report import fmt

NOT_RUN = "Not run: no experiment in the given directories measured this."
SHOW_BYTES = {"peak_mem_bytes"}
SHOW_SECONDS = {"time_per_step_s"}
SHOW_INT = {"params_trainable"}
# the metrics named when a question has no resolved difference
PRIMARY = {"japanese_quality": ["ja_bits_per_char"], "forgetting": ["en_bpb_increase", "zh_bpb_increase"],
           "supervised_task": ["sft_chrf", "sft_bleu"],
           "cost": ["peak_mem_bytes", "time_per_step_s"]}


def unit_of(key: str):
    """The formatter of a headline metric's values (bytes, seconds, counts, plain numbers)."""
    return (fmt.nbytes if key in SHOW_BYTES else fmt.seconds if key in SHOW_SECONDS
            else fmt.integer if key in SHOW_INT else fmt.num)


def _mean_ci(d: dict, unit) -> str:
    """mean ± sd [95% CI] over seeds."""
    if not d or d.get("mean") is None:
        return fmt.DASH
    s = unit(d["mean"])
    if d.get("sd") is not None:
        s += f" ± {unit(d['sd'])}"
    if d.get("ci_low") is not None:
        s += f" [{unit(d['ci_low'])}, {unit(d['ci_high'])}]"
    return s


def _interval(ci: dict | None, unit=fmt.num) -> str:
    return f"[{unit(ci.get('ci_low'))}, {unit(ci.get('ci_high'))}]" if ci else fmt.DASH


def headline_summary(res: dict) -> str:
    """The answer in sentences: resolved differences, or that there are none, with intervals."""
    head = res.get("headline") or {}
    if head.get("status") != "ok":
        return head.get("reason", NOT_RUN) if head else NOT_RUN
    m = head["metrics"]
    n = {k: len(v["seeds"]) for k, v in head["methods"].items()}
    lr = res.get("lr_tuning") or {}
    how = (f"each at its own learning rate chosen on validation loss (LoRA {fmt.num(lr['chosen'].get('lora'))}, "
           f"full {fmt.num(lr['chosen'].get('full'))})" if lr.get("status") == "ok" else "at the configured settings")
    out = [f"LoRA ({head['methods']['lora']['label']}) against full fine-tuning ({head['methods']['full']['label']}), "
           f"{how}, over {n['lora']} and {n['full']} seeds; seed-level 95% intervals (Welch), Holm per question."]
    if gaps := gap_sentence(res):
        out.append(gaps)
    for question, words in (("japanese_quality", "Japanese quality"), ("forgetting", "forgetting of English and Chinese"),
                            ("supervised_task", "the supervised task (held-out responses)"), ("cost", "cost")):
        keys = [k for k in head["families"].get(question, []) if k in m]
        resolved = [k for k in keys if m[k]["resolved"]]
        if resolved:
            named = [k for k in PRIMARY.get(question, []) if k in resolved] or resolved[:1]
            text = "; ".join(f"{m[k]['name']} {'LoRA' if m[k]['better'] == 'lora' else 'full'} better by "
                             f"{unit_of(k)(abs(m[k]['difference']['diff']))} (LoRA − full "
                             f"{_interval(m[k]['difference'], unit_of(k))})" for k in named)
            others = [k for k in resolved if k not in named]
            if others:
                text += "; also resolved: " + ", ".join(
                    f"{m[k]['name']} ({'LoRA' if m[k]['better'] == 'lora' else 'full'} better)" for k in others)
            unresolved = len(keys) - len(resolved)
            out.append(f"{words[0].upper() + words[1:]}: {text}" +
                       (f"; {unresolved} more not resolved" if unresolved else "") + ".")
        elif keys:
            lead_keys = [k for k in PRIMARY.get(question, keys[:1]) if k in keys] or keys[:1]
            out.append(f"{words[0].upper() + words[1:]}: no resolved difference (" + "; ".join(
                f"{m[k]['name']}: LoRA − full {unit_of(k)(m[k]['difference'].get('diff'))}, 95% CI "
                f"{_interval(m[k]['difference'], unit_of(k))}" for k in lead_keys) + ").")
    return " ".join(out)


def lora_name(side: dict) -> str:
    """`LoRA (q,v, r=16)`: a headline side's method and, for the LoRA family, its adapted
    projections and rank (answer.headline's `methods.lora`)."""
    name = "LoRA" if side.get("method", "lora") == "lora" else side["method"]
    t = side.get("targets")
    bits = [(",".join(t) if t in ("qv", "qkvo") else t.replace("_proj", "")) if t else None,
            f"r={side['rank']}" if side.get("rank") is not None else None]
    return f"{name} ({', '.join(b for b in bits if b)})" if any(bits) else name


def lora_configurations(res: dict) -> list[tuple[str, dict]]:
    """(name, headline) of each LoRA configuration compared with full fine-tuning: the headline's,
    then headline_variants' (a name two configurations share gets its arm appended)."""
    heads = [h for h in [res.get("headline") or {}, *(res.get("headline_variants") or {}).values()]
             if h.get("status") == "ok"]
    names = [lora_name(h["methods"]["lora"]) for h in heads]
    return [(f"{n} [{h['methods']['lora']['arm']}]" if names.count(n) > 1 else n, h) for n, h in zip(names, heads)]


def _gap(m: dict, tested: bool) -> str:
    """A headline metric's LoRA − full difference in words, with its interval (or "exact"); stated
    as a difference only when resolved within its tested family, as headline_summary does."""
    d = m["difference"]
    ci = "exact" if d.get("exact") else f"95% CI {_interval(d)}"
    if m["resolved"] and tested:
        return (f"{'LoRA' if m['better'] == 'lora' else 'full'} better by {fmt.num(abs(d['diff']))} "
                f"(LoRA − full {fmt.num(d['diff'])}, {ci})")
    return f"no resolved difference (LoRA − full {fmt.num(d.get('diff'))}, {ci})"


def gap_sentence(res: dict) -> str:
    """Each LoRA configuration's held-out Japanese bits/char gap to full fine-tuning, in one
    sentence, when more than the headline's LoRA was compared ("" otherwise)."""
    if not res.get("headline_variants"):
        return ""
    chosen = (res.get("lr_tuning") or {}).get("chosen") or {}
    parts = []
    for name, h in lora_configurations(res):
        if "ja_bits_per_char" not in h["metrics"]:
            continue
        arm = h["methods"]["lora"]["arm"]
        at = f" at lr {fmt.num(chosen[arm])}" if arm in chosen else ""
        tested = "ja_bits_per_char" in h["families"].get("japanese_quality", [])
        parts.append(f"{name}{at} vs full: {_gap(h['metrics']['ja_bits_per_char'], tested)}")
    return "Held-out Japanese bits/char per LoRA configuration: " + "; ".join(parts) + "." if parts else ""


def _configurations_blocks(res: dict) -> list[tuple]:
    """One row per LoRA configuration against full fine-tuning (headline and headline_variants)."""
    configs = lora_configurations(res) if res.get("headline_variants") else []
    if not configs:
        return []
    rows = []
    for name, h in configs:
        m, p = h["metrics"].get("ja_bits_per_char"), h["metrics"].get("params_trainable")
        d = (m or {}).get("difference") or {}
        rows.append([name, h["methods"]["lora"]["arm"], _mean_ci(p["lora"], fmt.integer) if p else fmt.DASH,
                     _mean_ci(m["lora"], fmt.num) if m else fmt.DASH, _mean_ci(m["full"], fmt.num) if m else fmt.DASH,
                     f"{fmt.num(d.get('diff'))} " + ("(exact)" if d.get("exact") else _interval(d)) if m else fmt.DASH,
                     ({"lora": "LoRA better", "full": "full better"}[m["better"]] if m["resolved"] else "not resolved")
                     if m else fmt.DASH])
    return [("p", "Each LoRA configuration compared against full fine-tuning, by the same rule (held-out "
                  "Japanese bits/char; headline_variants in results.json):"),
            ("table", ["LoRA configuration", "arm", "trainable parameters", "ja bits/char", "full ja bits/char",
                       "LoRA − full [95% CI]", "verdict"], rows)]


def headline_blocks(res: dict, plots: dict) -> list[tuple]:
    head = res.get("headline") or {}
    b = [("h", 2, "The answer: LoRA vs full fine-tuning")]
    if head.get("status") != "ok":
        return b + [("p", headline_summary(res))]
    b.append(("p", f"LoRA here is {lora_name(head['methods']['lora'])}, the group {head['methods']['lora']['label']}. "
                   f"Each cell: mean ± sd [95% t-interval of the mean] over seeds. Difference: LoRA − full "
                   f"with Welch's 95% interval; Holm-adjusted p within its question. {head['rule']}."))
    rows = []
    for k, v in head["metrics"].items():
        unit, d = unit_of(k), v["difference"]
        rows.append([v["name"], _mean_ci(v["lora"], unit), _mean_ci(v["full"], unit),
                     (f"{unit(d.get('diff'))} " + ("(exact)" if d.get("exact") else _interval(d, unit)))
                     if "skipped" not in d else d["skipped"],
                     fmt.num(d.get("p_holm"), 3), v["question"],
                     ({"lora": "LoRA better", "full": "full better"}[v["better"]] if v["resolved"] else "not resolved")])
    b.append(("table", ["metric", "LoRA", "full", "LoRA − full [95% CI]", "Holm p", "question", "verdict"], rows))
    b += _configurations_blocks(res)
    if "learning_vs_forgetting" in plots:
        b.append(("img", plots["learning_vs_forgetting"],
                  "Learning vs forgetting, per seed whose checkpoints were evaluated: Japanese gain against English / Chinese loss at each checkpoint"))
    return b


def base_model_blocks(res: dict, plots: dict | None = None) -> list[tuple]:
    bm = res.get("base_model") or {}
    b = [("h", 2, "The base model")]
    if bm.get("status") != "ok":
        return b + [("p", bm.get("reason", NOT_RUN))]
    b.append(("p", "Is the base a language model of its languages? Per language, on held-out text: "
                   f"bits/char and top-1 token accuracy with 95% document-bootstrap intervals; {bm['definition']}."))
    b.append(("table", ["language", "documents", "characters", "bits/char [95% CI]", "top-1 accuracy [95% CI]",
                        "most frequent argmax token", "its share"],
              [[lang, fmt.integer(v.get("documents")), fmt.integer(v.get("chars")),
                f"{fmt.num(v.get('bits_per_char'))} {_interval(v.get('bits_per_char_ci'))}",
                f"{fmt.share(v.get('top1_accuracy'))} {_interval(v.get('top1_accuracy_ci'))}",
                repr(v.get("argmax_top_token")), fmt.share(v.get("argmax_top_share"))]
               for lang, v in bm["by_lang"].items()]))
    return b + _fertility_blocks(bm.get("fertility") or {}, plots or {})


def _fertility_blocks(fert: dict, plots: dict) -> list[tuple]:
    """How the base tokenizer cuts each held-out set (every method here shares it)."""
    if not fert.get("by_lang"):
        return [("p", f"Tokenizer fertility: {fert.get('reason', NOT_RUN)}.")]
    b = [("p", "Tokenizer fertility of the base tokenizer on the same held-out text (docs/metrics.md#fertility): "
               "characters and UTF-8 bytes per token, and the share of tokens that are only part of a "
               "character (byte pieces). Bits per character, the quality headline, does not depend on "
               "the tokenizer; fertility is what a tokenizer costs in sequence length.")]
    b.append(("table", ["language", "tokens", "chars/token", "bytes/token", "partial-character tokens", "unknown"],
              [[lang, fmt.integer(v.get("tokens")), fmt.num(v.get("chars_per_token")), fmt.num(v.get("bytes_per_token")),
                fmt.share(v.get("partial_char_share")), fmt.share(v.get("unk_share"))]
               for lang, v in fert["by_lang"].items()]))
    b.append(("table", ["Japanese script", "characters", "tokens", "chars/token"],
              [[s, fmt.integer(v.get("chars")), fmt.num(v.get("tokens")), fmt.num(v.get("chars_per_token"))]
               for s, v in fert["scripts"].items()]))
    if "fertility" in plots:
        b.append(("img", plots["fertility"], "Characters per token of the base tokenizer, per language and per Japanese script"))
    return b


def evaluation_sets_blocks(res: dict) -> list[tuple]:
    es = res.get("evaluation_sets") or {}
    b = [("h", 2, "Evaluation sets")]
    if es.get("status") != "ok":
        return b + [("p", NOT_RUN)]
    b.append(("p", f"Characters and documents evaluated per language (the target is at least "
                   f"{fmt.integer(es['min_chars'])} characters per language), after decontamination."))
    b.append(("table", ["language", "documents", "characters", f"≥ {fmt.integer(es['min_chars'])}"],
              [[lang, fmt.integer(v["documents"]), fmt.integer(v["chars"]), "yes" if v["at_least_min"] else "NO"]
               for lang, v in es["by_lang"].items()]))
    deco = es.get("decontamination") or {}
    if deco.get("rule"):
        r = deco["rule"]
        b.append(("p", f"Decontamination: an evaluation document is removed when at least "
                       f"{fmt.share(r['threshold'], 0)} of its distinct character {r['ngram']}-grams occur in one "
                       f"training document ({r['normalise']}). Removed {fmt.integer(deco['eval']['removed_docs'])} of "
                       f"{fmt.integer(deco['eval']['docs'])} documents ({fmt.integer(deco['eval']['removed_chars'])} "
                       "characters)."))
        b.append(("table", ["training set", "training documents", "training characters", "evaluation documents removed",
                            "share of kept n-grams seen in it"],
                  [[name, fmt.integer(v.get("train_docs")), fmt.integer(v.get("train_chars")),
                    fmt.integer(v.get("removed_docs")), fmt.share(v.get("kept_ngrams_seen"))]
                   for name, v in deco["train_sets"].items()]))
    elif deco:
        b.append(("p", f"Decontamination: {deco.get('status', 'not recorded')}."))
    return b


def lr_tuning_blocks(res: dict, plots: dict) -> list[tuple]:
    t = res.get("lr_tuning") or {}
    b = [("h", 2, "Learning rate per method")]
    if t.get("status") != "ok":
        return b + [("p", t.get("reason", NOT_RUN))]
    b.append(("p", f"Each method's {t['key']} was chosen from its own grid by {t['selection']}; the other seeds "
                   "then trained at the choice. Held-out bits/char of each grid point (seed 0) with its 95% "
                   "document-bootstrap interval:"))
    for m, pts in t["points"].items():
        b.append(("table", [f"{m}: {t['key']}", "final validation loss", "held-out ja bits/char [95% CI]", "chosen"],
                  [[fmt.num(p["value"]), fmt.num(p["val_loss"]),
                    f"{fmt.num(p['ja_bits_per_char'])} {_interval(p.get('ja_bits_per_char_ci'))}",
                    "chosen" + (" (edge of the grid)" if t["at_grid_edge"].get(m) else "")
                    if p["value"] == t["chosen"][m] else ""] for p in pts]))
    if "lr_tuning" in plots:
        b.append(("img", plots["lr_tuning"], "Validation loss over each method's learning-rate grid"))
    rows = []
    if t.get("at_chosen"):
        rows.append(["each method's own choice", *_diff_cells(t["at_chosen"])])
    rows += [[f"shared {t['key']} = {fmt.num(s['value'])}", *_diff_cells(s)] for s in t["at_shared_values"]]
    if rows:
        b.append(("p", "Does the conclusion change at a shared rate? LoRA − full held-out bits/char (seed 0, "
                       "char-weighted, 95% document-bootstrap interval):"))
        b.append(("table", ["setting", "LoRA − full", "95% CI", "verdict"], rows))
        ch = t.get("conclusion_changes_at_shared_value")
        if ch is not None:
            b.append(("p", "At a shared rate the verdict " + ("differs from" if ch else "is the same as")
                           + " the verdict at each method's own rate."))
    return b


def _diff_cells(d: dict) -> list[str]:
    if "diff" not in d:
        return [fmt.DASH, fmt.DASH, d.get("skipped", "")]
    verdict = ({"lora": "LoRA better", "full": "full better"}[d["better"]] if d["resolved"] else "not resolved")
    return [fmt.num(d["diff"]), _interval(d), verdict]
