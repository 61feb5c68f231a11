"""`ja-adapt eval`: evaluate a run directory, or a model (+ adapter), into eval.json."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from peft import PeftModel

from ja_adapt.config import AlpacaConfig, DownstreamConfig, EvalConfig
from ja_adapt.core.errors import UserError, first_line
from ja_adapt.data.pipeline import eval_set
from ja_adapt.data.sources import read_corpus
from ja_adapt.evaluate.downstream import check_local_data
from ja_adapt.evaluate.fertility import fertility_table
from ja_adapt.evaluate.run import PPL_NOTE, evaluate_model, write_eval
from ja_adapt.models import vocab
from ja_adapt.models.load import is_preset, load_model, load_tokenizer, resolve_device
from ja_adapt.train.artifacts import load_run


def _f(x, fmt=".4f") -> str:
    return "-" if x is None else format(x, fmt)


def summary_table(results: dict) -> str:
    """A plain-text summary of eval results for the terminal."""
    lines = [f"{'group':<24}{'docs':>6}{'tokens':>9}{'chars':>9}{'tok ppl':>10}{'bits/char':>11}{'bits/byte':>11}"]
    rows = list(results["likelihood"]["by_group"].items()) + [
        (f"{lang} (all)", v) for lang, v in results["likelihood"]["by_lang"].items()
    ]
    for name, v in rows:
        lines.append(
            f"{name:<24}{v['documents']:>6}{v['tokens']:>9}{v['chars']:>9}{_f(v['token_ppl'], '.2f'):>10}"
            f"{_f(v['bits_per_char']):>11}{_f(v['bits_per_byte']):>11}"
        )
    lines.append(f"({PPL_NOTE})")
    if results.get("fertility", {}).get("by_lang"):
        lines.append("\n" + fertility_table(results["fertility"]))
    overall = results.get("scripts", {}).get("overall", {})
    if overall:
        lines.append(f"\n{'script':<12}{'chars':>8}{'bits/char':>11}{'char acc':>10}")
        for name, v in overall.items():
            lines.append(f"{name:<12}{v['chars']:>8}{_f(v['bits_per_char']):>11}{_f(v['char_accuracy'], '.3f'):>10}")
    g = results.get("generation", {})
    if g.get("n"):
        lines.append(
            f"\ngeneration (n={g['n']}): BLEU {g['bleu']:.2f} (BLEU-1 {g['bleu_1_precision']:.1f}, "
            f"BLEU-4 {g['bleu_4_precision']:.1f}; sentence {g['sentence_bleu_mean']:.2f} ± "
            f"{_f(g['sentence_bleu_std'], '.2f')}), chrF {g['chrf']:.2f}\n  {g['bleu_signature']}"
        )
    for lang, v in results.get("forgetting", {}).get("by_lang", {}).items():
        lines.append(
            f"forgetting {lang}: bits/byte {v['adapted_bits_per_byte']:.4f}"
            + (f", base {v['base_bits_per_byte']:.4f}, retention {_f(v['retention'])}" if "retention" in v else "")
        )
    for b, v in results.get("buckets", {}).get("overall", {}).items():
        lines.append(f"bucket {b}: {v['sentences']} sentences, bits/char {_f(v['bits_per_char'])}")
    ds = results.get("downstream") or {}
    for name, t in ds.get("tasks", {}).items():
        lines.append(
            f"lm-eval {name} (v{t['version']}, {t['num_fewshot']}-shot, {t['n']} items): "
            + ", ".join(f"{m} {_f(v)}" for m, v in t["metrics"].items() if isinstance(v, (int, float)))
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", nargs="?", type=Path, help="a run directory written by `ja-adapt train`")
    parser.add_argument("--model", help="instead of RUN_DIR: a model directory, hub id or preset")
    parser.add_argument("--adapter", type=Path, help="a peft adapter directory to load on --model")
    parser.add_argument("--tokenizer", help="tokenizer directory / hub id (default: the model's own)")
    parser.add_argument(
        "--data",
        action="append",
        help="corpus to evaluate (repeatable); default for RUN_DIR: its test split and eval-only corpora",
    )
    parser.add_argument(
        "--trained-domain",
        action="append",
        default=[],
        metavar="[LANG/]DOMAIN",
        help="a domain the model was trained on, e.g. ja/news (repeatable; a bare DOMAIN "
        "means the target language's; RUN_DIR knows its own)",
    )
    parser.add_argument("--base-eval", type=Path, help="the base model's eval.json, for forgetting")
    parser.add_argument("--out", type=Path, help="output file (default RUN_DIR/eval.json or ./eval.json)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    for f in ("max_length", "stride", "batch_size", "gen_prompts", "seed"):
        parser.add_argument(f"--{f.replace('_', '-')}", type=int, help=f"eval.{f}")
    parser.add_argument(
        "--tasks",
        help="lm-eval tasks, comma-separated (eval.downstream.tasks), e.g. "
        "ja_adapt_mc_translation,ja_leaderboard_jcommonsenseqa",
    )
    parser.add_argument(
        "--task-data",
        action="append",
        default=[],
        metavar="TASK=DIR|TASK=SPLIT:FILE,...",
        help="local data of a task (eval.downstream.data; repeatable): a directory of "
        "train*/valid*/test* .json(l) files, or split:file pairs",
    )
    for f in ("num_fewshot", "limit"):
        parser.add_argument(f"--{f.replace('_', '-')}", type=int, help=f"eval.downstream.{f} (lm-eval's {f})")


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
    if args.tasks:  # their data is checked before a model is loaded (a run's own tasks: evaluate_model)
        check_local_data(_downstream(EvalConfig().downstream, args))
    device = resolve_device(args.device)
    cfg, trained = EvalConfig(), list(args.trained_domain)
    if args.run_dir:
        model, tokenizer, run_cfg = load_run(args.run_dir, device)
        cfg = dataclasses.replace(run_cfg.eval) if isinstance(run_cfg.eval, EvalConfig) else cfg
        evs = eval_set(run_cfg)
        run_docs = evs.docs
        trained = trained or [f"{lang}/{d}" for lang, d in evs.trained]
        docs = None if args.data else run_docs
    else:
        if not args.data:
            raise UserError("--data: required with --model (the corpus to evaluate)")
        model, tokenizer = _load_model(args, device)
    if args.data:
        docs = read_corpus(args.data, alpaca=run_cfg.data.alpaca if args.run_dir else AlpacaConfig())
    overrides = {
        f: getattr(args, f)
        for f in ("max_length", "stride", "batch_size", "gen_prompts", "seed")
        if getattr(args, f) is not None
    }
    cfg = dataclasses.replace(cfg, **overrides, downstream=_downstream(cfg.downstream, args))
    trained = [t if "/" in t else f"{cfg.target_lang}/{t}" for t in trained]
    results = evaluate_model(model, tokenizer, docs, cfg, trained=trained, base_results=base)
    write_eval(out, results)
    print(summary_table(results))
    print(f"\n{out}")
    return 0


def _downstream(cfg: DownstreamConfig, args) -> DownstreamConfig:
    """eval.downstream with the command line's --tasks, --task-data, --num-fewshot, --limit set."""
    changes = {f: getattr(args, f) for f in ("num_fewshot", "limit") if getattr(args, f) is not None}
    if args.tasks is not None:
        changes["tasks"] = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if args.task_data:
        changes["data"] = list(args.task_data)
    cfg = dataclasses.replace(cfg, **changes)
    cfg.check()
    return cfg


def _load_model(args, device):
    if is_preset(args.model) and not args.tokenizer:
        raise UserError(f"--tokenizer: required with the preset '{args.model}' (presets have no tokenizer)")
    if args.adapter and not (args.adapter / "adapter_config.json").is_file():
        raise UserError(f"{args.adapter}: no adapter_config.json; pass a peft adapter directory")
    # an adapter saved with its tokenizer (every ja-adapt run's) reads text with it: an extended
    # vocabulary (vocab.extend) lives there
    own = args.adapter if args.adapter and (args.adapter / "tokenizer.json").is_file() else None
    tokenizer = load_tokenizer(args.tokenizer or own or args.model)
    model = load_model(args.model, vocab_size=len(tokenizer) if is_preset(args.model) else None)
    if args.adapter:
        if own and not args.tokenizer:
            vocab.fit_rows(model, len(tokenizer))  # its added tokens' rows come from the adapter
        vocab.check_fits(model, tokenizer, str(args.adapter))
        try:
            model = PeftModel.from_pretrained(model, str(args.adapter))
        except RuntimeError as e:  # torch's size mismatch
            raise UserError(
                f"{args.adapter}: the adapter does not fit --model {args.model} "
                f"({first_line(e)}); pass the base and tokenizer it was trained with"
            ) from None
    vocab.check_fits(model, tokenizer, str(args.adapter or args.model))
    return model.to(device).eval(), tokenizer
