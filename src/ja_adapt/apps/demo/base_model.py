"""The demo's base model: the `micro` preset pretrained by ja-adapt's own `train` (method full) on
the base corpus, with its tokenizer; cached under cache_root()/demo/<hash>."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from ja_adapt.apps.demo.corpora import DemoCorpora, build_corpora, write_jsonl
from ja_adapt.apps.demo.settings import FULL, QUICK, DemoSizes
from ja_adapt.config import ExperimentConfig, load_config, to_dict
from ja_adapt.core.cache import cache_root
from ja_adapt.data.tokenizer import train_tokenizer
from ja_adapt.train.loop import train


def base_config(sizes: DemoSizes) -> ExperimentConfig:
    """Pretraining of the base preset, method full; data paths are filled in by `ensure_base`.
    The recipe is the best of those measured in docs/demo.md ("The base model: what was tried")."""
    return load_config(
        None,
        flags={
            "method": "full",
            "precision": "fp32",
            "seed": 0,
            "model.name_or_path": sizes.base_preset,
            "optim.lr": sizes.base_lr,
            "optim.warmup_steps": max(1, sizes.base_steps // 50),
            "optim.min_lr_ratio": 0.1,
            "optim.weight_decay": 0.01,
            "data.require_japanese": False,
            "data.seq_len": 128,
            "data.val_fraction": 0.02,
            "data.test_fraction": 0.0,
            "train.max_steps": sizes.base_steps,
            "train.batch_size": 8,
            "train.eval_every": 0,
            "train.eval_batches": 4,
            "train.save_every": 0,
            "train.keep_checkpoints": 1,
            "train.tensorboard": False,
        },
    )


def _base_key(corpora: DemoCorpora, sizes: DemoSizes, cfg: ExperimentConfig) -> str:
    """sha256 of the base corpus, the tokenizer's corpus and settings, and the training config."""
    h = hashlib.sha256()
    for name, docs in (("base", corpora.base), ("tokenizer", corpora.tokenizer_texts)):
        h.update(name.encode())
        for d in docs:
            h.update(json.dumps([d.text, d.lang, d.domain], ensure_ascii=False).encode("utf-8"))
    h.update(json.dumps({"vocab_size": sizes.vocab_size, "config": to_dict(cfg)}, sort_keys=True).encode())
    return h.hexdigest()[:16]


def ensure_base(corpora: DemoCorpora, sizes: DemoSizes) -> Path:
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
    return ensure_base(build_corpora(sizes), sizes)


def ensure_base_model(quick: bool = False) -> Path:
    """The demo's base model directory (safetensors weights + tokenizer), built on first use.

    Cached under cache_root()/demo/<hash of corpus, tokenizer and config>; a later call (in this or
    another process) returns the same directory without training.
    """
    return _cached_base(quick, str(cache_root()))
