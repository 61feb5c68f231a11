"""`ja-adapt demo`: the embedded end-to-end experiment (apps/demo)."""

from __future__ import annotations

import argparse
from pathlib import Path

from transformers.utils import logging as hf_logging

from ja_adapt.apps.demo import DEFAULT_OUT, run_demo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (re-run to resume)")
    parser.add_argument("--quick", action="store_true", help="a much smaller demo (about a minute; the CI smoke test)")


def run(args: argparse.Namespace) -> int:
    hf_logging.disable_progress_bar()  # per-file load/save bars would bury the demo's own
    run_demo(args.out, quick=args.quick)
    return 0
