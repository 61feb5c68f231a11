"""Script-specific performance: character accuracy (teacher-forced argmax) and bits per character per
Japanese script, per model, with the accuracy gap between the compared pair."""

from __future__ import annotations

from ja_adapt.evaluate.scripts import SCRIPTS
from ja_adapt.report import fmt
from ja_adapt.report.status import NOT_RUN_TEXT, not_run, ok

NAMES = (*SCRIPTS, "overall")


def build(ctx) -> dict:
    groups, base = ctx.cmp.groups, ctx.base
    if not any(g.q("char_accuracy_overall")["n"] for g in groups):
        return {"japanese_performance": not_run()}
    out = {
        "character_accuracy": {},
        "bits_per_char": {},
        "chars": {s: base.quality.get(f"chars_{s}") for s in NAMES} if base.quality else {},
    }  # the same text
    if base.quality:
        out["character_accuracy"]["base"] = {s: base.q(f"char_accuracy_{s}") for s in NAMES}
        out["bits_per_char"]["base"] = {s: base.q(f"bits_per_char_{s}") for s in NAMES}
    for g in groups:
        out["character_accuracy"][g.label] = {s: g.q(f"char_accuracy_{s}") for s in NAMES}
        out["bits_per_char"][g.label] = {s: g.q(f"bits_per_char_{s}") for s in NAMES}
    if len(groups) == 2:
        acc, (a, b) = out["character_accuracy"], (g.label for g in groups)
        out["performance_gap"] = {s: _diff(acc[b][s]["mean"], acc[a][s]["mean"]) for s in NAMES}
        out["performance_gap_direction"] = f"accuracy({b}) − accuracy({a}); > 0: {b} more accurate"
    return {"japanese_performance": {"status": "ok", **out}}


def _diff(a, b):
    return a - b if None not in (a, b) else None


def blocks(res: dict, plots: dict) -> list[tuple]:
    b = [("h", 4, "Script-specific performance")]
    jp = res.get("japanese_performance")
    if not ok(jp):
        return b + [("p", NOT_RUN_TEXT)]
    scripts = ["hiragana", "katakana", "kanji", "other", "overall"]
    for title, key in (
        ("Character accuracy (teacher-forced argmax)", "character_accuracy"),
        ("Bits per character", "bits_per_char"),
    ):
        b.append(("p", title + ":"))
        b.append(("table", ["model"] + scripts, [[g] + [fmt.agg(v[s]) for s in scripts] for g, v in jp[key].items()]))
    if jp.get("chars"):
        b.append(
            (
                "p",
                "Characters scored per script (the same text for every model): "
                + ", ".join(f"{s} {fmt.integer(n)}" for s, n in jp["chars"].items())
                + ".",
            )
        )
    if jp.get("performance_gap"):
        head = (res.get("headline") or {}).get("metrics") or {}

        def gap(s, v):
            d = (head.get(f"char_accuracy_{s}") or {}).get("difference")
            ci = f" (LoRA − full 95% CI [{fmt.num(d.get('ci_low'))}, {fmt.num(d.get('ci_high'))}])" if d else ""
            return f"{s} {fmt.num(v)}{ci}"

        b.append(
            (
                "p",
                f"Accuracy gap ({jp['performance_gap_direction']}): "
                + ", ".join(gap(s, v) for s, v in jp["performance_gap"].items())
                + ".",
            )
        )
    if "script_accuracy" in plots:
        b.append(("img", plots["script_accuracy"], "Character accuracy by script"))
    return b
