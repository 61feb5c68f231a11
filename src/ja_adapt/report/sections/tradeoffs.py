"""LoRA vs full fine-tuning trade-offs: performance retention per reference metric (metrics.REFERENCE),
gain retention over the base, efficiency gains (full / LoRA for costs) and the composite efficiency
score (analysis.DEFINITIONS)."""

from __future__ import annotations

from ja_adapt.report import analysis as an
from ja_adapt.report import fmt
from ja_adapt.report.metrics import REFERENCE
from ja_adapt.report.status import NOT_RUN_TEXT, not_run, ok


def build(ctx) -> dict:
    cmp = ctx.cmp
    if not cmp.complete:
        return {"tradeoff_analysis": not_run()}
    lora, full = cmp.a, cmp.b
    ret = {}
    for m in REFERENCE:
        a, b = lora.q(m.key)["mean"], full.q(m.key)["mean"]
        if None not in (a, b):
            low = m.lower_is_better
            ret[m.key] = {
                "value": an.retention(a, b, low),
                "lora": a,
                "full": b,
                "direction": "full / LoRA (lower is better)" if low else "LoRA / full (higher is better)",
            }
    gain = cmp.vs(
        {
            f"{name}_efficiency_gain": (lambda a, b: an.ratio(b, a), (lambda k: lambda g: g.summary(k))(key))
            for name, key in (
                ("parameter", "params_trainable"),
                ("memory", "peak_mem_bytes"),
                ("time", "train_time_s"),
                ("storage", "artifact_bytes"),
            )
        }
    )
    out = {
        "status": "ok",
        "performance_retention": ret,
        "gain_retention": an.gain_retention(
            ctx.base.quality.get("ja_bits_per_char"),
            lora.q("ja_bits_per_char")["mean"],
            full.q("ja_bits_per_char")["mean"],
        ),
        **gain,
        "gains_direction": "full / LoRA for costs; > 1: LoRA costs less",
    }
    out["efficiency_score"] = {
        "value": an.efficiency_score(out["gain_retention"], out["memory_efficiency_gain"], out["time_efficiency_gain"]),
        "formula": "gain_retention × sqrt(memory_efficiency_gain × time_efficiency_gain)",
    }
    return {"tradeoff_analysis": out}


def blocks(res: dict, plots: dict) -> list[tuple]:
    tr = res.get("tradeoff_analysis")
    if not ok(tr):
        return [("p", NOT_RUN_TEXT)]
    head = (res.get("headline") or {}).get("metrics") or {}

    def diff(k):
        d = (head.get(k) or {}).get("difference") or {}
        return f"{fmt.num(d.get('diff'))} [{fmt.num(d.get('ci_low'))}, {fmt.num(d.get('ci_high'))}]" if d else fmt.DASH

    names = {m.key: m.reference for m in REFERENCE}
    return [
        (
            "p",
            "Retention is a ratio of seed means (a point estimate); the interval beside it is the "
            "seed-level 95% interval of LoRA − full from the answer section.",
        ),
        (
            "table",
            ["metric", "LoRA", "full", "retention", "LoRA − full [95% CI]", "direction"],
            [
                [names[k], fmt.num(v["lora"]), fmt.num(v["full"]), fmt.num(v["value"]), diff(k), v["direction"]]
                for k, v in tr["performance_retention"].items()
            ],
        ),
        (
            "ul",
            [
                f"gain retention: {fmt.num(tr.get('gain_retention'))}",
                f"parameter efficiency gain: {fmt.times(tr.get('parameter_efficiency_gain'))}",
                f"memory efficiency gain: {fmt.times(tr.get('memory_efficiency_gain'))}",
                f"time efficiency gain: {fmt.times(tr.get('time_efficiency_gain'))}",
                f"storage efficiency gain: {fmt.times(tr.get('storage_efficiency_gain'))}",
                f"efficiency score: {fmt.num(tr['efficiency_score']['value'])} (= {tr['efficiency_score']['formula']})",
            ],
        ),
    ]
