"""Recommendations from the measurements: advice drawn only from resolved differences (headline: seed
level; rank sweep: document level) and from exact counts; every sentence's numbers are kept beside
it as its basis."""

from __future__ import annotations

from ja_adapt.report import fmt
from ja_adapt.report.blocks import unit_of
from ja_adapt.report.sections.environment import hardware
from ja_adapt.report.status import NOT_RUN_TEXT, not_run, ok


def build(ctx) -> dict:
    res = ctx.results
    items = []
    device, total = _device_text(hardware(ctx.exps))
    head = res.get("headline", {})
    if head.get("status") == "ok":
        items += _headline_advice(head, device)
        peaks = {side: g.summary("peak_mem_bytes")["mean"] for side, g in (("lora", ctx.cmp.a), ("full", ctx.cmp.b))}
        if total and all(peaks.values()):
            items.append(
                {
                    "topic": "hardware",
                    "basis": {"device_total_bytes": total, **peaks},
                    "text": f"On {device} ({fmt.nbytes(total)}), full fine-tuning peaked at "
                    f"{fmt.nbytes(peaks['full'])} ({fmt.share(peaks['full'] / total)} of the device) and "
                    f"LoRA at {fmt.nbytes(peaks['lora'])} ({fmt.share(peaks['lora'] / total)}) with this "
                    "batch and sequence length.",
                }
            )
    items += _tuning_advice(res.get("lr_tuning", {}), res.get("rank_sensitivity", {}))
    if not items:
        return {"recommendations": not_run("no LoRA-vs-full comparison or sweep to base advice on")}
    return {
        "recommendations": {
            "status": "ok",
            "items": items,
            "rule": "a difference is stated only when resolved "
            "(headline rule); otherwise the sentence says there is none, with its interval",
        }
    }


def _device_text(devices: list[dict]) -> tuple[str, float | None]:
    """('NVIDIA H100 80GB HBM3', total bytes or None) of the first recorded device."""
    if not devices:
        return "the recorded hardware", None
    d = devices[0]
    name = d.get("device_name") or d.get("device_type") or "the recorded device"
    total = d.get("device_memory_bytes")  # train.telemetry.device_info (CUDA devices only)
    total = total if isinstance(total, (int, float)) and total > 0 else None
    return str(name), total


def _diff_text(m: dict, key: str) -> str:
    d, unit = m["difference"], unit_of(key)
    how = (
        "exact"
        if d.get("exact")
        else (f"95% CI [{unit(d.get('ci_low'))}, {unit(d.get('ci_high'))}], Holm p {fmt.num(d.get('p_holm'), 3)}")
    )
    return (
        f"{m['name']}: LoRA {unit(m['lora'].get('mean'))} vs full {unit(m['full'].get('mean'))}, "
        f"difference {unit(d.get('diff'))} ({how})"
    )


def _better(m: dict, full: str = "full fine-tuning") -> str:
    return "LoRA" if m["better"] == "lora" else full


def _headline_advice(head: dict, device: str) -> list[dict]:
    """The method, parameters, forgetting and supervised-task items from the headline's verdicts."""
    metrics = head["metrics"]
    by_q = {q: [k for k in keys if k in metrics] for q, keys in head["families"].items()}
    items = [_method_advice(metrics, by_q, device, min(len(v["seeds"]) for v in head["methods"].values()))]
    params = metrics.get("params_trainable")
    if params:
        items.append(
            {
                "topic": "parameters",
                "basis": {"lora": params["lora"]["mean"], "full": params["full"]["mean"]},
                "text": f"LoRA trains {fmt.integer(params['lora']['mean'])} parameters against full "
                f"fine-tuning's {fmt.integer(params['full']['mean'])} (exact counts); its "
                f"artifact is an adapter on the base model.",
            }
        )
    forget = [k for k in by_q.get("forgetting", []) if metrics[k]["resolved"]]
    for k in forget:
        m = metrics[k]
        items.append(
            {
                "topic": "forgetting",
                "basis": m["difference"],
                "text": f"Where the base model's other languages must be kept: {_diff_text(m, k)}; "
                f"{_better(m)} forgot less.",
            }
        )
    if not forget and by_q.get("forgetting"):
        items.append(
            {
                "topic": "forgetting",
                "basis": {"resolved": []},
                "text": "No resolved difference in forgetting of the other languages ("
                + "; ".join(_diff_text(metrics[k], k) for k in by_q["forgetting"])
                + ").",
            }
        )
    task = by_q.get("supervised_task", [])
    resolved = [k for k in task if metrics[k]["resolved"]]
    if task:
        text = (
            "On the supervised task (held-out responses): "
            + "; ".join(f"{_diff_text(metrics[k], k)}, {_better(metrics[k])} better" for k in resolved)
            + "."
            if resolved
            else "No resolved difference on the supervised task ("
            + "; ".join(_diff_text(metrics[k], k) for k in task)
            + ")."
        )
        items.append({"topic": "supervised task", "basis": {"resolved": resolved}, "text": text})
    return items


def _method_advice(metrics: dict, by_q: dict, device: str, n: int) -> dict:
    """Which method to prefer: quality first (resolved Japanese-quality metrics), then cost."""
    quality = [k for k in by_q.get("japanese_quality", []) if metrics[k]["resolved"]]
    cost = [k for k in by_q.get("cost", []) if metrics[k]["resolved"]]
    if not quality:
        main = metrics.get("ja_bits_per_char")
        text = (
            f"No resolved difference in Japanese quality between LoRA and full fine-tuning at {n} seeds "
            f"per method" + (f" ({_diff_text(main, 'ja_bits_per_char')})" if main else "") + "."
        )
        gains = [k for k in cost if metrics[k]["better"] == "lora" and k != "params_trainable"]
        if gains:
            text += (
                f" LoRA costs less on {device} ("
                + "; ".join(_diff_text(metrics[k], k) for k in gains)
                + "), so use LoRA unless a larger study resolves a quality gap."
            )
        return {"topic": "method", "text": text, "basis": {"resolved_quality": [], "n_seeds": n}}
    q_better = {metrics[k]["better"] for k in quality}
    winner = "full fine-tuning" if q_better == {"full"} else "LoRA" if q_better == {"lora"} else None
    main = "ja_bits_per_char" if "ja_bits_per_char" in quality else quality[0]
    if winner:
        text = (
            f"Prefer {winner} on {device} when Japanese quality matters most: it is better on every "
            f"resolved Japanese-quality metric ({len(quality)} of {len(by_q['japanese_quality'])}; "
            f"{_diff_text(metrics[main], main)})."
        )
    else:
        text = (
            "Japanese-quality differences point both ways: "
            + "; ".join(f"{metrics[k]['name']} ({_better(metrics[k], 'full')} better)" for k in quality)
            + "."
        )
    gains = sorted(k for k in cost if metrics[k]["better"] == "lora" and k != "params_trainable")
    if winner == "full fine-tuning" and gains:
        text += (
            " Choose LoRA when memory or time is the constraint ("
            + "; ".join(_diff_text(metrics[k], k) for k in gains)
            + ")."
        )
    elif winner == "full fine-tuning":
        text += (
            " No resolved memory or time saving for LoRA at this scale (its "
            f"{fmt.integer(metrics['params_trainable']['lora']['mean'])} trainable parameters make "
            "its artifact small, not its training)."
            if "params_trainable" in metrics
            else ""
        )
    return {"topic": "method", "text": text, "basis": {"resolved_quality": quality, "n_seeds": n}}


def _tuning_advice(tuning: dict, rank: dict) -> list[dict]:
    """The learning-rate choice (and whether it sits at a grid's edge) and the recommended LoRA rank."""
    items = []
    if tuning.get("status") == "ok":
        edge = [m for m, e in tuning["at_grid_edge"].items() if e]
        text = (
            "Learning rates chosen on validation loss: "
            + ", ".join(f"{m} {fmt.num(v)}" for m, v in tuning["chosen"].items())
            + "."
        )
        if edge:
            text += f" At the edge of its grid for {', '.join(edge)}: widen the grid before trusting the choice."
        items.append({"topic": "lr", "text": text, "basis": {"chosen": tuning["chosen"], "at_grid_edge": edge}})
    if rank.get("status") == "ok" and rank.get("recommended_rank") is not None:
        items.append(
            {
                "topic": "rank",
                "basis": {k: rank.get(k) for k in ("recommended_rank", "best_rank", "rule")},
                "text": f"LoRA rank {rank['recommended_rank']}: {rank['rule']} (best measured rank "
                f"{rank['best_rank']}).",
            }
        )
    return items


def blocks(res: dict, plots: dict) -> list[tuple]:
    rec = res.get("recommendations")
    return [("ul", [i["text"] for i in rec["items"]]) if ok(rec) else ("p", rec.get("reason", NOT_RUN_TEXT))]
