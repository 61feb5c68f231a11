"""The supervised task (eval.json `supervised`): BLEU, chrF, exact match and response bits/char per
model (the columns are metrics.SUPERVISED; intervals over seeds with >= 2 seeds, else the run's
bootstrap over examples), and the first SAMPLES_SHOWN examples' responses of each model (its first seed)."""

from __future__ import annotations

from ja_adapt.report import fmt
from ja_adapt.report.blocks import group_table, scored_by_examples
from ja_adapt.report.metrics import SUPERVISED
from ja_adapt.report.status import not_run, ok

SAMPLES_SHOWN = 3  # sample responses per model in the report


def build(ctx) -> dict:
    groups, base = ctx.cmp.groups, ctx.base
    if not any(g.q("sft_chrf")["n"] for g in groups):
        return {"supervised_task": not_run()}
    out = {"status": "ok", "definition": "docs/metrics.md#supervised", "groups": {}, "samples": {}}
    evals = {}
    if base.quality.get("sft_chrf") is not None:
        out["groups"]["base"] = {c.key: base.q(c.key) for c in SUPERVISED}
        evals["base"] = base.eval
    for g in groups:
        out["groups"][g.label] = {c.key: g.q(c.key) for c in SUPERVISED}
        evals[g.label] = g.runs[0].eval
    for label, ev in evals.items():
        samples = ((ev or {}).get("supervised") or {}).get("samples") or []
        out["samples"][label] = [
            {k: s[k] for k in ("prompt", "reference", "hypothesis", "exact_match")} for s in samples[:SAMPLES_SHOWN]
        ]
    return {"supervised_task": out}


def blocks(res: dict, plots: dict) -> list[tuple]:
    """Scores per model with intervals, and sample responses."""
    st = res.get("supervised_task")
    b = [("h", 4, "Supervised task (held-out prompt → response)")]
    if not ok(st):
        return b + [("p", "Not run: the evaluation sets held no supervised (prompt/completion or chat) records.")]
    b.append(
        group_table(
            scored_by_examples(st["groups"], "sft_chrf"), [(c.header, c.key, fmt.UNITS[c.unit]) for c in SUPERVISED]
        )
    )
    b.append(
        (
            "p",
            "Responses to the held-out supervised examples (docs/metrics.md#supervised), decoded "
            "greedily unless configured otherwise and stopped at the template's stop tokens; BLEU "
            "with sacrebleu's ja-mecab tokenizer, chrF, exact match after stripping surrounding "
            "whitespace, and the teacher-forced bits per character of the reference response. "
            "Intervals: over seeds with ≥ 2 seeds, else the run's bootstrap over examples.",
        )
    )
    rows = [
        [label, s["prompt"].strip().splitlines()[-1] if s["prompt"].strip() else "", s["reference"], s["hypothesis"]]
        for label, samples in sorted(st["samples"].items())
        for s in samples
    ]
    if rows:
        b.append(("p", "Sample responses (the first examples; each model's first seed):"))
        b.append(("table", ["model", "prompt (last line)", "reference", "response"], rows))
    return b
