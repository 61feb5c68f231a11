"""Statistical significance at the document level (about one pair of checkpoints), read from each
experiment's stats.json: LoRA vs full seed by seed, and each vs the base. Seed-level inference
(about the methods) is the headline's."""

from __future__ import annotations

from ja_adapt.report import fmt
from ja_adapt.report.comparison import Comparison
from ja_adapt.report.quality import compare, doc_test_row
from ja_adapt.report.status import NOT_RUN_TEXT, not_run, ok


def build(ctx) -> dict:
    measured = ctx.has_eval and ctx.cmp.complete
    return {"statistical_results": statistics_section(ctx.stats_of, ctx.cmp, ctx.base.eval) if measured else not_run()}


def statistics_section(stats_of: dict, cmp: Comparison, base_eval) -> dict:
    """Document-level rows (about one pair of checkpoints) read from each experiment's stats.json:
    LoRA vs full seed by seed, and each vs the base. Seed-level inference (about the methods) is the
    headline section's. stats_of: run name → its experiment's stats.json (groups.stats_by_run)."""
    rows = []
    fulls = {r.seed: r for r in cmp.b.runs}
    for r in cmp.a.runs:
        f = fulls.get(r.seed)
        if f is not None and r.eval and f.eval:
            rows.append(doc_test_row(*compare(stats_of[r.name], r.name, f.name), r.seed))
    for g in cmp.groups:
        for r in g.runs:
            if r.eval and base_eval:
                rows.append(doc_test_row(*compare(stats_of[r.name], r.name, "base"), r.seed))
    return {
        "status": "ok",
        "document_level": rows,
        "levels": {
            "document": "about one pair of checkpoints: the units are the evaluation's "
            "documents; Holm within each pair's questions (stats.json families)",
            "seed": "about the methods: see the headline section (Welch over seeds)",
        },
    }


def blocks(res: dict, plots: dict) -> list[tuple]:
    b = [("h", 4, "Statistical significance")]
    st = res.get("statistical_results")
    if not ok(st):
        return b + [("p", NOT_RUN_TEXT)]
    b.append(
        (
            "p",
            "Seed level (about the methods): the answer section above. Document level (about one "
            "pair of checkpoints, each row one seed): held-out Japanese bits/char, char-weighted "
            "difference a − b with a 95% paired document-bootstrap interval; the per-document "
            "Wilcoxon signed-rank test (each document counts once) with its Holm-adjusted p in the "
            "pair's Japanese-quality family, or why it could not run.",
        )
    )
    b.append(
        (
            "table",
            ["a", "b", "seed", "documents", "a − b", "95% CI", "Wilcoxon p", "Holm p", "chrF b − a (p)"],
            [
                [
                    r["a"],
                    r["b"],
                    r["seed"],
                    fmt.integer(r.get("n")),
                    fmt.num(r.get("diff")),
                    f"[{fmt.num(r.get('ci_low'))}, {fmt.num(r.get('ci_high'))}]",
                    r.get("wilcoxon") or fmt.num(r.get("wilcoxon_p"), 3),
                    fmt.num(r.get("wilcoxon_p_holm"), 3),
                    f"{fmt.num(r.get('chrf_diff_b_minus_a'))} ({fmt.num(r.get('chrf_p'), 3)})",
                ]
                for r in st["document_level"]
            ],
        )
    )
    return b
