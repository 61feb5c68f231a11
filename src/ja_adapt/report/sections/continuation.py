"""Continuation quality: BLEU, chrF and degeneration measures of held-out Japanese text continued by
each model (eval.json generation; the columns are metrics.GENERATION), and LoRA / full ratios."""

from __future__ import annotations

from ja_adapt.report import analysis as an
from ja_adapt.report import fmt
from ja_adapt.report.blocks import group_table, scored_by_examples
from ja_adapt.report.metrics import GENERATION
from ja_adapt.report.status import NOT_RUN_TEXT, not_run, ok


def build(ctx) -> dict:
    groups, base, cmp = ctx.cmp.groups, ctx.base, ctx.cmp
    if not any(g.q("bleu")["n"] for g in groups):
        return {"bleu_evaluation": not_run()}
    out = {"status": "ok", "groups": {}}
    if base.quality.get("bleu") is not None:
        out["groups"]["base"] = {c.key: base.q(c.key) for c in GENERATION}
    for g in groups:
        out["groups"][g.label] = {c.key: g.q(c.key) for c in GENERATION}
    if cmp.complete:
        out["performance_ratio"] = an.ratio(cmp.a.q("bleu")["mean"], cmp.b.q("bleu")["mean"])
        out["chrf_ratio"] = an.ratio(cmp.a.q("chrf")["mean"], cmp.b.q("chrf")["mean"])
        out["ratio_direction"] = "LoRA / full (seed means); < 1: LoRA scores lower"
    return {"bleu_evaluation": out}


def blocks(res: dict, plots: dict) -> list[tuple]:
    b = [("h", 4, "Continuation quality (BLEU, chrF of held-out text continued)")]
    bl = res.get("bleu_evaluation")
    if not ok(bl):
        return b + [("p", NOT_RUN_TEXT)]
    b.append(
        group_table(
            scored_by_examples(bl["groups"], "bleu"), [(c.header, c.key, fmt.UNITS[c.unit]) for c in GENERATION]
        )
    )
    b.append(
        (
            "p",
            "Continuations of held-out Japanese documents (docs/metrics.md#generation): the decoded text "
            "is cut to the reference's character length and otherwise left as produced. Intervals: over "
            "seeds with ≥ 2 seeds, else the run's bootstrap over prompts. Repeated 4-grams, distinct-n "
            "and the length ratio measure degeneration.",
        )
    )
    if bl.get("performance_ratio") is not None:
        b.append(
            (
                "p",
                f"BLEU ratio {fmt.num(bl['performance_ratio'])}, chrF ratio {fmt.num(bl['chrf_ratio'])} "
                f"({bl['ratio_direction']}).",
            )
        )
    return b
