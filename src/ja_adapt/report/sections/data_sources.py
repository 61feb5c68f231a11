"""Appendix: the corpora an experiment recorded (results.json environment.data_sources, from
OUT/corpora.json), with licences and sizes; no blocks when none was recorded."""

from __future__ import annotations


def build(ctx) -> dict:
    return {}  # environment.data_sources (sections/environment.py)


def blocks(res: dict, plots: dict) -> list[tuple]:
    ds = res["environment"].get("data_sources")
    if not ds:
        return []
    return [
        (
            "p",
            "Text from installed packages; no model or dataset hub was used. A source whose status "
            "is 'missing optional' was not installed and was skipped.",
        ),
        (
            "table",
            ["source", "lang", "domain", "role", "package", "licence", "status", "docs", "chars", "bytes"],
            [
                [
                    m.get("name"),
                    m.get("lang"),
                    m.get("domain"),
                    m.get("role", ""),
                    m.get("package"),
                    m.get("licence"),
                    m.get("status"),
                    f"{m.get('n_docs', 0):,}",
                    f"{m.get('n_chars', 0):,}",
                    f"{m.get('n_bytes', 0):,}",
                ]
                for m in ds["sources"]
            ],
        ),
        ("h", 3, "Documents per set, language and domain"),
        (
            "table",
            ["set", "lang", "domain", "docs", "chars"],
            [[r["set"], r["lang"], r["domain"], f"{r['docs']:,}", f"{r['chars']:,}"] for r in ds["sizes"]],
        ),
    ]
