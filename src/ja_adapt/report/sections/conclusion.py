"""The conclusion: the executive summary's sentences again, after the discussion."""

from __future__ import annotations

from ja_adapt.report.sections.summary import executive_summary


def build(ctx) -> dict:
    return {}


def blocks(res: dict, plots: dict) -> list[tuple]:
    return [("p", executive_summary(res))]
