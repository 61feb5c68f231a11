"""`ja-adapt fertility`: how a tokenizer cuts each language and Japanese script (no model weights)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ja_adapt.core.errors import UserError
from ja_adapt.core.jsonio import write_json
from ja_adapt.data.sources import read_corpus
from ja_adapt.evaluate.fertility import fertility, fertility_table
from ja_adapt.models.load import load_tokenizer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tokenizer",
        required=True,
        help="tokenizer directory or hub id (a model directory works: only its tokenizer files are read)",
    )
    parser.add_argument(
        "--data",
        action="append",
        required=True,
        help="corpus (.txt/.jsonl/directory; repeatable); each document's language is its record's `lang` or detected",
    )
    parser.add_argument("--out", type=Path, help="also write the numbers as JSON here")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow a tokenizer's own code")


def run(args: argparse.Namespace) -> int:
    if args.out is not None and args.out.exists() and not args.force:
        raise UserError(f"{args.out}: exists; pass --force to overwrite it, or choose another --out")
    tokenizer = load_tokenizer(args.tokenizer, trust_remote_code=args.trust_remote_code)
    result = fertility(tokenizer, read_corpus(args.data))
    print(fertility_table(result))
    if args.out is not None:
        write_json(args.out, {"definition": "docs/metrics.md#fertility", **result})
        print(f"wrote {args.out}")
    return 0
