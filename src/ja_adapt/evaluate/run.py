"""Evaluation orchestration: every metric of one model into eval.json, paired comparison of two.

evaluate_model runs one likelihood pass per (lang, domain) group and derives from it the corpus,
per-script, per-domain, forgetting and complexity-bucket metrics; generation is the only other
model call. Every metric carries a `definition` id into docs/metrics.md and its sample counts.
The `ja-adapt eval` command line over these functions is cli/evaluate.py.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from ja_adapt.config import EvalConfig
from ja_adapt.data.documents import Document
from ja_adapt.data.tokens import tokenizer_fingerprint
from ja_adapt.errors import UserError
from ja_adapt.evaluate import buckets as bk
from ja_adapt.evaluate import scripts as sc
from ja_adapt.evaluate.forgetting import forgetting
from ja_adapt.evaluate.generation import evaluate_generation
from ja_adapt.evaluate.likelihood import bits_per, score_documents, summarize
from ja_adapt.evaluate.stats import bleu_chrf_paired_bootstrap, holm, paired_compare
from ja_adapt.jsonio import write_json

DOCS = "docs/metrics.md"
SCHEMA = "ja-adapt-eval/1"
PPL_NOTE = ("token_ppl depends on the tokenizer: compare it only between models that share one "
            "(same tokenizer.sha256); bits_per_char and bits_per_byte compare across tokenizers")


def group_documents(groups) -> dict[str, list[Document]]:
    """{"lang/domain": documents} from a document list or any grouping of documents (regrouped by
    each document's own lang and domain, in input order)."""
    docs = [d for g in groups.values() for d in g] if isinstance(groups, dict) else list(groups)
    out: dict[str, list[Document]] = {}
    for d in docs:
        if "/" in d.lang:
            raise UserError(f"{d.source or 'document'}: lang '{d.lang}' contains '/'; use an ISO code")
        out.setdefault(f"{d.lang}/{d.domain}", []).append(d)
    return dict(sorted(out.items()))


def tokenizer_record(tokenizer) -> dict:
    """Which tokenizer scored the text (token_ppl compares only between equal sha256)."""
    return {"name_or_path": str(getattr(tokenizer, "name_or_path", "")), "vocab_size": len(tokenizer),
            "sha256": tokenizer_fingerprint(tokenizer), "note": PPL_NOTE}


def _pool(summaries: list[dict]) -> dict:
    """Corpus-level ratios of several groups: sums first, then ratios (never a mean of ratios)."""
    nll = sum(s["nll_sum_nats"] for s in summaries)
    tok, ch, by = (sum(s[k] for s in summaries) for k in ("tokens", "chars", "bytes"))
    return {"definition": f"{DOCS}#likelihood", "groups": len(summaries),
            "documents": sum(s["documents"] for s in summaries), "nll_sum_nats": nll,
            "tokens": tok, "chars": ch, "bytes": by,
            "token_ppl": math.exp(nll / tok) if tok else None,
            "bits_per_char": bits_per(nll, ch), "bits_per_byte": bits_per(nll, by)}


def evaluate_model(model, tokenizer, groups, cfg: EvalConfig, *, trained_domains=(),
                   base_results: dict | None = None) -> dict:
    """All metrics of one model (the eval.json content).

    groups: documents (a list, or a dict of lists) regrouped by (lang, domain); trained_domains:
    domains of the training corpus (the others are cross-domain); base_results: the base model's
    evaluate_model output, for forgetting. Sections: likelihood, scripts, generation, domains,
    forgetting, buckets.
    """
    cfg.check()
    groups = group_documents(groups)
    if not groups:
        raise UserError("eval: no documents to evaluate; pass a corpus with --data")
    trained = sorted(set(trained_domains))
    lik, script_groups, bucket_domains = {}, {}, {}
    gen_docs: list[Document] = []
    for key, docs in groups.items():
        lang, domain = key.split("/", 1)
        target = lang == cfg.target_lang
        scores = score_documents(model, tokenizer, docs, max_length=cfg.max_length, stride=cfg.stride,
                                 batch_size=cfg.batch_size, chunk_size=cfg.chunk_size, want_argmax=target)
        lik[key] = {"definition": f"{DOCS}#likelihood", "lang": lang, "domain": domain,
                    "trained": domain in trained, **summarize(scores, len(docs) - len(scores))}
        if not target:
            continue
        gen_docs += docs
        tally = sc.new_tally()
        btally = bucket_domains.setdefault(domain, bk.new_tally())
        for s in scores:
            bits = sc.tally_document(tally, s.doc.text, s.spans, s.nll, s.argmax == s.token_ids)
            bk.tally_document(btally, s.doc.text, bits, cfg.buckets)
        script_groups[key] = tally
    by_lang = {lang: _pool([v for v in lik.values() if v["lang"] == lang])
               for lang in sorted({v["lang"] for v in lik.values()})}
    results = {
        "schema": SCHEMA, "definitions": DOCS, "config": dataclasses.asdict(cfg),
        "tokenizer": tokenizer_record(tokenizer),
        "likelihood": {"definition": f"{DOCS}#likelihood-protocol", "note": PPL_NOTE,
                       "by_group": lik, "by_lang": by_lang},
        "scripts": _scripts_section(script_groups),
        "generation": _generation_section(model, tokenizer, gen_docs, cfg),
        "domains": _domains_section(lik, trained, cfg.target_lang),
        "buckets": _buckets_section(bucket_domains, cfg),
    }
    results["forgetting"] = forgetting(results, base_results, tuple(cfg.forgetting_langs))
    return results


def _merge(tallies, new_tally=sc.new_tally) -> dict:
    """The sum of per-group tallies ({class: {count: value}}, scripts or buckets)."""
    total = new_tally()
    for t in tallies:
        for script, counts in t.items():
            for k, v in counts.items():
                total[script][k] += v
    return total


def _scripts_section(script_groups: dict) -> dict:
    return {"definition": f"{DOCS}#per-script-metrics", "normalization": "none (characters as written)",
            "bits_definition": f"{DOCS}#per-script-bits-per-character",
            "accuracy_definition": f"{DOCS}#character-accuracy",
            "overall": sc.summarize_tally(_merge(list(script_groups.values()))),
            "by_group": {k: sc.summarize_tally(t) for k, t in script_groups.items()}}


def _generation_section(model, tokenizer, docs, cfg: EvalConfig) -> dict:
    if cfg.gen_prompts == 0:
        return {"definition": f"{DOCS}#generation", "n": 0, "skipped": "eval.gen_prompts = 0"}
    out = evaluate_generation(model, tokenizer, docs, n_prompts=cfg.gen_prompts,
                              prefix_chars=cfg.gen_prefix_chars, ref_chars=cfg.gen_ref_chars,
                              max_new_tokens=cfg.gen_max_new_tokens, seed=cfg.seed)
    return {"definition": f"{DOCS}#generation", "scale": "0-100 (sacrebleu)", **out}


def _domains_section(lik: dict, trained: list[str], lang: str) -> dict:
    own = [v for v in lik.values() if v["lang"] == lang]
    ind, cross = [v for v in own if v["trained"]], [v for v in own if not v["trained"]]
    cross_bpc = [v["bits_per_char"] for v in cross if v["bits_per_char"] is not None]
    return {"definition": f"{DOCS}#held-out-and-cross-domain", "lang": lang, "trained_domains": trained,
            "held_out": _pool(ind) if ind else None, "cross_domain": _pool(cross) if cross else None,
            "cross_domain_mean_bits_per_char": float(np.mean(cross_bpc)) if cross_bpc else None,
            "cross_domain_std_bits_per_char": float(np.std(cross_bpc, ddof=1)) if len(cross_bpc) > 1 else None,
            "by_domain": {v["domain"]: {"trained": v["trained"], "documents": v["documents"],
                                        "bits_per_char": v["bits_per_char"],
                                        "bits_per_byte": v["bits_per_byte"]} for v in own}}


def _buckets_section(bucket_domains: dict, cfg: EvalConfig) -> dict:
    return {"definition": f"{DOCS}#complexity-buckets", "rule": dataclasses.asdict(cfg.buckets),
            "overall": bk.summarize_tally(_merge(bucket_domains.values(), bk.new_tally)),
            "by_domain": {d: bk.summarize_tally(t) for d, t in sorted(bucket_domains.items())}}


# ---- comparing two evaluated models ---------------------------------------------------------------

def _paired_docs(a: dict, b: dict, key: str) -> tuple[np.ndarray, np.ndarray]:
    da, db = a["likelihood"]["by_group"][key]["per_doc"], b["likelihood"]["by_group"][key]["per_doc"]
    if len(da) != len(db) or any(x["chars"] != y["chars"] for x, y in zip(da, db)):
        raise UserError(f"eval results, group {key}: the two evaluations scored different documents; "
                        "evaluate both models on the same corpus")
    return (np.array([x["bits_per_char"] for x in da]), np.array([y["bits_per_char"] for y in db]))


def compare_models(results_a: dict, results_b: dict, cfg: EvalConfig) -> dict:
    """Paired statistics of model a against model b evaluated on the same documents.

    Per-document bits per character (diff = a - b; < 0: a better) per shared group and pooled over the
    target language; BLEU/chrF by sacrebleu's paired bootstrap (b against baseline a); Holm-adjusted
    p-values over all the tests here; per-script and per-bucket ratios a / b.
    """
    kw = {"resamples": cfg.bootstrap_resamples, "seed": cfg.seed}
    shared = sorted(set(results_a["likelihood"]["by_group"]) & set(results_b["likelihood"]["by_group"]))
    out = {"definition": f"{DOCS}#statistics", "direction": "diff = a - b; bits: < 0 means a is better",
           "same_tokenizer": results_a["tokenizer"]["sha256"] == results_b["tokenizer"]["sha256"],
           "bits_per_char": {"by_group": {}}}
    pooled_a, pooled_b = [], []
    for key in shared:
        xa, xb = _paired_docs(results_a, results_b, key)
        out["bits_per_char"]["by_group"][key] = paired_compare(xa, xb, **kw)
        if key.split("/", 1)[0] == cfg.target_lang:
            pooled_a.append(xa)
            pooled_b.append(xb)
    if pooled_a:
        out["bits_per_char"][cfg.target_lang] = paired_compare(np.concatenate(pooled_a),
                                                               np.concatenate(pooled_b), **kw)
    ga, gb = results_a.get("generation", {}), results_b.get("generation", {})
    sa, sb = ga.get("samples", []), gb.get("samples", [])
    if sa and [s["reference"] for s in sa] == [s["reference"] for s in sb]:
        out["generation"] = bleu_chrf_paired_bootstrap([s["hypothesis"] for s in sa],
                                                       [s["hypothesis"] for s in sb],
                                                       [s["reference"] for s in sa], **kw)
    else:
        out["generation"] = {"skipped": "no generation samples with identical prompts in both results"}
    family = {f"bits_per_char {k} (wilcoxon)": v.get("wilcoxon_p")
              for k, v in out["bits_per_char"]["by_group"].items()}
    for m in ("bleu", "chrf"):
        if m in out["generation"]:
            family[f"{m} (paired bootstrap)"] = out["generation"][m]["p_value"]
    family = {k: p for k, p in family.items() if p is not None}
    out["holm"] = {"definition": f"{DOCS}#holm", "tests": len(family),
                   "p": family, "p_holm": dict(zip(family, holm(list(family.values()))))}
    out["scripts"] = _script_ratios(results_a.get("scripts"), results_b.get("scripts"))
    if results_a.get("buckets") and results_b.get("buckets"):
        out["buckets"] = bk.bucket_ratios(results_a["buckets"], results_b["buckets"])
    return out


def _script_ratios(a: dict | None, b: dict | None) -> dict:
    out = {"direction": "bits_per_char_ratio = a / b (> 1: a needs more bits); "
                        "accuracy_gap = b - a (> 0: b more accurate)"}
    for name in (*sc.SCRIPTS, "overall"):
        x, y = (a or {}).get("overall", {}).get(name), (b or {}).get("overall", {}).get(name)
        if not x or not y:
            continue
        out[name] = {"bits_per_char_ratio": x["bits_per_char"] / y["bits_per_char"]
                     if x["bits_per_char"] and y["bits_per_char"] else None,
                     "accuracy_gap": y["char_accuracy"] - x["char_accuracy"]
                     if None not in (x["char_accuracy"], y["char_accuracy"]) else None}
    return out


# ---- output -----------------------------------------------------------------------------------------

def write_eval(path, results: dict) -> Path:
    """Write results as strict UTF-8 JSON (NaN/inf as null), atomically."""
    return write_json(path, results)
