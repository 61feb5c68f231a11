"""The answer in sentences, read from results.json's headline (sections/headline.py): the summary,
the LoRA configurations' names and each configuration's gap to full fine-tuning.

A difference is stated as a difference only where results.json calls it resolved.
"""

from __future__ import annotations

from ja_adapt.report import fmt
from ja_adapt.report.blocks import interval, unit_of
from ja_adapt.report.metrics import QUESTIONS, lead_metrics
from ja_adapt.report.status import NOT_RUN_TEXT


def headline_summary(res: dict) -> str:
    """The answer in sentences: resolved differences, or that there are none, with intervals."""
    head = res.get("headline") or {}
    if head.get("status") != "ok":
        return head.get("reason", NOT_RUN_TEXT) if head else NOT_RUN_TEXT
    m = head["metrics"]
    n = {k: len(v["seeds"]) for k, v in head["methods"].items()}
    lr = res.get("lr_tuning") or {}
    how = (
        f"each at its own learning rate chosen on validation loss (LoRA {fmt.num(lr['chosen'].get('lora'))}, "
        f"full {fmt.num(lr['chosen'].get('full'))})"
        if lr.get("status") == "ok"
        else "at the configured settings"
    )
    held = ((res.get("time_efficiency") or {}).get("budget") or {}).get("held_equal", "equal steps")
    out = [
        f"LoRA ({head['methods']['lora']['label']}) against full fine-tuning ({head['methods']['full']['label']}), "
        f"{how}, over {n['lora']} and {n['full']} seeds; seed-level 95% intervals (Welch), Holm per question.",
        f"Budget held equal: {held}.",
    ]
    if gaps := gap_sentence(res):
        out.append(gaps)
    for question, words in QUESTIONS.items():
        keys = [k for k in head["families"].get(question, []) if k in m]
        resolved = [k for k in keys if m[k]["resolved"]]
        if resolved:
            named = [k for k in lead_metrics(question) if k in resolved] or resolved[:1]
            text = "; ".join(
                f"{m[k]['name']} {'LoRA' if m[k]['better'] == 'lora' else 'full'} better by "
                f"{unit_of(k)(abs(m[k]['difference']['diff']))} (LoRA − full "
                f"{interval(m[k]['difference'], unit_of(k))})"
                for k in named
            )
            others = [k for k in resolved if k not in named]
            if others:
                text += "; also resolved: " + ", ".join(
                    f"{m[k]['name']} ({'LoRA' if m[k]['better'] == 'lora' else 'full'} better)" for k in others
                )
            unresolved = len(keys) - len(resolved)
            out.append(
                f"{words[0].upper() + words[1:]}: {text}"
                + (f"; {unresolved} more not resolved" if unresolved else "")
                + "."
            )
        elif keys:
            lead_keys = [k for k in lead_metrics(question) if k in keys] or keys[:1]
            out.append(
                f"{words[0].upper() + words[1:]}: no resolved difference ("
                + "; ".join(
                    f"{m[k]['name']}: LoRA − full {unit_of(k)(m[k]['difference'].get('diff'))}, 95% CI "
                    f"{interval(m[k]['difference'], unit_of(k))}"
                    for k in lead_keys
                )
                + ")."
            )
    return " ".join(out)


def lora_name(side: dict) -> str:
    """`LoRA (q,v, r=16)`: a headline side's method and, for the LoRA family, its adapted
    projections and rank (answer.headline's `methods.lora`)."""
    name = "LoRA" if side.get("method", "lora") == "lora" else side["method"]
    t = side.get("targets")
    bits = [
        (",".join(t) if t in ("qv", "qkvo") else t.replace("_proj", "")) if t else None,
        f"r={side['rank']}" if side.get("rank") is not None else None,
    ]
    return f"{name} ({', '.join(b for b in bits if b)})" if any(bits) else name


def lora_configurations(res: dict) -> list[tuple[str, dict]]:
    """(name, headline) of each LoRA configuration compared with full fine-tuning: the headline's,
    then headline_variants' (a name two configurations share gets its arm appended)."""
    heads = [
        h
        for h in [res.get("headline") or {}, *(res.get("headline_variants") or {}).values()]
        if h.get("status") == "ok"
    ]
    names = [lora_name(h["methods"]["lora"]) for h in heads]
    return [(f"{n} [{h['methods']['lora']['arm']}]" if names.count(n) > 1 else n, h) for n, h in zip(names, heads)]


def _gap(m: dict, tested: bool) -> str:
    """A headline metric's LoRA − full difference in words, with its interval (or "exact"); stated
    as a difference only when resolved within its tested family, as headline_summary does."""
    d = m["difference"]
    ci = "exact" if d.get("exact") else f"95% CI {interval(d)}"
    if m["resolved"] and tested:
        return (
            f"{'LoRA' if m['better'] == 'lora' else 'full'} better by {fmt.num(abs(d['diff']))} "
            f"(LoRA − full {fmt.num(d['diff'])}, {ci})"
        )
    return f"no resolved difference (LoRA − full {fmt.num(d.get('diff'))}, {ci})"


def gap_sentence(res: dict) -> str:
    """Each LoRA configuration's held-out Japanese bits/char gap to full fine-tuning, in one
    sentence, when more than the headline's LoRA was compared ("" otherwise)."""
    if not res.get("headline_variants"):
        return ""
    chosen = (res.get("lr_tuning") or {}).get("chosen") or {}
    parts = []
    for name, h in lora_configurations(res):
        if "ja_bits_per_char" not in h["metrics"]:
            continue
        arm = h["methods"]["lora"]["arm"]
        at = f" at lr {fmt.num(chosen[arm])}" if arm in chosen else ""
        tested = "ja_bits_per_char" in h["families"].get("japanese_quality", [])
        parts.append(f"{name}{at} vs full: {_gap(h['metrics']['ja_bits_per_char'], tested)}")
    return "Held-out Japanese bits/char per LoRA configuration: " + "; ".join(parts) + "." if parts else ""
