"""Japanese script classes: the one spec every module uses (data language checks, evaluation).

  hiragana  U+3041–3096, U+309D–309F
  katakana  U+30A1–30FA, U+30FC–30FF (ー included), U+31F0–31FF, halfwidth U+FF66–FF9D
  kanji     U+4E00–9FFF, U+3400–4DBF, U+F900–FAFF, U+20000–2FA1F, plus 々 U+3005, 〆 U+3006, 〇 U+3007
  other     everything else (Latin, digits, punctuation, symbols, whitespace)
Characters are classified as written (no NFKC normalisation).
"""

from __future__ import annotations

import re

SCRIPTS = ("hiragana", "katakana", "kanji", "other")

RANGES = (  # (first, last, script), inclusive code point ranges
    (0x3041, 0x3096, "hiragana"),
    (0x309D, 0x309F, "hiragana"),
    (0x30A1, 0x30FA, "katakana"),
    (0x30FC, 0x30FF, "katakana"),
    (0x31F0, 0x31FF, "katakana"),
    (0xFF66, 0xFF9D, "katakana"),
    (0x4E00, 0x9FFF, "kanji"),
    (0x3400, 0x4DBF, "kanji"),
    (0xF900, 0xFAFF, "kanji"),
    (0x20000, 0x2FA1F, "kanji"),
    (0x3005, 0x3007, "kanji"),
)


def _class_regex(*scripts: str) -> re.Pattern:
    return re.compile("[" + "".join(f"{chr(a)}-{chr(b)}" for a, b, s in RANGES if s in scripts) + "]")


KANA = _class_regex("hiragana", "katakana")  # only Japanese uses kana: the mark of Japanese text
HAN = _class_regex("kanji")


def script_of(ch: str) -> str:
    """The script class of one character: hiragana, katakana, kanji or other."""
    cp = ord(ch)
    for first, last, name in RANGES:
        if first <= cp <= last:
            return name
    return "other"
