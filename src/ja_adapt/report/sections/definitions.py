"""Appendix: the definitions (analysis.DEFINITIONS with the configured thresholds, and each reference
metric's name and direction, metrics.REFERENCE) and the analysis configuration."""

from __future__ import annotations

from ja_adapt.report import analysis as an
from ja_adapt.report.metrics import REFERENCE


def build(ctx) -> dict:
    metrics = {f"metric:{m.key}": f"{m.reference} ({m.direction} is better)" for m in REFERENCE}
    return {"definitions": {**an.definitions(ctx.cfg), **metrics}, "analysis_config": dict(vars(ctx.cfg))}


def blocks(res: dict, plots: dict) -> list[tuple]:
    return [("table", ["term", "definition"], sorted(res["definitions"].items()))]
