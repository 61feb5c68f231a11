"""Report stage: results.json, report.md, report.html and plots from experiment directories.

build_results([OUT, ...]) -> dict            read and analyse (report/results.py; each section in report/sections/)
write_report(DIR, results) -> {name: path}   results.json, plots/*.png, report.md, report.html
executive_summary(results) -> str            the headline sentences
`ja-adapt report OUT [OUT ...] [--out DIR]`  both, from the command line (apps/cli/report.py)
"""

from __future__ import annotations

from pathlib import Path

import jsonschema

from ja_adapt.core.jsonio import json_safe, write_json
from ja_adapt.report.document import build_document, executive_summary
from ja_adapt.report.render import to_html, to_markdown
from ja_adapt.report.results import build_results, schema

__all__ = ["build_results", "write_report", "executive_summary", "schema", "validate"]


def validate(results: dict) -> None:
    """Raise jsonschema.ValidationError when results do not follow results.schema.json."""
    jsonschema.validate(results, schema())


def write_report(out_dir: Path, results: dict) -> dict[str, Path]:
    """Write results.json, plots/*.png, report.md and report.html into out_dir; {name: path}."""
    from ja_adapt.report import plots as pl  # matplotlib: start-up time of `report --help`

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = json_safe(results)
    validate(results)
    paths = {"results.json": out_dir / "results.json"}
    write_json(paths["results.json"], results)
    drawn = pl.draw_all(results, out_dir / "plots")
    paths.update({f"plots/{p.name}": p for p in drawn.values()})
    blocks = build_document(results, drawn)
    paths["report.md"] = out_dir / "report.md"
    paths["report.md"].write_text(to_markdown(blocks, out_dir), encoding="utf-8")
    paths["report.html"] = out_dir / "report.html"
    paths["report.html"].write_text(to_html(blocks, blocks[0][2]), encoding="utf-8")
    return paths
