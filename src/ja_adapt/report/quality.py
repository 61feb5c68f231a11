"""Quality numbers read from eval.json (evaluate.run.evaluate_model) and paired statistics.

Statistics are never computed here: document-level ones are read from OUT/stats.json (written by
experiments.write_stats with evaluate.run.compare_models); a pair it lacks is reported as not run.
"""

from __future__ import annotations

from ja_adapt.evaluate.scripts import SCRIPTS

# Flat quality metric → (lower is better?, readable name). The one list the report iterates over.
METRICS = {
    "ja_bits_per_char": (True, "Japanese held-out bits/char"),
    "ja_bits_per_byte": (True, "Japanese held-out bits/byte"),
    "ja_token_ppl": (True, "Japanese held-out token perplexity"),
    "cross_domain_bits_per_char": (True, "cross-domain Japanese bits/char (mean over domains)"),
    "char_accuracy_overall": (False, "character accuracy (all scripts)"),
    **{f"char_accuracy_{s}": (False, f"{s} character accuracy") for s in SCRIPTS if s != "other"},
    "bleu": (False, "BLEU (ja-mecab)"),
    "chrf": (False, "chrF"),
    "en_retention": (False, "English retention (base bpb / adapted bpb)"),
    "zh_retention": (False, "Chinese retention (base bpb / adapted bpb)"),
}


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def quality(ev: dict | None, target_lang: str = "ja") -> dict:
    """Flat {metric: value} of one eval.json (missing sections give None)."""
    if not ev:
        return {}
    held = _get(ev, "domains", "held_out") or _get(ev, "likelihood", "by_lang", target_lang) or {}
    out = {"ja_bits_per_char": held.get("bits_per_char"), "ja_bits_per_byte": held.get("bits_per_byte"),
           "ja_token_ppl": held.get("token_ppl"),
           "cross_domain_bits_per_char": _get(ev, "domains", "cross_domain_mean_bits_per_char"),
           "cross_domain_sd_bits_per_char": _get(ev, "domains", "cross_domain_std_bits_per_char")}
    for s in (*SCRIPTS, "overall"):
        out[f"char_accuracy_{s}"] = _get(ev, "scripts", "overall", s, "char_accuracy")
        out[f"bits_per_char_{s}"] = _get(ev, "scripts", "overall", s, "bits_per_char")
    gen = ev.get("generation") or {}
    if gen.get("n"):
        for k in ("bleu", "chrf", "bleu_1_precision", "bleu_4_precision", "sentence_bleu_mean",
                  "sentence_bleu_std", "n"):
            out[k if k != "n" else "gen_prompts"] = gen.get(k)
    for lang, v in (_get(ev, "forgetting", "by_lang") or {}).items():
        out[f"{lang}_retention"] = v.get("retention")
        out[f"{lang}_bpb_increase"] = v.get("bpb_increase")
        out[f"{lang}_bits_per_byte"] = v.get("adapted_bits_per_byte")
    for b, v in (_get(ev, "buckets", "overall") or {}).items():
        out[f"bucket_{b}_bits_per_char"] = v.get("bits_per_char")
    for dom, v in (_get(ev, "domains", "by_domain") or {}).items():
        out[f"domain_{dom}_bits_per_char"] = v.get("bits_per_char")
    return out


def cross_domains(ev: dict | None) -> list[str]:
    return sorted(d for d, v in (_get(ev, "domains", "by_domain") or {}).items() if not v.get("trained"))


def _find(stats: dict | None, a: str, b: str):
    """compare_models output for runs a, b from stats.json (either order); (stats, flipped)."""
    for entry in (stats or {}).get("pairs", []) + (stats or {}).get("vs_base", []):
        if (entry.get("a"), entry.get("b")) == (a, b):
            return entry.get("stats"), False
        if (entry.get("a"), entry.get("b")) == (b, a):
            return entry.get("stats"), True
    return None, False


def compare(stats: dict | None, a_name: str, b_name: str) -> tuple[dict | None, str, str]:
    """The stats.json entry of runs a, b (compare_models output; None when absent). Returns
    (stats, a, b) in the order the statistics were computed in (diff = a - b)."""
    found, flipped = _find(stats, a_name, b_name)
    return found, (b_name if flipped else a_name), (a_name if flipped else b_name)


def doc_test_row(cmp: dict | None, a: str, b: str, seed, target_lang: str = "ja") -> dict:
    """One row of the document-level table: paired per-document bits/char, a vs b (cmp None: the
    experiments' stats.json has no such pair, the row says so)."""
    row = {"a": a, "b": b, "seed": seed, "metric": f"{target_lang} bits/char per document",
           "direction": "diff = a - b; < 0 means a is better"}
    if cmp is None:
        return {**row, "skipped": "not in stats.json: compare the two in one `ja-adapt compare` / `sweep`"}
    t = _get(cmp, "bits_per_char", target_lang) or {}
    for k in ("n", "mean_a", "mean_b", "mean_diff", "sd_diff", "cohens_dz", "ci_low", "ci_high",
              "ci_confidence", "wilcoxon_p", "ttest_p", "ttest_t", "skipped"):
        if k in t:
            row[k] = t[k]
    gen = cmp.get("generation") or {}
    for m in ("bleu", "chrf"):
        if m in gen:
            row[f"{m}_diff_b_minus_a"] = gen[m]["diff_b_minus_a"]
            row[f"{m}_p"] = gen[m]["p_value"]
    return row
