"""The executive summary: the answer in a few sentences (also the conclusion, and printed at the end
of `compare` / `sweep` / `demo`)."""

from __future__ import annotations

from ja_adapt.report.sentences import headline_summary
from ja_adapt.report.status import ok


def build(ctx) -> dict:
    return {}


def executive_summary(res: dict) -> str:
    """The answer in a few sentences (also printed at the end of `compare` / `sweep` / `demo`):
    only resolved differences are stated as differences (report/sentences.py)."""
    out = [headline_summary(res)] if ok(res.get("headline")) else []
    if not out and res["groups"]:
        out.append(f"{len(res['groups'])} configuration(s) were trained; no LoRA-vs-full pair to compare.")
    rec = res.get("recommendations", {})
    if ok(rec):
        out.append(rec["items"][0]["text"])
    return " ".join(out)


def blocks(res: dict, plots: dict) -> list[tuple]:
    return [("p", executive_summary(res))]
