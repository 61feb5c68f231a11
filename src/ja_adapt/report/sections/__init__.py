"""The report's sections, one module each, listed once in reading order (OUTLINE).

A section module holds
    build(ctx) -> dict            its part of results.json (context.Context; {} for text-only sections)
    blocks(res, plots) -> list    its part of report.md / report.html (render.py's blocks)
The outline places each section under its chapter and part; chapter and part headings are numbered
when the document is assembled (document.py), so no section types a number. results.json lists its
keys in the schema's order (results.schema.json), whatever the reading order.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from ja_adapt.report.sections import (
    base_model,
    complexity,
    conclusion,
    continuation,
    data_sources,
    definitions,
    downstream,
    dynamics,
    environment,
    evaluation_sets,
    generalization,
    headline,
    japanese,
    limitations,
    lr_sensitivity,
    lr_tuning,
    memory,
    methods,
    parameters,
    precision,
    rank,
    recommendations,
    significance,
    stability,
    summary,
    supervised,
    timing,
    tradeoffs,
    training,
)


@dataclass(frozen=True)
class Part:
    """A numbered subheading of a chapter (level 3) over its sections."""

    title: str
    sections: tuple[ModuleType, ...]


@dataclass(frozen=True)
class Chapter:
    """A level-2 heading over its parts or sections; numbered ones get 1., 2., ... in order."""

    title: str
    items: tuple  # Parts, or section modules
    numbered: bool = True


OUTLINE = (
    Chapter("Executive summary", (summary,), numbered=False),
    Chapter("The answer: LoRA vs full fine-tuning", (headline,), numbered=False),
    Chapter("The base model", (base_model,), numbered=False),
    Chapter("Evaluation sets", (evaluation_sets,), numbered=False),
    Chapter("Learning rate per method", (lr_tuning,), numbered=False),
    Chapter(
        "Primary results",
        (
            Part("Performance comparison", (training, significance)),
            Part("Efficiency analysis", (parameters, memory, timing)),
        ),
    ),
    Chapter(
        "Detailed analysis",
        (
            Part("Learning dynamics", (dynamics, lr_sensitivity)),
            Part("Japanese language-specific results", (japanese, continuation, supervised)),
            Part("Ablation studies", (rank, precision)),
        ),
    ),
    Chapter(
        "Comparative analysis",
        (
            Part("LoRA vs full fine-tuning trade-offs", (tradeoffs,)),
            Part("Stability and robustness", (stability, generalization, complexity)),
            Part("Downstream tasks (lm-evaluation-harness)", (downstream,)),
            Part("Methods side by side", (methods,)),
        ),
    ),
    Chapter("Discussion", (Part("Recommendations from the measurements", (recommendations,)),)),
    Chapter("Limitations", (limitations,)),
    Chapter("Conclusion", (conclusion,)),
    Chapter("Appendix: definitions and environment", (definitions, environment), numbered=False),
    Chapter("Appendix: data sources", (data_sources,), numbered=False),
)


def _sections_of(item) -> tuple[ModuleType, ...]:
    return item.sections if isinstance(item, Part) else (item,)


SECTIONS = tuple(s for c in OUTLINE for item in c.items for s in _sections_of(item))


def outline_blocks(res: dict, plots: dict) -> list[tuple]:
    """Every chapter's blocks in reading order, headings numbered here; a chapter whose sections
    have nothing to show (no data sources recorded) is left out."""
    out, number = [], 0
    for chapter in OUTLINE:
        body, part = [], 0
        number += chapter.numbered
        for item in chapter.items:
            if isinstance(item, Part):
                part += 1
                body.append(("h", 3, f"{number}.{part} {item.title}"))
            for section in _sections_of(item):
                body += section.blocks(res, plots)
        if body:
            out += [("h", 2, f"{number}. {chapter.title}" if chapter.numbered else chapter.title), *body]
    return out
