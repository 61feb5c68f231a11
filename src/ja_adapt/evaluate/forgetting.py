"""Forgetting: English and Chinese bits per byte of the adapted model against the base model.

docs/metrics.md#forgetting. retention = base_bpb / adapted_bpb on the same text: 1.0 means no
forgetting, < 1 the adapted model needs more bits (forgot), > 1 it improved. Bits per byte (not
token perplexity) so that models with different tokenizers stay comparable.
"""

from __future__ import annotations

FORGETTING_LANGS = ("en", "zh")


def _bpb(results: dict, lang: str) -> float | None:
    entry = results.get("likelihood", {}).get("by_lang", {}).get(lang)
    return entry.get("bits_per_byte") if entry else None


def retention(base_bpb: float, adapted_bpb: float) -> float | None:
    """base_bpb / adapted_bpb (1.0 = no forgetting, < 1 = worse after adaptation)."""
    if base_bpb is None or not adapted_bpb:
        return None
    return base_bpb / adapted_bpb


def forgetting(adapted: dict, base: dict | None, langs=FORGETTING_LANGS) -> dict:
    """Per language: base and adapted bits per byte, retention and the bpb increase (adapted - base).

    adapted, base: evaluate_model results (their likelihood.by_lang). Without base results only the
    adapted model's bits per byte are reported.
    """
    out = {
        "definition": "docs/metrics.md#forgetting",
        "direction": "retention = base_bpb / adapted_bpb; 1.0 = no forgetting, < 1 = forgot",
        "by_lang": {},
    }
    if base is None:
        out["note"] = "no base-model results given; retention not computed"
    for lang in langs:
        a = _bpb(adapted, lang)
        if a is None:
            continue
        entry = {"adapted_bits_per_byte": a, "bytes": adapted["likelihood"]["by_lang"][lang]["bytes"]}
        b = _bpb(base, lang) if base is not None else None
        if b is not None:
            entry.update(base_bits_per_byte=b, retention=retention(b, a), bpb_increase=a - b)
        out["by_lang"][lang] = entry
    return out


def learning_forgetting_points(checkpoints, base: dict, target_lang: str = "ja", langs=FORGETTING_LANGS) -> list[dict]:
    """Points of a learning-vs-forgetting plot, one per checkpoint.

    checkpoints: iterable of (step, evaluate_model results) in any order; base: the base model's
    results. Each point: step, gain = base - checkpoint bits per byte on target_lang (> 0 learned),
    and for each forgetting language `<lang>_loss` = checkpoint - base bits per byte (> 0 forgot)
    and `<lang>_retention`. A missing language gives None.
    """
    points = []
    base_t = _bpb(base, target_lang)
    for step, res in sorted(checkpoints, key=lambda x: x[0]):
        t = _bpb(res, target_lang)
        point = {"step": step, f"{target_lang}_gain": base_t - t if None not in (base_t, t) else None}
        for lang in langs:
            a, b = _bpb(res, lang), _bpb(base, lang)
            ok = None not in (a, b)
            point[f"{lang}_loss"] = a - b if ok else None
            point[f"{lang}_retention"] = retention(b, a) if ok else None
        points.append(point)
    return points
