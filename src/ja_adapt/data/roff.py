"""Plain text of a man page's roff source, for the optional Debian man-page corpora."""

from __future__ import annotations

import re

# Hand-written because no roff renderer ships with Python and groff's CJK output depends on the
# install: this keeps the text of a man page and drops formatting, which is all a corpus needs.
_ROFF_ESCAPES = [
    (re.compile(r'\\".*$'), ""),
    (re.compile(r"\\f(\[[^\]]*\]|\(..|.)"), ""),
    (re.compile(r"\\s[+-]?\d"), ""),
    (re.compile(r"\\\((em|en)"), "—"),
    (re.compile(r"\\\((aq|cq|oq)"), "'"),
    (re.compile(r"\\\((dq|lq|rq)"), '"'),
    (re.compile(r"\\\(..|\\\[[^\]]*\]"), ""),
    (re.compile(r"\\[-]"), "-"),
    (re.compile(r"\\[&|^%c]"), ""),
    (re.compile(r"\\ "), " "),
    (re.compile(r"\\e"), lambda m: "\\"),
]
_ROFF_INLINE = {"B", "I", "BR", "RB", "IR", "RI", "BI", "IB", "SM", "SB", "SH", "SS"}
_ROFF_BREAK = {"SH", "SS", "PP", "P", "LP", "TP", "IP", "br", "sp", "HP", "TH"}


def roff_text(source: str) -> str:
    """Plain text of a man page's roff source: macro arguments kept, requests dropped,
    paragraphs separated by blank lines."""
    lines: list[str] = []
    for raw in source.splitlines():
        line = raw
        for pattern, repl in _ROFF_ESCAPES:
            line = pattern.sub(repl, line)
        if raw.startswith((".", "'")):
            parts = line[1:].strip().split(None, 1)
            macro = parts[0] if parts else ""
            if macro in _ROFF_BREAK:
                lines.append("")
            if macro in _ROFF_INLINE and len(parts) > 1:
                lines.append(parts[1].replace('"', ""))
            continue
        lines.append(line)
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
