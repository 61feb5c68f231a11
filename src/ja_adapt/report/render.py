"""Render the report's blocks to Markdown and to self-contained HTML.

A block is a tuple: ("h", level, text), ("p", text), ("ul", [text, ...]),
("table", [header, ...], [[cell, ...], ...]), ("img", path, alt), ("toc",): a table of contents of
the level-2 and level-3 headings, with links. Both renderers read the same
blocks, so report.md and report.html never disagree. HTML is emitted directly (no markdown
package) and images are embedded as base64 data URIs so the file stands alone.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path


def _anchor(text: str) -> str:
    """GitHub-style heading anchor: lower case, punctuation dropped, spaces → hyphens."""
    return re.sub(r"[^\w\- ]", "", text.lower()).strip().replace(" ", "-")


def _toc(blocks: list[tuple]) -> list[tuple[int, str]]:
    return [(b[1], b[2]) for b in blocks if b[0] == "h" and b[1] in (2, 3)]


def _md_cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[tuple], base_dir: Path) -> str:
    """Markdown; image paths relative to base_dir (where report.md is written)."""
    out = []
    for b in blocks:
        kind = b[0]
        if kind == "toc":
            out.append("\n".join(f"{'  ' * (lvl - 2)}- [{t}](#{_anchor(t)})" for lvl, t in _toc(blocks)))
        elif kind == "h":
            out.append("#" * b[1] + " " + b[2])
        elif kind == "p":
            out.append(b[1])
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in b[1]))
        elif kind == "table":
            head, rows = b[1], b[2]
            lines = ["| " + " | ".join(_md_cell(h) for h in head) + " |", "|" + "|".join("---" for _ in head) + "|"]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            out.append("\n".join(lines))
        elif kind == "img":
            rel = (
                Path(b[1]).resolve().relative_to(base_dir.resolve())
                if Path(b[1]).resolve().is_relative_to(base_dir.resolve())
                else Path(b[1])
            )
            out.append(f"![{b[2]}]({rel.as_posix()})")
        else:
            raise ValueError(f"unknown block {kind}")
    return "\n\n".join(out) + "\n"


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}h1{border-bottom:2px solid #444}
h2{border-bottom:1px solid #ccc;margin-top:2em}nav.toc{background:#f8f8f8;border:1px solid #ddd;padding:.5em 1em}
nav.toc ul{list-style:none;padding-left:0;columns:2}nav.toc li.l3{padding-left:1.2em;font-size:.92em}"""


def to_html(blocks: list[tuple], title: str) -> str:
    """A standalone HTML page (escaped text, embedded PNGs)."""
    e = html.escape
    body = []
    for b in blocks:
        kind = b[0]
        if kind == "toc":
            items = "".join(f'<li class="l{lvl}"><a href="#{_anchor(t)}">{e(t)}</a></li>' for lvl, t in _toc(blocks))
            body.append(f'<nav class="toc"><strong>Contents</strong><ul>{items}</ul></nav>')
        elif kind == "h":
            body.append(f'<h{b[1]} id="{_anchor(b[2])}">{e(b[2])}</h{b[1]}>')
        elif kind == "p":
            body.append(f"<p>{e(b[1])}</p>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{e(str(i))}</li>" for i in b[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{e(str(h))}</th>" for h in b[1])
            rows = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in b[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "img":
            data = base64.b64encode(Path(b[1]).read_bytes()).decode("ascii")
            body.append(
                f'<figure><img alt="{e(b[2])}" src="data:image/png;base64,{data}">'
                f"<figcaption>{e(b[2])}</figcaption></figure>"
            )
        else:
            raise ValueError(f"unknown block {kind}")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
        f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
