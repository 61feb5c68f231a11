"""Flags shared by every command that trains (train, compare, sweep), and the config they make."""

from __future__ import annotations

import argparse
from pathlib import Path

from ja_adapt.config import ExperimentConfig, load_config
from ja_adapt.data.sources import FILE_FORMATS


def add_training_flags(p: argparse.ArgumentParser, out_required: bool = True) -> None:
    """--config --model --data --method --max-steps --out, and `key=value` overrides for the rest."""
    p.add_argument("--config", help="YAML config (overrides of the defaults; see configs/)")
    p.add_argument("--model", help="model: preset, local directory or hub id (model.name_or_path)")
    p.add_argument(
        "--data",
        action="append",
        help=f"training corpus (repeatable): {', '.join(FILE_FORMATS)}, directory or saved dataset (data.paths)",
    )
    p.add_argument("--method", help="adaptation method, e.g. lora or full (method)")
    p.add_argument("--max-steps", type=int, help="optimizer steps (train.max_steps)")
    p.add_argument("--out", required=out_required, type=Path, help="output directory")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides, e.g. lora.rank=16 optim.lr=3e-4 precision=bf16",
    )


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    """Defaults ← --config ← key=value overrides ← the flags above, validated."""
    flags = {
        "model.name_or_path": args.model,
        "data.paths": args.data,
        "method": args.method,
        "train.max_steps": args.max_steps,
    }
    return load_config(args.config, args.overrides, flags)
