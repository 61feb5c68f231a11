"""What `ja-adapt bench` reports: the runs summarised over repeats, and the Markdown tables.

    summarise   per (method, side) min/median/max of every metric, and the engine ÷ peer ratios
    table       those two as Markdown (what `ja-adapt bench` prints)
    plan_table  the engine's runs beside `ja-adapt plan`'s prediction (benchmarks/cpu-0.5b.sh)
Kept apart from bench.py, which prepares the data and runs the processes, because these read only
result dicts: a saved bench.json can be re-rendered without running anything.
"""

from __future__ import annotations

import statistics

from ja_adapt.apps.bench_workers import ENGINES
from ja_adapt.methods.spec import SPECS
from ja_adapt.models.arch import PRESETS
from ja_adapt.models.plan import plan_time

# ---- summary -----------------------------------------------------------------------------------------


def _spread(values: list[float]) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def _memory_key(runs: list[dict]) -> str:
    return "peak_allocated_bytes" if any("peak_allocated_bytes" in r for r in runs) else "peak_rss_bytes"


def _side_row(method: str, side: str, mine: list[dict], mem: str) -> dict:
    """One (method, side)'s min/median/max of each metric over its repeats."""
    row = {"method": method, "side": side, "runs": len(mine), "memory": mem}
    for key in ("tokens_per_s", "step_time_s", "padding_fraction", "mfu", mem, "peak_reserved_bytes", "peak_rss_bytes"):
        row[key] = _spread([r.get(key) for r in mine])
    return row


def _ratio(method: str, engine: str, peer: str, sides: dict, mem: str) -> dict:
    """Engine ÷ peer tokens/s and peak memory, paired by repeat (runs of one repeat ran back to back)."""
    pairs = [(e, sides[peer][k]) for k, e in sides[engine].items() if k in sides[peer]]
    return {
        "method": method,
        "engine": engine,
        "peer": peer,
        "memory": mem,
        "speedup": _spread([e["tokens_per_s"] / p["tokens_per_s"] for e, p in pairs]),
        "memory_ratio": _spread([e[mem] / p[mem] for e, p in pairs]),
    }


def summarise(runs: list[dict]) -> dict:
    """{"rows": per (method, side) min/median/max of each metric over repeats,
    "ratios": per (method, engine side, peer side) engine ÷ peer tokens/s and peak memory, paired
    by repeat (runs of one repeat ran back to back)}."""
    ok = [r for r in runs if "error" not in r]
    mem = _memory_key(ok)
    rows, ratios = [], []
    for method in dict.fromkeys(r["method"] for r in ok):
        sides = {}  # side -> repeat -> run
        for r in ok:
            if r["method"] == method:
                sides.setdefault(r["side"], {})[r["repeat"]] = r
        rows += [_side_row(method, side, list(by_repeat.values()), mem) for side, by_repeat in sides.items()]
        for engine in (s for s in sides if s in ENGINES):
            for peer in (s for s in sides if s not in ENGINES):
                ratios.append(_ratio(method, engine, peer, sides, mem))
    return {"rows": rows, "ratios": ratios}


# ---- Markdown ----------------------------------------------------------------------------------------


def _fmt(s: dict | None, f: str) -> str:
    if s is None:
        return "—"
    return f"{f.format(s['median'])} ({f.format(s['min'])}–{f.format(s['max'])})"


def table(summary: dict) -> str:
    """Two Markdown tables: median (min–max) over repeats, then the engine ÷ peer ratios."""

    def gib(s):
        return s and {k: v / 2**30 for k, v in s.items()}

    rows = summary["rows"]
    mem = rows[0]["memory"] if rows else "peak_rss_bytes"
    label = "peak alloc GiB" if mem == "peak_allocated_bytes" else "peak RSS GiB"
    out = [f"| method | side | tokens/s | step s | padding | {label} | reserved GiB | MFU |", "|---" * 8 + "|"]
    for r in rows:
        out.append(
            " | ".join(
                [
                    f"| {r['method']}",
                    r["side"],
                    _fmt(r["tokens_per_s"], "{:,.0f}"),
                    _fmt(r["step_time_s"], "{:.3f}"),
                    _fmt(r["padding_fraction"], "{:.0%}"),
                    _fmt(gib(r[mem]), "{:.2f}"),
                    _fmt(gib(r["peak_reserved_bytes"]), "{:.2f}"),
                    _fmt(r["mfu"], "{:.1%}"),
                ]
            )
            + " |"
        )
    out += ["", f"| method | engine | peer | tokens/s ratio | {label.split(' GiB')[0]} ratio |", "|---" * 5 + "|"]
    for r in summary["ratios"]:
        out.append(
            f"| {r['method']} | {r['engine']} | {r['peer']} | {_fmt(r['speedup'], '{:.2f}×')} "
            f"| {_fmt(r['memory_ratio'], '{:.2f}×')} |"
        )
    return "\n".join(out)


# ---- measured against the plan -------------------------------------------------------------------------

_PLAN_HEADER = [
    "| method | targets | precision | model.dtype | act. ckpt | batch × seq | peak RSS GiB "
    "(measured) | predicted | pred/meas | step s (measured) | predicted | pred/meas | matmul GFLOP/s |",
    "|---" * 13 + "|",
]


def _plan_row(res: dict, r: dict, matmul_flops: float) -> dict:
    """One engine run of bench result `res` beside the plan's prediction for its settings."""
    b, eng = res["config"], res["engine_config"]
    t = plan_time(
        PRESETS[b["preset"]],
        method=r["method"],
        trainable=r["trainable_params"],
        seq=b["seq"],
        tokens=b["batch"] * b["seq"],
        gpu="h100",
        mfu=1.0,
        peak=r.get("matmul_flops", matmul_flops),
        activation_checkpointing=eng["train"]["activation_checkpointing"],
    )
    return {
        "method": r["method"],
        "targets": eng["lora"]["targets"] if SPECS[r["method"]].adapts_linears else "—",
        "precision": b["precision"],
        "dtype": eng["model"]["dtype"],
        "ckpt": eng["train"]["activation_checkpointing"],
        "shape": f"{b['batch']} × {b['seq']}",
        "rss": r["peak_rss_bytes"],
        "rss_pred": r["planned_peak_allocated_bytes"] + r["baseline_rss_bytes"],
        "step": r["step_time_s"],
        "step_pred": t["seconds"],
        "matmul_flops": t["peak_flops"],
    }


def _plan_line(row: dict) -> str:
    return (
        f"| {row['method']} | {row['targets']} | {row['precision']} | {row['dtype']} | "
        f"{'on' if row['ckpt'] else 'off'} | {row['shape']} | {row['rss'] / 2**30:.2f} | "
        f"{row['rss_pred'] / 2**30:.2f} | {row['rss_pred'] / row['rss']:.2f} | {row['step']:.1f} | "
        f"{row['step_pred']:.1f} | {row['step_pred'] / row['step']:.2f} | "
        f"{row['matmul_flops'] / 1e9:.1f} |"
    )


def plan_table(results: list[dict], matmul_flops: float) -> tuple[str, list[dict]]:
    """The engine's runs beside `ja-adapt plan` for the same settings on a CPU, as Markdown and rows.

    Predicted peak RSS = the plan's peak tensor bytes + the run's RSS before the model was built
    (interpreter, libraries, data: what the tensors add to). Predicted step time = the step's
    hardware FLOPs (the plan's FLOPs per token, plus checkpointing's recompute, times batch · seq)
    at this machine's fp32 matmul rate (telemetry.measure_matmul_flops): the run's own, measured
    in its process right after it (a shared machine's rate varies), else `matmul_flops`.
    """
    rows = [
        _plan_row(res, r, matmul_flops)
        for res in results
        for r in res["runs"]
        if r.get("side") in ENGINES and "error" not in r
    ]
    return "\n".join(_PLAN_HEADER + [_plan_line(row) for row in rows]), rows
