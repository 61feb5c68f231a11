"""`ja-adapt report OUT [OUT ...]`: (re)build the report from experiment directories."""

from __future__ import annotations

import argparse
from pathlib import Path

from ja_adapt.core.errors import UserError
from ja_adapt.report import build_results, executive_summary, write_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "outs",
        nargs="+",
        type=Path,
        metavar="OUT",
        help="experiment directories of `ja-adapt compare` / `sweep` (several merge into one report)",
    )
    parser.add_argument("--out", type=Path, help="where to write the report (default: the first OUT)")


def run(args: argparse.Namespace) -> int:
    results = build_results(args.outs)
    dest = args.out or args.outs[0]
    if dest.exists() and not dest.is_dir():
        raise UserError(f"{dest}: exists and is not a directory; choose another --out")
    paths = write_report(dest, results)
    print(executive_summary(results))
    print(f"\nreport: {paths['report.html']}")
    return 0
