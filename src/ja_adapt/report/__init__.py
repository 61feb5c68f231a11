"""Report stage: results.json, report.md, report.html and plots from experiment directories.

    build_results([OUT, ...]) -> dict            read and analyse (report/results.py)
    write_report(DIR, results) -> {name: path}   results.json, plots/*.png, report.md, report.html
    executive_summary(results) -> str            the headline sentences
    `ja-adapt report OUT [OUT ...] [--out DIR]`  both, from the command line (add_arguments / run)
"""

from __future__ import annotations

import argparse
import json
import math
from importlib import resources
from pathlib import Path

from ja_adapt.errors import UserError
from ja_adapt.report.document import build_document, executive_summary
from ja_adapt.report.results import build_results

__all__ = ["build_results", "write_report", "executive_summary", "schema", "validate", "add_arguments", "run"]


def json_safe(x):
    """NaN / inf → None (results.json is strict JSON); tuples → lists."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):     # numpy scalars
        return json_safe(x.item())
    return x


def schema() -> dict:
    return json.loads(resources.files("ja_adapt.report").joinpath("results.schema.json").read_text("utf-8"))


def validate(results: dict) -> None:
    """Raise jsonschema.ValidationError when results do not follow results.schema.json."""
    import jsonschema
    jsonschema.validate(results, schema())


def write_report(out_dir: Path, results: dict) -> dict[str, Path]:
    """Write results.json, plots/*.png, report.md and report.html into out_dir; {name: path}."""
    from ja_adapt.report import plots as pl
    from ja_adapt.report.render import to_html, to_markdown
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = json_safe(results)
    validate(results)
    paths = {"results.json": out_dir / "results.json"}
    paths["results.json"].write_text(json.dumps(results, indent=1, ensure_ascii=False, allow_nan=False),
                                     encoding="utf-8")
    drawn = pl.draw_all(results, out_dir / "plots")
    paths.update({f"plots/{p.name}": p for p in drawn.values()})
    blocks = build_document(results, drawn)
    paths["report.md"] = out_dir / "report.md"
    paths["report.md"].write_text(to_markdown(blocks, out_dir), encoding="utf-8")
    paths["report.html"] = out_dir / "report.html"
    paths["report.html"].write_text(to_html(blocks, blocks[0][2]), encoding="utf-8")
    return paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("outs", nargs="+", type=Path, metavar="OUT",
                        help="experiment directories of `ja-adapt compare` / `sweep` (several merge into one report)")
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
