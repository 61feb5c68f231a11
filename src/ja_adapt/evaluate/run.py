"""Evaluation orchestration: every metric of one model into eval.json (compare.py: two models).

evaluate_model runs one likelihood pass per (lang, domain) group and derives from it the corpus,
top-1, per-script, per-domain, forgetting and complexity-bucket metrics; generation is the only
other model call. Every metric carries a `definition` id into docs/metrics.md, its sample counts
and, for headline numbers, a bootstrap interval over the units that were sampled (documents,
prompts). The `ja-adapt eval` command line over these functions is apps/cli/evaluate.py.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from pathlib import Path

import numpy as np

from ja_adapt.config import EvalConfig
from ja_adapt.core.cache import cache_root
from ja_adapt.core.errors import UserError
from ja_adapt.core.jsonio import write_json
from ja_adapt.data.documents import Document
from ja_adapt.data.tokens import tokenizer_fingerprint
from ja_adapt.evaluate import buckets as bk
from ja_adapt.evaluate import scripts as sc
from ja_adapt.evaluate.bootstrap import ratio_interval
from ja_adapt.evaluate.compare import DOCS
from ja_adapt.evaluate.downstream import resolve_tasks, run_downstream
from ja_adapt.evaluate.fertility import fertility
from ja_adapt.evaluate.forgetting import forgetting
from ja_adapt.evaluate.generation import evaluate_generation
from ja_adapt.evaluate.likelihood import argmax_counts, bits_per, score_documents, summarize, top_argmax
from ja_adapt.evaluate.supervised import evaluate_supervised

SCHEMA = "ja-adapt-eval/1"
PPL_NOTE = (
    "token_ppl depends on the tokenizer: compare it only between models that share one "
    "(same tokenizer.sha256); bits_per_char and bits_per_byte compare across tokenizers"
)


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
    return {
        "name_or_path": str(getattr(tokenizer, "name_or_path", "")),
        "vocab_size": len(tokenizer),
        "sha256": tokenizer_fingerprint(tokenizer),
        "note": PPL_NOTE,
    }


def _doc_intervals(per_doc: list[dict], cfg: EvalConfig) -> dict:
    """Document-bootstrap intervals (docs/metrics.md#intervals) of a pool's bits/char, bits/byte and,
    when argmax was counted, top-1 token accuracy: each a ratio of sums recomputed per resample."""
    if not per_doc:
        return {}
    cols = [("bits_per_char_ci", "nll", "chars"), ("bits_per_byte_ci", "nll", "bytes")]
    if all("correct_tokens" in d for d in per_doc):
        cols.append(("top1_accuracy_ci", "correct_tokens", "tokens"))
    scale = {"nll": 1 / math.log(2), "correct_tokens": 1.0}
    num = np.array([[d[n] * scale[n] for _, n, _ in cols] for d in per_doc], dtype=np.float64)
    den = np.array([[d[m] for _, _, m in cols] for d in per_doc], dtype=np.float64)
    cis = ratio_interval(num, den, resamples=cfg.bootstrap_resamples, seed=cfg.seed)
    return {name: ci for (name, _, _), ci in zip(cols, cis)}


def _pooled_likelihood(summaries: list[dict], cfg: EvalConfig) -> dict:
    """Corpus-level ratios of several groups: sums first, then ratios (never a mean of ratios), with
    document-bootstrap intervals over all their documents."""
    nll = sum(s["nll_sum_nats"] for s in summaries)
    tok, ch, by = (sum(s[k] for s in summaries) for k in ("tokens", "chars", "bytes"))
    out = {
        "definition": f"{DOCS}#likelihood",
        "groups": len(summaries),
        "documents": sum(s["documents"] for s in summaries),
        "nll_sum_nats": nll,
        "tokens": tok,
        "chars": ch,
        "bytes": by,
        "token_ppl": math.exp(nll / tok) if tok else None,
        "bits_per_char": bits_per(nll, ch),
        "bits_per_byte": bits_per(nll, by),
    }
    if summaries and all("top1_correct" in s for s in summaries):
        out["top1_correct"] = sum(s["top1_correct"] for s in summaries)
        out["top1_accuracy"] = out["top1_correct"] / tok if tok else None
    out.update(_doc_intervals([d for s in summaries for d in s.get("per_doc", [])], cfg))
    return out


def trained_pairs(trained) -> set[tuple[str, str]]:
    """{(lang, domain)} from pairs or "lang/domain" strings: the groups the training split held."""
    out = set()
    for item in trained:
        if isinstance(item, str):
            if "/" not in item:
                raise UserError(
                    f"trained: '{item}' is not 'lang/domain'; a group is trained only when "
                    "both its language and its domain occur in the training split"
                )
            item = item.split("/", 1)
        lang, domain = item
        out.add((str(lang), str(domain)))
    return out


@dataclasses.dataclass
class _GroupScores:
    """What the one likelihood pass over the (lang, domain) groups yields for the sections."""

    lik: dict = dataclasses.field(default_factory=dict)  # per group: the likelihood record
    counts: dict = dataclasses.field(default_factory=dict)  # per group: argmax token counts
    script_groups: dict = dataclasses.field(default_factory=dict)  # per target-language group: script tally
    script_docs: dict = dataclasses.field(default_factory=dict)  # ... and its documents' tallies
    bucket_domains: dict = dataclasses.field(default_factory=dict)  # per target-language domain: buckets
    gen_docs: list = dataclasses.field(default_factory=list)  # target-language documents


def _tally_target_group(out: _GroupScores, key: str, domain: str, scores, cfg: EvalConfig) -> None:
    """Per-script and complexity-bucket tallies of one target-language group's scored documents."""
    tally, per_doc = sc.new_tally(), []
    btally = out.bucket_domains.setdefault(domain, bk.new_tally())
    for s in scores:
        doc_tally = sc.new_tally()
        bits = sc.tally_document(doc_tally, s.doc.text, s.spans, s.nll, s.argmax == s.token_ids)
        sc.merge_into(tally, doc_tally)
        per_doc.append(doc_tally)
        bk.tally_document(btally, s.doc.text, bits, cfg.buckets)
    out.script_groups[key], out.script_docs[key] = tally, per_doc


def _score_groups(model, tokenizer, groups: dict[str, list[Document]], pairs: set, cfg: EvalConfig) -> _GroupScores:
    """One likelihood pass per (lang, domain) group; target-language groups are also tallied."""
    out = _GroupScores()
    for key, docs in groups.items():
        lang, domain = key.split("/", 1)
        # argmax for every group: top-1 accuracy and the argmax-collapse check cost one argmax per row
        scores = score_documents(
            model,
            tokenizer,
            docs,
            max_length=cfg.max_length,
            stride=cfg.stride,
            batch_size=cfg.batch_size,
            chunk_size=cfg.chunk_size,
            want_argmax=True,
        )
        out.counts[key] = argmax_counts(scores)
        summary = summarize(scores, len(docs) - len(scores))
        out.lik[key] = {
            "definition": f"{DOCS}#likelihood",
            "lang": lang,
            "domain": domain,
            "trained": (lang, domain) in pairs,
            **summary,
            **top_argmax(out.counts[key], tokenizer),
            **_doc_intervals(summary["per_doc"], cfg),
        }
        if lang == cfg.target_lang:
            out.gen_docs += docs
            _tally_target_group(out, key, domain, scores, cfg)
    return out


def _by_lang(scored: _GroupScores, tokenizer, cfg: EvalConfig) -> dict:
    """Per language: its groups pooled, with top-1 over their merged argmax counts."""
    lik, by_lang = scored.lik, {}
    for lang in sorted({v["lang"] for v in lik.values()}):
        keys = [k for k, v in lik.items() if v["lang"] == lang]
        merged = sum((scored.counts[k] for k in keys), Counter())
        by_lang[lang] = {**_pooled_likelihood([lik[k] for k in keys], cfg), **top_argmax(merged, tokenizer)}
    return by_lang


def evaluate_model(model, tokenizer, groups, cfg: EvalConfig, *, trained=(), base_results: dict | None = None) -> dict:
    """All metrics of one model (the eval.json content).

    groups: documents (a list, or a dict of lists) regrouped by (lang, domain); trained: the
    (lang, domain) pairs (or "lang/domain" strings) of the training split: a group is trained only
    when both its language and its domain were trained (the others are cross-domain or other
    languages); base_results: the base model's evaluate_model output, for forgetting. Sections:
    likelihood, scripts, generation (continuations of held-out text), domains, forgetting, buckets,
    supervised (prompt→completion and chat records: generated responses, evaluate/supervised.py),
    and downstream when eval.downstream.tasks names lm-eval tasks (their data is checked before
    anything runs).
    """
    cfg.check()
    tasks = resolve_tasks(cfg.downstream, cache_root()) if cfg.downstream.tasks else {}
    docs = [d for g in groups.values() for d in g] if isinstance(groups, dict) else list(groups)
    sft_docs = [d for d in docs if d.supervised]
    groups = group_documents([d for d in docs if not d.supervised])
    if not groups and not sft_docs:
        raise UserError("eval: no documents to evaluate; pass a corpus with --data")
    pairs = trained_pairs(trained)
    scored = _score_groups(model, tokenizer, groups, pairs, cfg)
    results = {
        "schema": SCHEMA,
        "definitions": DOCS,
        "config": dataclasses.asdict(cfg),
        "tokenizer": tokenizer_record(tokenizer),
        "likelihood": {
            "definition": f"{DOCS}#likelihood-protocol",
            "note": PPL_NOTE,
            "top1_definition": f"{DOCS}#top1",
            "intervals_definition": f"{DOCS}#intervals",
            "by_group": scored.lik,
            "by_lang": _by_lang(scored, tokenizer, cfg),
        },
        "scripts": _scripts_section(scored.script_groups, scored.script_docs, cfg),
        "generation": _generation_section(model, tokenizer, scored.gen_docs, cfg),
        "domains": _domains_section(scored.lik, pairs, cfg),
        "buckets": _buckets_section(scored.bucket_domains, cfg),
        "supervised": evaluate_supervised(model, tokenizer, sft_docs, cfg),
    }
    results["forgetting"] = forgetting(results, base_results, tuple(cfg.forgetting_langs))
    results["fertility"] = _fertility_section(tokenizer, [d for g in groups.values() for d in g])
    if tasks:
        results["downstream"] = run_downstream(model, tokenizer, cfg.downstream, tasks)
    return results


def _fertility_section(tokenizer, plain: list[Document]) -> dict:
    if getattr(tokenizer, "is_fast", False) and plain:
        return {"definition": f"{DOCS}#fertility", **fertility(tokenizer, plain)}
    return {"definition": f"{DOCS}#fertility", "skipped": "needs a fast tokenizer and plain text"}


def _merge(tallies, new_tally=sc.new_tally) -> dict:
    """The sum of per-group tallies ({class: {count: value}}, scripts or buckets)."""
    total = new_tally()
    for t in tallies:
        sc.merge_into(total, t)
    return total


def _scripts_section(script_groups: dict, script_docs: dict, cfg: EvalConfig) -> dict:
    overall = sc.summarize_tally(_merge(list(script_groups.values())))
    cis = sc.tally_intervals(
        [t for docs in script_docs.values() for t in docs], resamples=cfg.bootstrap_resamples, seed=cfg.seed
    )
    for name, ci in cis.items():
        overall[name].update(ci)
    return {
        "definition": f"{DOCS}#per-script-metrics",
        "normalization": "none (characters as written)",
        "bits_definition": f"{DOCS}#per-script-bits-per-character",
        "accuracy_definition": f"{DOCS}#character-accuracy",
        "intervals_definition": f"{DOCS}#intervals",
        "overall": overall,
        "by_group": {k: {**sc.summarize_tally(t), "per_doc": script_docs[k]} for k, t in script_groups.items()},
    }


def _generation_section(model, tokenizer, docs, cfg: EvalConfig) -> dict:
    if cfg.gen_prompts == 0:
        return {"definition": f"{DOCS}#generation", "n": 0, "skipped": "eval.gen_prompts = 0"}
    out = evaluate_generation(
        model,
        tokenizer,
        docs,
        n_prompts=cfg.gen_prompts,
        prefix_chars=cfg.gen_prefix_chars,
        ref_chars=cfg.gen_ref_chars,
        max_new_tokens=cfg.gen_max_new_tokens,
        seed=cfg.seed,
        batch_size=cfg.gen_batch_size,
        resamples=cfg.bootstrap_resamples,
    )
    return {
        "definition": f"{DOCS}#generation",
        "degeneration_definition": f"{DOCS}#degeneration",
        "intervals_definition": f"{DOCS}#intervals",
        "scale": "0-100 (sacrebleu)",
        **out,
    }


def _domains_section(lik: dict, pairs: set, cfg: EvalConfig) -> dict:
    lang = cfg.target_lang
    own = [v for v in lik.values() if v["lang"] == lang]
    ind, cross = [v for v in own if v["trained"]], [v for v in own if not v["trained"]]
    cross_bpc = [v["bits_per_char"] for v in cross if v["bits_per_char"] is not None]
    return {
        "definition": f"{DOCS}#held-out-and-cross-domain",
        "lang": lang,
        "trained_domains": sorted(d for g, d in pairs if g == lang),
        "trained_pairs": [list(p) for p in sorted(pairs)],
        "held_out": _pooled_likelihood(ind, cfg) if ind else None,
        "cross_domain": _pooled_likelihood(cross, cfg) if cross else None,
        "cross_domain_mean_bits_per_char": float(np.mean(cross_bpc)) if cross_bpc else None,
        "cross_domain_std_bits_per_char": float(np.std(cross_bpc, ddof=1)) if len(cross_bpc) > 1 else None,
        "by_domain": {
            v["domain"]: {
                "trained": v["trained"],
                "documents": v["documents"],
                "chars": v["chars"],
                "bits_per_char": v["bits_per_char"],
                "bits_per_char_ci": v.get("bits_per_char_ci"),
                "bits_per_byte": v["bits_per_byte"],
            }
            for v in own
        },
    }


def _buckets_section(bucket_domains: dict, cfg: EvalConfig) -> dict:
    return {
        "definition": f"{DOCS}#complexity-buckets",
        "rule": dataclasses.asdict(cfg.buckets),
        "overall": bk.summarize_tally(_merge(bucket_domains.values(), bk.new_tally)),
        "by_domain": {d: bk.summarize_tally(t) for d, t in sorted(bucket_domains.items())},
    }


# ---- output -----------------------------------------------------------------------------------------


def write_eval(path, results: dict) -> Path:
    """Write results as strict UTF-8 JSON (NaN/inf as null), atomically."""
    return write_json(path, results)
