"""Memory efficiency: peak, mean, optimizer-state and model-state memory per configuration, the
LoRA-vs-full reductions, and `ja-adapt plan`'s prediction beside the measured peak."""

from __future__ import annotations

from ja_adapt.report import analysis as an
from ja_adapt.report import fmt
from ja_adapt.report.blocks import group_table, vs_list
from ja_adapt.report.groups import per_group
from ja_adapt.report.load import Experiment

REDUCTIONS = (
    ("peak_reduction_pct", "peak_mem_bytes"),
    ("mean_reduction_pct", "mean_mem_bytes"),
    ("optimizer_reduction_pct", "optimizer_state_bytes"),
    ("model_reduction_pct", "model_state_bytes"),
)


def build(ctx) -> dict:
    out = {
        "groups": per_group(
            ctx.compared,
            {
                "peak_mem_bytes": lambda g: g.summary("peak_mem_bytes"),
                "mean_mem_bytes": lambda g: g.summary("mean_mem_bytes"),
                "optimizer_state_bytes": lambda g: g.summary("optimizer_state_bytes"),
                "model_state_bytes": lambda g: g.summary("model_state_bytes"),
                "memory_kind": lambda g: g.runs[0].summary.get("memory_kind"),
            },
        ),
        "lora_vs_full": ctx.cmp.vs({k: (an.reduction_pct, lambda g, key=key: g.summary(key)) for k, key in REDUCTIONS}),
    }
    predicted = predicted_vs_measured(ctx.exps)
    if predicted:
        out["predicted_vs_measured"] = predicted
    return {"memory_usage": out}


def predicted_vs_measured(exps: list[Experiment]) -> dict:
    """Per run with a plan (OUT/plan.json): predicted allocated and total bytes beside the measured peak."""
    predicted = {}
    for e in exps:
        for r in e.runs:
            plan = (e.plan or {}).get(r.name)
            if not isinstance(plan, dict):
                continue
            total = plan.get("total_bytes", plan.get("total"))  # models.plan.plan_memory's keys
            alloc = plan.get("peak_allocated_bytes")
            if isinstance(total, (int, float)):
                measured = r.summary.get("peak_mem_bytes")
                has_alloc = isinstance(alloc, (int, float))
                # cuda_allocated peaks are comparable with the predicted allocator peak (no context)
                ref = alloc if has_alloc and r.summary.get("memory_kind") == "cuda_allocated" else total
                predicted[r.name] = {
                    "method": r.method,
                    "predicted_total_bytes": float(total),
                    "predicted_allocated_bytes": float(alloc) if has_alloc else None,
                    "measured_peak_bytes": measured,
                    "memory_kind": r.summary.get("memory_kind"),
                    "ratio_measured_over_predicted": an.ratio(measured, ref),
                }
    return predicted


def blocks(res: dict, plots: dict) -> list[tuple]:
    mem = res["memory_usage"]
    kinds = sorted({str(v.get("memory_kind")) for v in mem["groups"].values()})
    b = [
        ("h", 4, "Memory efficiency"),
        (
            "p",
            f"Memory kind: {', '.join(kinds)} (cuda_*: torch's CUDA allocator; any other kind is process "
            "memory on the CPU, which includes the Python runtime).",
        ),
        group_table(
            mem["groups"],
            [
                ("peak", "peak_mem_bytes", fmt.nbytes),
                ("mean", "mean_mem_bytes", fmt.nbytes),
                ("optimizer state", "optimizer_state_bytes", fmt.nbytes),
                ("model state", "model_state_bytes", fmt.nbytes),
            ],
        ),
    ]
    if mem.get("lora_vs_full"):
        b.append(
            vs_list(
                mem["lora_vs_full"],
                {
                    k: (k.replace("_pct", "").replace("_", " ") + " (LoRA vs full)", fmt.pct)
                    for k in mem["lora_vs_full"]
                },
            )
        )
    if mem.get("predicted_vs_measured"):
        b += _predicted_blocks(mem["predicted_vs_measured"], plots)
    return b


def _predicted_blocks(pm: dict, plots: dict) -> list[tuple]:
    b = [
        (
            "p",
            "Predicted by ja-adapt plan: total = allocator peak + CUDA context and allocator overhead; "
            "measured / predicted uses the allocator peak for cuda_allocated measurements, else the total.",
        ),
        (
            "table",
            ["run", "method", "predicted allocated", "predicted total", "measured peak", "measured / predicted"],
            [
                [
                    n,
                    v["method"],
                    fmt.nbytes(v.get("predicted_allocated_bytes")),
                    fmt.nbytes(v["predicted_total_bytes"]),
                    fmt.nbytes(v["measured_peak_bytes"]),
                    fmt.num(v["ratio_measured_over_predicted"], 3),
                ]
                for n, v in sorted(pm.items())
            ],
        ),
    ]
    if "predicted_memory" in plots:
        b.append(("img", plots["predicted_memory"], "Predicted (ja-adapt plan) vs measured peak memory"))
    return b
