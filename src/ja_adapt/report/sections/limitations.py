"""Limitations: seeds per configuration, what the memory measurements include, the sections these
experiments did not run, and the models the results are about."""

from __future__ import annotations

from ja_adapt.report.status import ok

# the measured sections whose absence is a limitation worth naming
OPTIONAL = (
    "statistical_results",
    "japanese_performance",
    "bleu_evaluation",
    "supervised_task",
    "rank_sensitivity",
    "precision_comparison",
    "lr_sensitivity",
    "generalization_results",
    "complexity_analysis",
)


def build(ctx) -> dict:
    return {}


def blocks(res: dict, plots: dict) -> list[tuple]:
    lim = []
    seeds = sorted({len(g["seeds"]) for g in res["groups"].values()})
    lim.append(
        f"Seeds per configuration: {', '.join(str(s) for s in seeds)}; with fewer than 2, no spread or "
        "seed-level test is possible."
    )
    kinds = sorted({str(v.get("memory_kind")) for v in res["memory_usage"]["groups"].values()})
    if any(not k.startswith("cuda") for k in kinds):
        lim.append(
            f"Memory measured as {', '.join(k for k in kinds if not k.startswith('cuda'))} (process memory "
            "on the CPU) includes the Python runtime; compare it only between runs here."
        )
    missing = [k for k in OPTIONAL if not ok(res.get(k))]
    if missing:
        lim.append("Sections not run in these experiments: " + ", ".join(missing) + ".")
    models = sorted({str(g["config"].get("model.name_or_path")) for g in res["groups"].values()})
    lim.append(f"Model(s): {', '.join(models)}; results may not transfer to other model sizes.")
    return [("ul", lim)]
