"""Is the base a language model of its languages: bits/char, top-1 token accuracy and the most
frequent argmax token's share, per language, with intervals; and its tokenizer's fertility."""

from __future__ import annotations

from ja_adapt.report import fmt
from ja_adapt.report.blocks import interval
from ja_adapt.report.status import NOT_RUN_TEXT, not_run


def build(ctx) -> dict:
    return {"base_model": base_model(ctx.base.eval)}


def base_model(base_eval: dict | None) -> dict:
    """Per language: bits/char, top-1 accuracy and the top argmax token's share, with intervals."""
    by_lang = ((base_eval or {}).get("likelihood") or {}).get("by_lang") or {}
    if not by_lang:
        return not_run("no base-model evaluation (OUT/base/eval.json)")
    keys = (
        "documents",
        "chars",
        "tokens",
        "bits_per_char",
        "bits_per_char_ci",
        "top1_accuracy",
        "top1_accuracy_ci",
        "argmax_top_token",
        "argmax_top_share",
        "argmax_positions",
    )
    fert = (base_eval or {}).get("fertility") or {}
    fertility = (
        {"by_lang": fert["by_lang"], "scripts": fert["scripts"], "definition": fert.get("definition")}
        if fert.get("by_lang")
        else not_run(fert.get("skipped", "not in eval.json"))
    )
    return {
        "status": "ok",
        "by_lang": {lang: {k: v.get(k) for k in keys} for lang, v in by_lang.items()},
        "fertility": fertility,
        "definition": "teacher-forced: top-1 = argmax next token equals the gold token; top argmax "
        "share = the most frequent argmax token's share of all scored positions",
    }


def blocks(res: dict, plots: dict) -> list[tuple]:
    bm = res.get("base_model") or {}
    if bm.get("status") != "ok":
        return [("p", bm.get("reason", NOT_RUN_TEXT))]
    b = []
    b.append(
        (
            "p",
            "Is the base a language model of its languages? Per language, on held-out text: "
            f"bits/char and top-1 token accuracy with 95% document-bootstrap intervals; {bm['definition']}.",
        )
    )
    b.append(
        (
            "table",
            [
                "language",
                "documents",
                "characters",
                "bits/char [95% CI]",
                "top-1 accuracy [95% CI]",
                "most frequent argmax token",
                "its share",
            ],
            [
                [
                    lang,
                    fmt.integer(v.get("documents")),
                    fmt.integer(v.get("chars")),
                    f"{fmt.num(v.get('bits_per_char'))} {interval(v.get('bits_per_char_ci'))}",
                    f"{fmt.share(v.get('top1_accuracy'))} {interval(v.get('top1_accuracy_ci'))}",
                    repr(v.get("argmax_top_token")),
                    fmt.share(v.get("argmax_top_share")),
                ]
                for lang, v in bm["by_lang"].items()
            ],
        )
    )
    return b + _fertility_blocks(bm.get("fertility") or {}, plots)


def _fertility_blocks(fert: dict, plots: dict) -> list[tuple]:
    """How the base tokenizer cuts each held-out set (every method here shares it)."""
    if not fert.get("by_lang"):
        return [("p", f"Tokenizer fertility: {fert.get('reason', NOT_RUN_TEXT)}.")]
    b = [
        (
            "p",
            "Tokenizer fertility of the base tokenizer on the same held-out text (docs/metrics.md#fertility): "
            "characters and UTF-8 bytes per token, and the share of tokens that are only part of a "
            "character (byte pieces). Bits per character, the quality headline, does not depend on "
            "the tokenizer; fertility is what a tokenizer costs in sequence length.",
        )
    ]
    b.append(
        (
            "table",
            ["language", "tokens", "chars/token", "bytes/token", "partial-character tokens", "unknown"],
            [
                [
                    lang,
                    fmt.integer(v.get("tokens")),
                    fmt.num(v.get("chars_per_token")),
                    fmt.num(v.get("bytes_per_token")),
                    fmt.share(v.get("partial_char_share")),
                    fmt.share(v.get("unk_share")),
                ]
                for lang, v in fert["by_lang"].items()
            ],
        )
    )
    b.append(
        (
            "table",
            ["Japanese script", "characters", "tokens", "chars/token"],
            [
                [s, fmt.integer(v.get("chars")), fmt.num(v.get("tokens")), fmt.num(v.get("chars_per_token"))]
                for s, v in fert["scripts"].items()
            ],
        )
    )
    if "fertility" in plots:
        b.append(
            (
                "img",
                plots["fertility"],
                "Characters per token of the base tokenizer, per language and per Japanese script",
            )
        )
    return b
