"""The report's content as blocks (render.py): a title, a table of contents, then every section's
blocks in the outline's reading order (report/sections/__init__.py), headings numbered there.

Every number comes from the results dict and is formatted at render time (report/fmt.py); no number
is typed into any section's text.
"""

from __future__ import annotations

from ja_adapt.report.sections import outline_blocks
from ja_adapt.report.sections.summary import executive_summary

__all__ = ["build_document", "executive_summary"]


def build_document(res: dict, plots: dict) -> list[tuple]:
    """The whole document: plots maps a drawn plot's name (plots.PLOTS) to its file."""
    compared = res["primary"].get("lora") and res["primary"].get("full")
    title = "Results Analysis: LoRA vs full fine-tuning for Japanese" if compared else "Results Analysis"
    return [("h", 1, title), ("toc",), *outline_blocks(res, plots)]
