"""Paired statistics of two models evaluated on the same documents and prompts (document level).

docs/metrics.md#statistics. Everything here is about one pair of checkpoints (`level: "document"`):
the units are the evaluation's documents and prompts. Claims about methods need seeds
(stats.seed_compare, `level: "seed"`). Holm families are formed per question, and a test that
cannot reach p < 0.05 at its n is reported as underpowered and is no member of any family.
"""

from __future__ import annotations

import numpy as np

from ja_adapt.core.errors import UserError
from ja_adapt.evaluate import buckets as bk
from ja_adapt.evaluate import scripts as sc
from ja_adapt.evaluate.downstream_stats import downstream_compare
from ja_adapt.evaluate.stats import bleu_chrf_paired_bootstrap, corpus_compare, holm_family, paired_compare

DOCS = "docs/metrics.md"


def _paired_docs(a: dict, b: dict, key: str) -> tuple[list[dict], list[dict]]:
    da, db = a["likelihood"]["by_group"][key]["per_doc"], b["likelihood"]["by_group"][key]["per_doc"]
    if len(da) != len(db) or any(x["chars"] != y["chars"] for x, y in zip(da, db)):
        raise UserError(
            f"eval results, group {key}: the two evaluations scored different documents; "
            "evaluate both models on the same corpus"
        )
    return da, db


def doc_compare(docs_a: list[dict], docs_b: list[dict], *, resamples: int, seed: int) -> dict:
    """Both document-level views of bits/char on the same documents (diff = a - b): per-document
    tests (each document counts once: Wilcoxon, paired t, mean difference with bootstrap CI) and,
    under `char_weighted`, the difference of corpus bits/char with a paired document-bootstrap CI."""
    kw = {"resamples": resamples, "seed": seed}
    bpc = [np.array([d["bits_per_char"] for d in docs], dtype=np.float64) for docs in (docs_a, docs_b)]
    out = paired_compare(*bpc, **kw)
    if docs_a and all("nll" in d for d in docs_a + docs_b):
        out["char_weighted"] = corpus_compare(
            [d["nll"] for d in docs_a], [d["nll"] for d in docs_b], [d["chars"] for d in docs_a], **kw
        )
    return out


def compare_models(results_a: dict, results_b: dict, cfg) -> dict:
    """Paired statistics of model a against model b evaluated on the same documents (eval.json
    contents; cfg: EvalConfig).

    bits_per_char: per shared group, per language, and for the target language's held-out (trained
    groups) and cross-domain pools (doc_compare; diff = a - b, < 0: a better). generation: BLEU /
    chrF paired bootstrap (b against baseline a). families: Holm per question (japanese_quality,
    forgetting, per_domain). scripts / buckets: ratios a / b. downstream (when both ran lm-eval
    tasks): accuracy intervals, McNemar's test and Holm over the tasks (downstream_stats.py).
    """
    kw = {"resamples": cfg.bootstrap_resamples, "seed": cfg.seed}
    target = cfg.target_lang
    ga, gb = results_a["likelihood"]["by_group"], results_b["likelihood"]["by_group"]
    shared = sorted(set(ga) & set(gb))
    docs = {k: _paired_docs(results_a, results_b, k) for k in shared}
    lang_of = {k: k.split("/", 1)[0] for k in shared}

    def pooled(keys):
        return doc_compare([d for k in keys for d in docs[k][0]], [d for k in keys for d in docs[k][1]], **kw)

    bpc = {
        "definition": f"{DOCS}#statistics",
        "by_group": {k: pooled([k]) for k in shared},
        "by_lang": {lang: pooled([k for k in shared if lang_of[k] == lang]) for lang in sorted(set(lang_of.values()))},
    }
    own = [k for k in shared if lang_of[k] == target]
    # held out = trained in both evaluations (both carry the flags of the split they were run against)
    held = [k for k in own if ga[k].get("trained") and gb[k].get("trained")]
    cross = [k for k in own if k not in held]
    if held:
        bpc["held_out"] = {"groups": held, **pooled(held)}
    if cross:
        bpc["cross_domain"] = {"groups": cross, **pooled(cross)}
    if target in bpc["by_lang"]:
        bpc[target] = bpc["by_lang"][target]  # older readers: the pooled target-language test
    out = {
        "definition": f"{DOCS}#statistics",
        "level": "document",
        "direction": "diff = a - b; bits: < 0 means a is better",
        "same_tokenizer": results_a["tokenizer"]["sha256"] == results_b["tokenizer"]["sha256"],
        "bits_per_char": bpc,
        "generation": _generation(results_a, results_b, kw),
        "supervised": supervised_compare(results_a, results_b, kw),
    }
    out["families"] = _families(bpc, out["generation"], cfg, own)
    out["scripts"] = _script_ratios(results_a.get("scripts"), results_b.get("scripts"))
    if results_a.get("buckets") and results_b.get("buckets"):
        out["buckets"] = bk.bucket_ratios(results_a["buckets"], results_b["buckets"])
    if (downstream := downstream_compare(results_a, results_b, cfg)) is not None:
        out["downstream"] = downstream
    return out


def _generation(results_a: dict, results_b: dict, kw: dict) -> dict:
    sa = (results_a.get("generation") or {}).get("samples", [])
    sb = (results_b.get("generation") or {}).get("samples", [])
    if not sa or [s["reference"] for s in sa] != [s["reference"] for s in sb]:
        return {"skipped": "no generation samples with identical prompts in both results"}
    return bleu_chrf_paired_bootstrap(
        [s["hypothesis"] for s in sa], [s["hypothesis"] for s in sb], [s["reference"] for s in sa], **kw
    )


def supervised_compare(results_a: dict, results_b: dict, kw: dict) -> dict:
    """Paired tests on the same supervised examples, overall and per domain (b against baseline a):
    BLEU / chrF (sacrebleu's paired bootstrap), exact match (paired bootstrap of the rate
    difference b - a) and response bits/char (paired example bootstrap, a - b)."""
    sa = (results_a.get("supervised") or {}).get("samples", [])
    sb = (results_b.get("supervised") or {}).get("samples", [])
    key = [(s["prompt"], s["reference"]) for s in sa]
    if not sa or key != [(s["prompt"], s["reference"]) for s in sb]:
        return {"skipped": "no supervised samples with identical examples in both results"}

    def pair(idx):
        a, b = [sa[i] for i in idx], [sb[i] for i in idx]
        out = bleu_chrf_paired_bootstrap(
            [s["hypothesis"] for s in a], [s["hypothesis"] for s in b], [s["reference"] for s in a], **kw
        )
        if len(idx) > 1:
            em = paired_compare([s["exact_match"] for s in b], [s["exact_match"] for s in a], **kw)
            out["exact_match"] = {
                "a": em["mean_b"],
                "b": em["mean_a"],
                "diff_b_minus_a": em["mean_diff"],
                "ci_low": em["ci_low"],
                "ci_high": em["ci_high"],
                "n": len(idx),
            }
        out["response_bits_per_char"] = corpus_compare(
            [s["nll"] for s in a], [s["nll"] for s in b], [s["chars"] for s in a], **kw
        )
        return out

    domains = sorted({s["domain"] for s in sa})
    return {
        "definition": f"{DOCS}#supervised",
        "unit": "example",
        "direction": "BLEU / chrF / exact match: b - a; bits/char: a - b",
        "overall": pair(range(len(sa))),
        "by_domain": {d: pair([i for i, s in enumerate(sa) if s["domain"] == d]) for d in domains},
    }


def _families(bpc: dict, gen: dict, cfg, own: list[str]) -> dict:
    """Holm families, one per question; members are the tests that ran (underpowered ones are
    listed under not_members). Bits/char tests are the per-document Wilcoxon signed-rank."""
    t = cfg.target_lang
    quality = {
        f"{pool} {t} bits/char (Wilcoxon, per document)": bpc[pool]["wilcoxon"]
        for pool in ("held_out", "cross_domain")
        if pool in bpc
    }
    for m in ("bleu", "chrf"):
        if m in gen:
            quality[f"{m} (sacrebleu paired bootstrap)"] = gen[m]
    forgetting = {
        f"{lang} bits/char (Wilcoxon, per document)": bpc["by_lang"][lang]["wilcoxon"]
        for lang in cfg.forgetting_langs
        if lang in bpc["by_lang"]
    }
    domains = {f"{k} bits/char (Wilcoxon, per document)": bpc["by_group"][k]["wilcoxon"] for k in own}
    return {
        f"{'japanese' if t == 'ja' else t}_quality": holm_family(
            f"is one model better on the adapted language ({t})?", quality
        ),
        "forgetting": holm_family("does one model keep the other languages better?", forgetting),
        "per_domain": holm_family(
            f"where ({t} domains) do the models differ? (descriptive)", domains, descriptive=True
        ),
    }


def _script_ratios(a: dict | None, b: dict | None) -> dict:
    out = {
        "direction": "bits_per_char_ratio = a / b (> 1: a needs more bits); accuracy_gap = b - a (> 0: b more accurate)"
    }
    for name in (*sc.SCRIPTS, "overall"):
        x, y = (a or {}).get("overall", {}).get(name), (b or {}).get("overall", {}).get(name)
        if not x or not y:
            continue
        out[name] = {
            "bits_per_char_ratio": x["bits_per_char"] / y["bits_per_char"]
            if x["bits_per_char"] and y["bits_per_char"]
            else None,
            "accuracy_gap": y["char_accuracy"] - x["char_accuracy"]
            if None not in (x["char_accuracy"], y["char_accuracy"])
            else None,
        }
    return out
