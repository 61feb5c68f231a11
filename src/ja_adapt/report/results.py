"""build_results: experiment directories → the results.json dict (schema: results.schema.json).

Every value is a measurement (from summary.json / metrics.jsonl / eval.json), a value computed from
measurements by ja_adapt.report.analysis, or a definition. Quality figures are mean ± sd over seeds
(analysis.aggregate); LoRA-vs-full ratios use those means. Each section (report/sections/) builds
its own part; results.json lists the parts in the schema's order.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from ja_adapt.report import analysis as an
from ja_adapt.report.context import Context, make_context
from ja_adapt.report.sections import SECTIONS

SCHEMA_VERSION = "ja-adapt-results/1"


def schema() -> dict:
    """results.schema.json (its properties in the order results.json lists them)."""
    return json.loads(resources.files("ja_adapt.report").joinpath("results.schema.json").read_text("utf-8"))


def build_results(out_dirs: list[Path], cfg: an.AnalysisConfig = an.AnalysisConfig()) -> dict:
    """Read every OUT directory, analyse, and return the results.json dict."""
    ctx = make_context(out_dirs, cfg)
    ctx.results.update(overview(ctx))
    for section in SECTIONS:  # in reading order: a section may read the parts before it
        ctx.results.update(section.build(ctx))
    order = list(schema()["properties"])
    unlisted = set(ctx.results) - set(order)
    if unlisted:  # a section's key needs its schema entry
        raise ValueError(f"results.schema.json lacks {sorted(unlisted)}")
    return {k: ctx.results[k] for k in order if k in ctx.results}


def overview(ctx: Context) -> dict:
    """What was read: the sources, experiments, skipped duplicates, the compared pair and every group."""
    a, b = ctx.cmp.a, ctx.cmp.b
    return {
        "schema_version": SCHEMA_VERSION,
        "sources": [str(e.out) for e in ctx.exps],
        "experiments": [
            {
                "out": str(e.out),
                "kind": e.manifest["kind"],
                "grid": e.manifest.get("grid", {}),
                "seeds": e.manifest.get("seeds", []),
                "runs": len(e.runs),
            }
            for e in ctx.exps
        ],
        "duplicates_skipped": ctx.duplicates,
        "primary": {"lora": a.label if a else None, "full": b.label if b else None},
        "groups": {
            g.label: {
                "method": g.method,
                "arm": g.arm,
                "runs": [r.name for r in g.runs],
                "seeds": [r.seed for r in g.runs],
                "config": g.config,
            }
            for g in ctx.groups
        },
    }
