"""Evaluation orchestration: every metric of one model into eval.json, paired comparison of two.

evaluate_model runs one likelihood pass per (lang, domain) group and derives from it the corpus,
per-script, per-domain, forgetting and complexity-bucket metrics; generation is the only other
model call. Every metric carries a `definition` id into docs/metrics.md and its sample counts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np

from ja_adapt.data.documents import Document
from ja_adapt.errors import UserError
from ja_adapt.evaluate import buckets as bk
from ja_adapt.evaluate import scripts as sc
from ja_adapt.evaluate.config import EvalConfig
from ja_adapt.evaluate.forgetting import forgetting
from ja_adapt.evaluate.generation import evaluate_generation
from ja_adapt.evaluate.likelihood import score_documents, summarize
from ja_adapt.evaluate.stats import bleu_chrf_paired_bootstrap, holm, paired_compare

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


def tokenizer_fingerprint(tokenizer) -> dict:
    import hashlib
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False).encode("utf-8")
    return {"name_or_path": str(getattr(tokenizer, "name_or_path", "")), "vocab_size": len(tokenizer),
            "sha256": hashlib.sha256(vocab).hexdigest(), "note": PPL_NOTE}


def _pool(summaries: list[dict]) -> dict:
    """Corpus-level ratios of several groups: sums first, then ratios (never a mean of ratios)."""
    nll = sum(s["nll_sum_nats"] for s in summaries)
    tok, ch, by = (sum(s[k] for s in summaries) for k in ("tokens", "chars", "bytes"))
    return {"definition": f"{DOCS}#likelihood", "groups": len(summaries),
            "documents": sum(s["documents"] for s in summaries), "nll_sum_nats": nll,
            "tokens": tok, "chars": ch, "bytes": by,
            "token_ppl": math.exp(nll / tok) if tok else None,
            "bits_per_char": nll / math.log(2) / ch if ch else None,
            "bits_per_byte": nll / math.log(2) / by if by else None}


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
            bk.tally_document(btally, s.doc.text, bits, cfg.buckets())
        script_groups[key] = tally
    by_lang = {lang: _pool([v for v in lik.values() if v["lang"] == lang])
               for lang in sorted({v["lang"] for v in lik.values()})}
    results = {
        "schema": SCHEMA, "definitions": DOCS, "config": dataclasses.asdict(cfg),
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "likelihood": {"definition": f"{DOCS}#likelihood-protocol", "note": PPL_NOTE,
                       "by_group": lik, "by_lang": by_lang},
        "scripts": _scripts_section(script_groups),
        "generation": _generation_section(model, tokenizer, gen_docs, cfg),
        "domains": _domains_section(lik, trained, cfg.target_lang),
        "buckets": _buckets_section(bucket_domains, cfg),
    }
    results["forgetting"] = forgetting(results, base_results, tuple(cfg.forgetting_langs))
    return results


def _merge(tallies: list[dict]) -> dict:
    total = sc.new_tally()
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
    return {"definition": f"{DOCS}#complexity-buckets", "rule": dataclasses.asdict(cfg.buckets()),
            "overall": bk.summarize_tally(_merge_buckets(bucket_domains.values())),
            "by_domain": {d: bk.summarize_tally(t) for d, t in sorted(bucket_domains.items())}}


def _merge_buckets(tallies) -> dict:
    total = bk.new_tally()
    for t in tallies:
        for b, counts in t.items():
            for k, v in counts.items():
                total[b][k] += v
    return total


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

def _json_safe(x):
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def write_eval(path, results: dict) -> Path:
    """Write results as UTF-8 JSON (NaN/inf as null) atomically: a temp file renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_json_safe(results), ensure_ascii=False, indent=1, allow_nan=False),
                   encoding="utf-8")
    os.replace(tmp, path)
    return path


def _f(x, fmt=".4f") -> str:
    return "-" if x is None else format(x, fmt)


def summary_table(results: dict) -> str:
    """A plain-text summary of eval results for the terminal."""
    lines = [f"{'group':<24}{'docs':>6}{'tokens':>9}{'chars':>9}{'tok ppl':>10}{'bits/char':>11}{'bits/byte':>11}"]
    rows = list(results["likelihood"]["by_group"].items()) + \
        [(f"{lang} (all)", v) for lang, v in results["likelihood"]["by_lang"].items()]
    for name, v in rows:
        lines.append(f"{name:<24}{v['documents']:>6}{v['tokens']:>9}{v['chars']:>9}{_f(v['token_ppl'], '.2f'):>10}"
                     f"{_f(v['bits_per_char']):>11}{_f(v['bits_per_byte']):>11}")
    lines.append(f"({PPL_NOTE})")
    overall = results.get("scripts", {}).get("overall", {})
    if overall:
        lines.append(f"\n{'script':<12}{'chars':>8}{'bits/char':>11}{'char acc':>10}")
        for name, v in overall.items():
            lines.append(f"{name:<12}{v['chars']:>8}{_f(v['bits_per_char']):>11}{_f(v['char_accuracy'], '.3f'):>10}")
    g = results.get("generation", {})
    if g.get("n"):
        lines.append(f"\ngeneration (n={g['n']}): BLEU {g['bleu']:.2f} (BLEU-1 {g['bleu_1_precision']:.1f}, "
                     f"BLEU-4 {g['bleu_4_precision']:.1f}; sentence {g['sentence_bleu_mean']:.2f} ± "
                     f"{_f(g['sentence_bleu_std'], '.2f')}), chrF {g['chrf']:.2f}\n  {g['bleu_signature']}")
    for lang, v in results.get("forgetting", {}).get("by_lang", {}).items():
        lines.append(f"forgetting {lang}: bits/byte {v['adapted_bits_per_byte']:.4f}"
                     + (f", base {v['base_bits_per_byte']:.4f}, retention {_f(v['retention'])}"
                        if "retention" in v else ""))
    for b, v in results.get("buckets", {}).get("overall", {}).items():
        lines.append(f"bucket {b}: {v['sentences']} sentences, bits/char {_f(v['bits_per_char'])}")
    return "\n".join(lines)


# ---- command line: ja-adapt eval ---------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", nargs="?", type=Path, help="a run directory written by `ja-adapt train`")
    parser.add_argument("--model", help="instead of RUN_DIR: a model directory, hub id or preset")
    parser.add_argument("--adapter", type=Path, help="a peft adapter directory to load on --model")
    parser.add_argument("--tokenizer", help="tokenizer directory / hub id (default: the model's own)")
    parser.add_argument("--data", action="append", help="corpus to evaluate (repeatable); default for "
                        "RUN_DIR: its test split and eval-only corpora")
    parser.add_argument("--trained-domain", action="append", default=[],
                        help="a domain the model was trained on (repeatable; RUN_DIR knows its own)")
    parser.add_argument("--base-eval", type=Path, help="the base model's eval.json, for forgetting")
    parser.add_argument("--out", type=Path, help="output file (default RUN_DIR/eval.json or ./eval.json)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    for f in ("max_length", "stride", "batch_size", "gen_prompts", "seed"):
        parser.add_argument(f"--{f.replace('_', '-')}", type=int, help=f"eval.{f}")


def _device(name: str):
    import torch
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def run(args: argparse.Namespace) -> int:
    """`ja-adapt eval`: evaluate a run directory or a model (+ adapter) and write eval.json."""
    if (args.run_dir is None) == (args.model is None):
        raise UserError("eval: pass either RUN_DIR or --model (not both, not neither)")
    if args.adapter and not args.model:
        raise UserError("--adapter: needs --model (the base model the adapter was trained on)")
    out = args.out or (args.run_dir / "eval.json" if args.run_dir else Path("eval.json"))
    if out.exists() and not args.force:
        raise UserError(f"{out}: already exists; pass --force to overwrite or --out elsewhere")
    base = None
    if args.base_eval:
        try:
            base = json.loads(args.base_eval.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{args.base_eval}: cannot read the base eval.json ({e})") from None
    device = _device(args.device)
    cfg, trained = EvalConfig(), list(args.trained_domain)
    if args.run_dir:
        from ja_adapt.artifacts import load_run
        from ja_adapt.data.pipeline import eval_set
        model, tokenizer, run_cfg = load_run(args.run_dir, device)
        cfg = dataclasses.replace(run_cfg.eval) if isinstance(run_cfg.eval, EvalConfig) else cfg
        run_docs, run_trained = eval_set(run_cfg)
        trained = trained or run_trained
        docs = None if args.data else run_docs
    else:
        if not args.data:
            raise UserError("--data: required with --model (the corpus to evaluate)")
        model, tokenizer = _load_model(args, device)
    if args.data:
        from ja_adapt.data.sources import read_corpus
        docs = read_corpus(args.data)
    overrides = {f: getattr(args, f) for f in ("max_length", "stride", "batch_size", "gen_prompts", "seed")
                 if getattr(args, f) is not None}
    cfg = dataclasses.replace(cfg, **overrides)
    results = evaluate_model(model, tokenizer, docs, cfg, trained_domains=trained, base_results=base)
    write_eval(out, results)
    print(summary_table(results))
    print(f"\n{out}")
    return 0


def _load_model(args, device):
    from ja_adapt.models import is_preset, load_model, load_tokenizer
    if is_preset(args.model) and not args.tokenizer:
        raise UserError(f"--tokenizer: required with the preset '{args.model}' (presets have no tokenizer)")
    tokenizer = load_tokenizer(args.tokenizer or args.model)
    model = load_model(args.model, vocab_size=len(tokenizer) if is_preset(args.model) else None)
    if args.adapter:
        if not (args.adapter / "adapter_config.json").is_file():
            raise UserError(f"{args.adapter}: no adapter_config.json; pass a peft adapter directory")
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, str(args.adapter))
    return model.to(device).eval(), tokenizer
