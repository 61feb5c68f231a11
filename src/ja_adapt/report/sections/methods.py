"""The methods table: one row per compared entry (a method, or an arm: one method's configuration,
such as LoRA on every linear beside LoRA on q,v), whatever the experiments trained.

Generic over method names: a row is each entry's primary group (groups.primary), so a method
registered in ja_adapt.methods appears with no change here. Every cell is analysis.aggregate over
seeds (mean, sd, 95% interval where one exists). Two derived figures per seed, then aggregated:
  quality gained  = base held-out Japanese bits/char − the method's (bits/char; > 0: better than
                    the base). The base is evaluated once, deterministically, so the seed spread is
                    the method's.
  forgetting      = mean over the forgetting languages (en, zh) of the bits/byte the adapted model
                    lost against the base (evaluate/forgetting.py's bpb_increase; > 0: forgot).
Beside the time per step: Japanese characters per token of the run's tokenizer on the held-out
text (eval.json fertility, evaluate/fertility.py) and training characters per second (summary.json
chars_per_s: tokens/s × the training text's characters per token; "—" where a run lacks it).
The Pareto fronts name the methods no other method beats on both axes (seed means).
"""

from __future__ import annotations

from ja_adapt.evaluate.scripts import SCRIPTS
from ja_adapt.report import fmt
from ja_adapt.report.blocks import unit_of
from ja_adapt.report.groups import primary
from ja_adapt.report.status import not_run

COST_FIELDS = (
    "params_trainable",
    "artifact_bytes",
    "peak_mem_bytes",
    "time_per_step_s",
    "chars_per_s",
    "train_flops",
)


def _ja_chars_per_token(r) -> float | None:
    """Japanese characters per token of a run's tokenizer (eval.json fertility; None: not measured)."""
    return ((((r.eval or {}).get("fertility") or {}).get("by_lang") or {}).get("ja") or {}).get("chars_per_token")


def _forgetting(q: dict) -> float | None:
    """Mean bpb_increase over the languages one evaluation measured forgetting on (None: none)."""
    values = [v for k, v in q.items() if k.endswith("_bpb_increase") and v is not None]
    return sum(values) / len(values) if values else None


def build(ctx) -> dict:
    by_arm = {a: primary(ctx.groups, a) for a in {g.arm for g in ctx.groups}}
    return {"methods": methods_table(by_arm, ctx.base.quality)}


def methods_table(groups_by_arm: dict, base_q: dict) -> dict:
    """{"status", "rows": {arm: {group, method, seeds, cost fields, chars_per_token,
    ja_bits_per_char, quality_gain, char_accuracy: {script: agg}, forgetting, forgetting_by_lang}},
    "pareto": {...}}. groups_by_arm: compared entry (arm or method) → its primary groups.Group."""
    if not groups_by_arm:
        return not_run()
    base_bpc = base_q.get("ja_bits_per_char")
    rows = {}
    for arm, g in sorted(groups_by_arm.items()):
        q = {r.seed: g.quality.get(r.seed) or {} for r in g.runs}
        langs = sorted({k[: -len("_bpb_increase")] for v in q.values() for k in v if k.endswith("_bpb_increase")})
        row = {
            "group": g.label,
            "method": g.method,
            "seeds": [r.seed for r in g.runs],
            "memory_kind": g.runs[0].summary.get("memory_kind"),
            **{k: g.summary(k) for k in COST_FIELDS},
            "chars_per_token": g.agg(_ja_chars_per_token),
            "ja_bits_per_char": g.q("ja_bits_per_char"),
            "char_accuracy": {s: g.q(f"char_accuracy_{s}") for s in (*SCRIPTS, "overall") if s != "other"},
            "forgetting": g.agg(lambda r, q=q: _forgetting(q[r.seed])),
            "forgetting_by_lang": {
                lang: g.agg(lambda r, lang=lang, q=q: q[r.seed].get(f"{lang}_bpb_increase")) for lang in langs
            },
        }
        bpc = row["ja_bits_per_char"]
        gain = g.agg(
            lambda r, q=q: (
                None
                if base_bpc is None or q[r.seed].get("ja_bits_per_char") is None
                else base_bpc - q[r.seed]["ja_bits_per_char"]
            )
        )
        if gain["n"] == 1 and bpc.get("ci_low") is not None and base_bpc is not None:
            # one seed: the run's own bootstrap interval, mirrored (gain falls as bits/char rises)
            gain.update(
                ci_low=base_bpc - bpc["ci_high"], ci_high=base_bpc - bpc["ci_low"], ci_level=bpc.get("ci_level")
            )
        row["quality_gain"] = gain
        rows[arm] = row
    return {
        "status": "ok",
        "rows": rows,
        "base_ja_bits_per_char": base_bpc,
        "pareto": {"params": pareto(rows, "params_trainable"), "forgetting": pareto(rows, "forgetting")},
    }


def pareto(rows: dict, cost: str) -> list[str]:
    """Methods on the front of (higher quality gain, lower `cost`): none is at least as good on both
    and better on one (seed means; methods without both numbers are left out)."""
    pts = {m: (r["quality_gain"].get("mean"), r[cost].get("mean")) for m, r in rows.items()}
    pts = {m: p for m, p in pts.items() if None not in p}

    def beaten(m):
        g, c = pts[m]
        return any(g2 >= g and c2 <= c and (g2, c2) != (g, c) for o, (g2, c2) in pts.items() if o != m)

    return sorted(m for m in pts if not beaten(m))


# above the table: what its rows and columns are
_LEGEND = (
    "Per compared method or arm (its compared configuration; an arm is named by the "
    "comparison, its method in brackets): mean ± sd over seeds [95% interval: over seeds, "
    "or with one seed the evaluation's bootstrap interval]. Quality gained = base held-out "
    "Japanese bits/char − the method's (higher is better); forgetting = bits/byte lost on the "
    "forgetting languages against the base (lower is better); chars/token = held-out Japanese "
    "characters per token of the run's tokenizer; chars/s = training characters per second; "
    "FLOPs/run = the run's training FLOPs (summary.json train_flops: training tokens × the FLOPs "
    "formula per token, models/arch.py)."
)

# below the table where two tokenizers meet (vocab.extend): which measures compare across them
_TOKENIZERS_DIFFER = (
    "These rows use different tokenizers (chars/token differs): compare their quality "
    "in bits per character, which does not depend on the tokenizer, and their speed in "
    "chars/s; a per-token loss, perplexity or tokens/s is not comparable across them "
    "(docs/vocabulary.md)."
)


def blocks(res: dict, plots: dict) -> list[tuple]:
    """The report's methods section: the legend, the table, a note where the rows' tokenizers
    differ, the Pareto fronts and their plot."""
    sec = res.get("methods")
    if not isinstance(sec, dict) or sec.get("status") != "ok":
        return [("p", "Not run: no experiment in the given directories trained a method.")]
    b = [("p", _LEGEND), _table(sec["rows"])]
    cpt = {round(m, 3) for r in sec["rows"].values() if (m := (r.get("chars_per_token") or {}).get("mean"))}
    if len(cpt) > 1:
        b.append(("p", _TOKENIZERS_DIFFER))
    b.append(_fronts(sec["pareto"]))
    if "methods_pareto" in plots:
        b.append(("img", plots["methods_pareto"], "Quality gained vs trainable parameters and vs forgetting"))
    return b


def _table(rows: dict) -> tuple:
    """The methods table block: one row per compared entry, one accuracy column per script."""
    scripts = sorted({s for r in rows.values() for s in r["char_accuracy"]})
    return (
        "table",
        [
            "method",
            "seeds",
            "trainable parameters",
            "artifact",
            "peak memory",
            "time/step",
            "chars/token",
            "chars/s",
            "FLOPs/run",
            "ja bits/char",
            "quality gained",
            *[f"{s} accuracy" for s in scripts],
            "forgetting",
        ],
        [
            [
                m if r.get("method", m) == m else f"{m} ({r['method']})",
                len(r["seeds"]),
                fmt.agg(r["params_trainable"], unit_of("params_trainable")),
                fmt.agg(r["artifact_bytes"], fmt.nbytes),
                fmt.agg(r["peak_mem_bytes"], unit_of("peak_mem_bytes")),
                fmt.agg(r["time_per_step_s"], unit_of("time_per_step_s")),
                fmt.agg(r.get("chars_per_token")),
                fmt.agg(r.get("chars_per_s"), fmt.integer),
                fmt.agg(r.get("train_flops"), _flops),
                fmt.agg(r["ja_bits_per_char"]),
                fmt.agg(r["quality_gain"]),
                *[fmt.agg(r["char_accuracy"].get(s)) for s in scripts],
                fmt.agg(r["forgetting"]),
            ]
            for m, r in rows.items()
        ],
    )


def _flops(x) -> str:
    """A FLOPs count in three significant figures (summary.json train_flops)."""
    return fmt.DASH if x is None else f"{x:.3g}"


def _fronts(pareto: dict) -> tuple:
    """The Pareto fronts as a list block (a dash for an empty front)."""
    front = {k: ", ".join(v) or fmt.DASH for k, v in pareto.items()}
    return (
        "ul",
        [
            f"Pareto front, quality gained vs trainable parameters: {front['params']}",
            f"Pareto front, quality gained vs forgetting: {front['forgetting']}",
            "(fronts from seed means; a method off a front is beaten on both axes by one on it)",
        ],
    )
