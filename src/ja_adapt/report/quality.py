"""Quality numbers read from eval.json (evaluate.run.evaluate_model) and paired statistics.

Statistics are never computed here: document-level ones are read from OUT/stats.json (written by
experiments.write_stats with evaluate.compare.compare_models); a pair it lacks is reported as not run.
"""

from __future__ import annotations

from ja_adapt.evaluate.scripts import SCRIPTS
from ja_adapt.report.metrics import GENERATION, METRICS, SUPERVISED


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def quality(ev: dict | None, target_lang: str = "ja") -> dict:
    """Flat {metric: value} of one eval.json (missing sections give None), and {metric}_ci: the
    evaluation's own 95% bootstrap interval (over documents or prompts) where it has one."""
    if not ev:
        return {}
    out = {
        **_held_out(ev, target_lang),
        **_scripts(ev),
        **_generation(ev),
        **_supervised(ev),
        **_per_language(ev),
        **_per_bucket_and_domain(ev),
    }
    return {**out, **_registered(ev, out)}


def _registered(ev: dict, found: dict) -> dict:
    """The registered metrics (metrics.METRICS) the sections above do not read, from their eval_path
    and ci_path: adding a metric eval.json already holds is its registry entry."""
    scored = bool((ev.get("generation") or {}).get("n"))  # continuations count only when prompts were
    out = {}
    for m in METRICS.values():
        if m.source != "quality" or m.key in found or (m.eval_path[0] == "generation" and not scored):
            continue
        if (v := _get(ev, *m.eval_path)) is not None:
            out[m.key], out[f"{m.key}_ci"] = v, _get(ev, *m.ci_path) if m.ci_path else None
    return out


def _held_out(ev: dict, target_lang: str) -> dict:
    """Held-out target-language likelihood (domains.held_out, else likelihood.by_lang) and cross-domain."""
    held = _get(ev, "domains", "held_out") or _get(ev, "likelihood", "by_lang", target_lang) or {}
    return {
        "ja_bits_per_char_ci": held.get("bits_per_char_ci"),
        "ja_bits_per_char": held.get("bits_per_char"),
        "ja_bits_per_byte": held.get("bits_per_byte"),
        "ja_token_ppl": held.get("token_ppl"),
        "cross_domain_bits_per_char": _get(ev, "domains", "cross_domain_mean_bits_per_char"),
        "cross_domain_sd_bits_per_char": _get(ev, "domains", "cross_domain_std_bits_per_char"),
    }


def _scripts(ev: dict) -> dict:
    out = {}
    for s in (*SCRIPTS, "overall"):
        out[f"char_accuracy_{s}"] = _get(ev, "scripts", "overall", s, "char_accuracy")
        out[f"char_accuracy_{s}_ci"] = _get(ev, "scripts", "overall", s, "char_accuracy_ci")
        out[f"chars_{s}"] = _get(ev, "scripts", "overall", s, "chars")
        out[f"bits_per_char_{s}"] = _get(ev, "scripts", "overall", s, "bits_per_char")
        out[f"bits_per_char_{s}_ci"] = _get(ev, "scripts", "overall", s, "bits_per_char_ci")
    return out


def _generation(ev: dict) -> dict:
    gen = ev.get("generation") or {}
    if not gen.get("n"):
        return {}
    out = {}
    for c in GENERATION:
        out[c.key] = gen.get(c.source)
        out[f"{c.source}_ci"] = gen.get(f"{c.source}_ci")
    return out


def _supervised(ev: dict) -> dict:
    sft = _get(ev, "supervised", "overall") or {}
    if not sft:
        return {}
    out = {"sft_examples": _get(ev, "supervised", "n")}
    for c in SUPERVISED:
        if c.source:
            out[c.key], out[f"{c.key}_ci"] = sft.get(c.source), sft.get(f"{c.source}_ci")
    return out


def _per_language(ev: dict) -> dict:
    """Forgetting per language: retention, bits/byte increase and the adapted bits/byte."""
    out = {}
    for lang, v in (_get(ev, "forgetting", "by_lang") or {}).items():
        out[f"{lang}_retention"] = v.get("retention")
        out[f"{lang}_bpb_increase"] = v.get("bpb_increase")
        out[f"{lang}_bits_per_byte"] = v.get("adapted_bits_per_byte")
    return out


def _per_bucket_and_domain(ev: dict) -> dict:
    out = {}
    for b, v in (_get(ev, "buckets", "overall") or {}).items():
        out[f"bucket_{b}_bits_per_char"] = v.get("bits_per_char")
    for dom, v in (_get(ev, "domains", "by_domain") or {}).items():
        out[f"domain_{dom}_bits_per_char"] = v.get("bits_per_char")
        out[f"domain_{dom}_bits_per_char_ci"] = v.get("bits_per_char_ci")
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
    """One row of the document-level table (about one pair of checkpoints): held-out Japanese
    bits/char, a vs b, char-weighted difference with its document-bootstrap CI and the per-document
    Wilcoxon test (or why it was not run) with its Holm-adjusted p in the japanese_quality family
    (cmp None: the experiments' stats.json has no such pair, the row says so)."""
    row = {
        "a": a,
        "b": b,
        "seed": seed,
        "level": "document",
        "metric": f"{target_lang} held-out bits/char",
        "direction": "diff = a - b; < 0 means a is better",
    }
    if cmp is None:
        return {**row, "skipped": "not in stats.json: compare the two in one `ja-adapt compare` / `sweep`"}
    bpc = _get(cmp, "bits_per_char") or {}
    t = bpc.get("held_out") or bpc.get(target_lang) or {}
    cw = t.get("char_weighted") or {}
    row.update(
        {
            "n": t.get("n"),
            "diff": cw.get("diff"),
            "ci_low": cw.get("ci_low"),
            "ci_high": cw.get("ci_high"),
            "weighting": cw.get("weighting"),
            "per_document_mean_diff": t.get("mean_diff"),
            "cohens_dz": t.get("cohens_dz"),
        }
    )
    w = t.get("wilcoxon") or {}
    row["wilcoxon_p"] = w.get("p")
    if w.get("underpowered"):
        row["wilcoxon"] = f"underpowered (n = {w.get('n')}, min attainable p = {w.get('min_attainable_p'):.3g})"
    fam = (_get(cmp, "families") or {}).get(f"{'japanese' if target_lang == 'ja' else target_lang}_quality") or {}
    row["wilcoxon_p_holm"] = next((p for k, p in (fam.get("p_holm") or {}).items() if k.startswith("held_out")), None)
    gen = cmp.get("generation") or {}
    for m in ("bleu", "chrf"):
        if m in gen:
            row[f"{m}_diff_b_minus_a"] = gen[m].get("diff_b_minus_a")
            row[f"{m}_p"] = gen[m].get("p_value", gen[m].get("p"))
    return row
