"""Training time efficiency: total time, time per step, throughput and time to the target loss per
configuration, the LoRA-vs-full reductions, how the runs were timed (runs at once, threads), and
the budget the comparison held equal (experiment.json budget, experiments/budget.py: equal steps,
training tokens or training FLOPs; an experiment without the record held steps equal)."""

from __future__ import annotations

from ja_adapt.report import analysis as an
from ja_adapt.report import fmt
from ja_adapt.report.blocks import group_table, vs_list
from ja_adapt.report.groups import Group, per_group
from ja_adapt.report.load import Experiment


def build(ctx) -> dict:
    return {
        "time_efficiency": {
            "groups": per_group(
                ctx.compared,
                {
                    "train_time_s": lambda g: g.summary("train_time_s"),
                    "time_per_step_s": lambda g: g.summary("time_per_step_s"),
                    "tokens_per_s": lambda g: g.summary("tokens_per_s"),
                    "time_to_target_s": lambda g: g.dyn("time_to_target_s"),
                    "tokens_to_target": lambda g: g.dyn("tokens_to_target"),
                },
            ),
            "lora_vs_full": ctx.cmp.vs(
                {
                    "total_time_reduction_pct": (an.reduction_pct, lambda g: g.summary("train_time_s")),
                    "step_time_reduction_pct": (an.reduction_pct, lambda g: g.summary("time_per_step_s")),
                    "throughput_increase_pct": (an.increase_pct, lambda g: g.summary("tokens_per_s")),
                    "time_to_target_reduction_pct": (an.reduction_pct, lambda g: g.dyn("time_to_target_s")),
                }
            ),
            "conditions": timing_conditions(ctx.exps, ctx.compared),
            "budget": budget_held(ctx.exps, ctx.compared),
        }
    }


def timing_conditions(exps: list[Experiment], groups: list[Group]) -> dict:
    """How the groups' runs were timed: runs at once in their experiment (experiment.json jobs,
    ja_adapt.experiments) and torch threads per run (summary.json)."""
    outs = {str(r.out) for g in groups for r in g.runs}
    return {
        "runs_at_once": sorted({e.manifest.get("jobs", 1) for e in exps if str(e.out) in outs}),
        "torch_threads": sorted(
            {(r.summary.get("device") or {}).get("torch_threads") for g in groups for r in g.runs} - {None}
        ),
    }


BUDGET_NAMES = {"steps": "equal steps", "tokens": "equal training tokens", "flops": "equal training FLOPs"}


def budget_held(exps: list[Experiment], groups: list[Group]) -> dict:
    """What the groups' experiments held equal: {"kind" (steps, tokens, flops, or mixed when the
    experiments differ), "held_equal" (its words), "reference" (the entry that trained
    train.max_steps; None for steps), "per_entry" (entry → steps, tokens, FLOPs; None for steps)}."""
    outs = {str(r.out) for g in groups for r in g.runs}
    records = [e.manifest.get("budget") or {"kind": "steps"} for e in exps if str(e.out) in outs or not outs]
    kinds = sorted({r["kind"] for r in records}) or ["steps"]
    kind = kinds[0] if len(kinds) == 1 else "mixed"
    one = records[0] if len(records) == 1 else {}
    return {
        "kind": kind,
        "held_equal": BUDGET_NAMES.get(kind, " / ".join(BUDGET_NAMES[k] for k in kinds)),
        "reference": one.get("reference"),
        "per_entry": one.get("per_entry"),
    }


def budget_line(budget: dict | None) -> str:
    """The sentence naming the budget held equal (an older results.json without one: equal steps)."""
    b = budget or {"kind": "steps", "held_equal": BUDGET_NAMES["steps"]}
    if b["kind"] == "steps":
        return "Budget held equal: equal steps (every entry trained train.max_steps optimizer steps)."
    text = f"Budget held equal: {b['held_equal']}"
    if b.get("reference") and b.get("per_entry"):
        per = "; ".join(
            f"{m} {e['steps']} steps, {fmt.integer(e['tokens'])} tokens, {e['flops']:.3g} FLOPs"
            for m, e in b["per_entry"].items()
        )
        text += f" (the costliest entry per step, {b['reference']}, trained train.max_steps; {per})"
    return text + "."


def blocks(res: dict, plots: dict) -> list[tuple]:
    tim = res["time_efficiency"]
    b = [
        ("h", 4, "Training time efficiency"),
        group_table(
            tim["groups"],
            [
                ("total time", "train_time_s", fmt.seconds),
                ("time / step", "time_per_step_s", fmt.seconds),
                ("tokens / s", "tokens_per_s", fmt.num),
                ("time to target", "time_to_target_s", fmt.seconds),
                ("tokens to target", "tokens_to_target", fmt.integer),
            ],
        ),
        ("p", budget_line(tim.get("budget"))),
    ]
    if tim.get("lora_vs_full"):
        b.append(
            vs_list(
                tim["lora_vs_full"],
                {k: (k.replace("_pct", " (%)").replace("_", " "), fmt.pct) for k in tim["lora_vs_full"]},
            )
        )
    cond = tim.get("conditions") or {}
    if max(cond.get("runs_at_once") or [1]) > 1:
        b.append(
            (
                "p",
                f"Timed with {' or '.join(map(str, cond['runs_at_once']))} runs at once on this machine, "
                f"{' or '.join(map(str, cond.get('torch_threads') or ['?']))} torch thread(s) each "
                "(experiment.json jobs): these times compare the methods under the same sharing, not "
                "the machine's speed for one run alone (`ja-adapt bench` times one run at a time).",
            )
        )
    if "memory_time" in plots:
        b.append(("img", plots["memory_time"], "Memory and training time per configuration"))
    return b
