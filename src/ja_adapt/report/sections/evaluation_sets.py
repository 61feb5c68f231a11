"""Characters and documents per evaluation set, and what decontamination removed."""

from __future__ import annotations

from ja_adapt.report import fmt
from ja_adapt.report.status import NOT_RUN_TEXT

MIN_EVAL_CHARS = 20_000  # the size an evaluation set should reach to resolve differences


def build(ctx) -> dict:
    return {"evaluation_sets": evaluation_sets(ctx.exps, ctx.base.eval)}


def evaluation_sets(exps, base_eval: dict | None) -> dict:
    """Characters and documents per evaluated (lang, domain), per language, and decontamination."""
    groups = ((base_eval or {}).get("likelihood") or {}).get("by_group") or {}
    by_group = {
        k: {"documents": v.get("documents"), "chars": v.get("chars"), "trained": v.get("trained")}
        for k, v in groups.items()
    }
    by_lang: dict[str, dict] = {}
    for k, v in by_group.items():
        lang = k.split("/", 1)[0]
        agg = by_lang.setdefault(lang, {"documents": 0, "chars": 0})
        agg["documents"] += v["documents"] or 0
        agg["chars"] += v["chars"] or 0
    for v in by_lang.values():
        v["at_least_min"] = v["chars"] >= MIN_EVAL_CHARS
    deco = next((e.decontamination for e in exps if e.decontamination), None)
    return {
        "status": "ok" if by_group else "not run",
        "min_chars": MIN_EVAL_CHARS,
        "by_group": by_group,
        "by_lang": by_lang,
        "decontamination": deco,
    }


def blocks(res: dict, plots: dict) -> list[tuple]:
    """The report's evaluation-sets section: characters and documents per language, then what
    decontamination removed."""
    es = res.get("evaluation_sets") or {}
    if es.get("status") != "ok":
        return [("p", NOT_RUN_TEXT)]
    b = []
    b.append(
        (
            "p",
            f"Characters and documents evaluated per language (the target is at least "
            f"{fmt.integer(es['min_chars'])} characters per language), after decontamination.",
        )
    )
    b.append(
        (
            "table",
            ["language", "documents", "characters", f"≥ {fmt.integer(es['min_chars'])}"],
            [
                [lang, fmt.integer(v["documents"]), fmt.integer(v["chars"]), "yes" if v["at_least_min"] else "NO"]
                for lang, v in es["by_lang"].items()
            ],
        )
    )
    return b + _decontamination_blocks(es.get("decontamination") or {})


def _decontamination_blocks(deco: dict) -> list[tuple]:
    """What decontamination removed: its rule and totals, then one row per training set (without a
    recorded rule, its status only; without a record, nothing)."""
    if not deco.get("rule"):
        return [("p", f"Decontamination: {deco.get('status', 'not recorded')}.")] if deco else []
    r = deco["rule"]
    return [
        (
            "p",
            f"Decontamination: an evaluation document is removed when at least "
            f"{fmt.share(r['threshold'], 0)} of its distinct character {r['ngram']}-grams occur in one "
            f"training document ({r['normalise']}). Removed {fmt.integer(deco['eval']['removed_docs'])} of "
            f"{fmt.integer(deco['eval']['docs'])} documents ({fmt.integer(deco['eval']['removed_chars'])} "
            "characters).",
        ),
        (
            "table",
            [
                "training set",
                "training documents",
                "training characters",
                "evaluation documents removed",
                "share of kept n-grams seen in it",
            ],
            [
                [
                    name,
                    fmt.integer(v.get("train_docs")),
                    fmt.integer(v.get("train_chars")),
                    fmt.integer(v.get("removed_docs")),
                    fmt.share(v.get("kept_ngrams_seen")),
                ]
                for name, v in deco["train_sets"].items()
            ],
        ),
    ]
