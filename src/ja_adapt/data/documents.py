"""The document record every source yields and every later stage consumes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Document:
    text: str
    lang: str = "ja"          # ISO 639-1: ja, en, zh
    domain: str = "general"   # e.g. news, conversation, docs
    source: str = ""          # where it came from: a file path (with line for JSONL) or a package
