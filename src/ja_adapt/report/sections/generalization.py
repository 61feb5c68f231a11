"""Generalization: held-out Japanese quality and its gain over the base, cross-domain bits/char on the
evaluation-only domains, and catastrophic forgetting of the other languages (with per-checkpoint
learning-vs-forgetting points)."""

from __future__ import annotations

from ja_adapt.evaluate.forgetting import learning_forgetting_points
from ja_adapt.report import fmt
from ja_adapt.report.load import Run
from ja_adapt.report.quality import cross_domains
from ja_adapt.report.status import NOT_RUN_TEXT, not_run, ok


def build(ctx) -> dict:
    if not ctx.has_eval:
        return {"generalization_results": not_run()}
    groups, base = ctx.cmp.groups, ctx.base
    return {
        "generalization_results": {
            "status": "ok",
            "held_out": _held_out(groups, base),
            "cross_domain": _cross_domain(groups, base),
            "catastrophic_forgetting": _forgetting(groups, base.eval),
        }
    }


def _held_out(groups, base) -> dict:
    base_bpc = base.quality.get("ja_bits_per_char")
    held = {
        g.label: {
            "ja_bits_per_char": g.q("ja_bits_per_char"),
            "ja_token_ppl": g.q("ja_token_ppl"),
            "generalization_gap": g.dyn("generalization_gap"),
            "gain_vs_base_bits_per_char": g.agg(
                lambda r, g=g: _diff(base_bpc, g.quality[r.seed].get("ja_bits_per_char"))
            ),
        }
        for g in groups
    }
    if base.quality:
        held["base"] = {"ja_bits_per_char": base.q("ja_bits_per_char"), "ja_token_ppl": base.q("ja_token_ppl")}
    return held


def _cross_domain(groups, base) -> dict:
    doms = cross_domains(next((r.eval for g in groups for r in g.runs if r.eval), None))
    if not doms:
        return not_run()
    cross = {
        g.label: {
            "mean_bits_per_char": g.q("cross_domain_bits_per_char"),
            "sd_over_domains": g.q("cross_domain_sd_bits_per_char"),
            "by_domain": {d: g.q(f"domain_{d}_bits_per_char") for d in doms},
        }
        for g in groups
    }
    if base.quality:
        cross["base"] = {
            "mean_bits_per_char": base.q("cross_domain_bits_per_char"),
            "by_domain": {d: base.q(f"domain_{d}_bits_per_char") for d in doms},
        }
    return {"domains": doms, "groups": cross}


def _forgetting(groups, base_eval: dict | None) -> dict:
    langs = sorted(
        {
            k.split("_")[0]
            for g in groups
            for s in g.quality
            for k in g.quality[s]
            if k.endswith("_retention") and g.quality[s][k] is not None
        }
    )
    if not langs:
        return not_run()
    forget = {
        "langs": langs,
        "direction": "retention = base bpb / adapted bpb; 1 = no forgetting, < 1 = forgot",
        "groups": {
            g.label: {f"{lang}_{k}": g.q(f"{lang}_{k}") for lang in langs for k in ("retention", "bpb_increase")}
            for g in groups
        },
    }
    if base_eval:
        forget["checkpoints"] = {
            r.name: {
                "group": g.label,
                "points": learning_forgetting_points(_with_final(r), base_eval, langs=tuple(langs)),
            }
            for g in groups
            for r in g.runs
            if r.checkpoints
        }
    return forget


def _diff(a, b):
    return a - b if None not in (a, b) else None


def _with_final(r: Run) -> list[tuple[int, dict]]:
    """Checkpoint evals plus the final eval when no checkpoint was taken at the last step."""
    steps = {s for s, _ in r.checkpoints}
    final = r.summary.get("steps")
    return r.checkpoints + ([(final, r.eval)] if r.eval and final not in steps else [])


def blocks(res: dict, plots: dict) -> list[tuple]:
    b = [("h", 4, "Generalization")]
    gr = res.get("generalization_results")
    if not ok(gr):
        return b + [("p", NOT_RUN_TEXT)]
    b.append(
        (
            "table",
            ["model", "held-out ja bits/char", "token ppl", "gain vs base (bits/char)", "generalization gap"],
            [
                [
                    g,
                    fmt.agg(v.get("ja_bits_per_char")),
                    fmt.agg(v.get("ja_token_ppl")),
                    fmt.agg(v.get("gain_vs_base_bits_per_char")),
                    fmt.agg(v.get("generalization_gap")),
                ]
                for g, v in gr["held_out"].items()
            ],
        )
    )
    cd = gr["cross_domain"]
    if ok(cd):
        b.append(
            (
                "table",
                ["model", "cross-domain mean bits/char"] + cd["domains"],
                [
                    [g, fmt.agg(v["mean_bits_per_char"])] + [fmt.agg(v["by_domain"][d]) for d in cd["domains"]]
                    for g, v in cd["groups"].items()
                ],
            )
        )
    fg = gr["catastrophic_forgetting"]
    if ok(fg):
        kinds = ("retention", "bpb_increase")
        b.append(("p", f"Catastrophic forgetting ({fg['direction']}):"))
        b.append(
            (
                "table",
                ["model"] + [f"{lang} {k.replace('_', ' ')}" for lang in fg["langs"] for k in kinds],
                [
                    [g] + [fmt.agg(v[f"{lang}_{k}"]) for lang in fg["langs"] for k in kinds]
                    for g, v in fg["groups"].items()
                ],
            )
        )
        b.append(("p", "Learning vs forgetting per seed and checkpoint: the plot in the answer section."))
    return b
