"""How well a tokenizer cuts each language and each Japanese script: fertility, from the tokenizer alone.

For each language of a document set (and overall):
  chars_per_token   characters / tokens (higher: shorter sequences, so more text per context and step)
  bytes_per_token   UTF-8 bytes / tokens
  partial_char_share  tokens that cover only part of one character (a byte-level BPE or byte-fallback
                    piece of a character the vocabulary lacks) / tokens
  unk_share         unknown-token pieces / tokens
  tokens            what the set costs in tokens
Per script class (charclass: hiragana, katakana, kanji, other), over the Japanese documents:
  chars_per_token   characters of the class / tokens attributed to it, where each token is split
                    equally over the characters its offsets cover (a token of 3 characters gives each
                    1/3; 3 byte pieces of one kanji give it 3). The class shares sum to the tokens.

Why by hand: `tokenizers` reports offsets, not fertility; no library computes these per script.
Needs a fast tokenizer (offsets); documents are tokenized without special tokens.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

from ja_adapt.core.charclass import SCRIPTS, script_of
from ja_adapt.core.errors import UserError
from ja_adapt.data.documents import Document

_BYTE_PIECE = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")  # SentencePiece byte fallback


def _counts() -> dict:
    return {"documents": 0, "chars": 0, "bytes": 0, "tokens": 0, "partial_char_tokens": 0, "unk_tokens": 0}


def _finish(c: dict) -> dict:
    t = c["tokens"]
    return {
        **c,
        "chars_per_token": c["chars"] / t if t else None,
        "bytes_per_token": c["bytes"] / t if t else None,
        "partial_char_share": c["partial_char_tokens"] / t if t else None,
        "unk_share": c["unk_tokens"] / t if t else None,
    }


def token_spans(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r}: fertility needs a fast "
            "tokenizer (character offsets); save it with tokenizer.json"
        )
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return enc["input_ids"], [tuple(span) for span in enc["offset_mapping"]]


def fertility(tokenizer, docs: Iterable[Document]) -> dict:
    """{"by_lang": {lang: counts}, "overall": counts, "scripts": {script: counts}} (module docstring)."""
    by_lang: dict[str, dict] = defaultdict(_counts)
    overall = _counts()
    script_chars = dict.fromkeys(SCRIPTS, 0)
    script_tokens = dict.fromkeys(SCRIPTS, 0.0)
    unk = tokenizer.unk_token_id
    for doc in docs:
        ids, spans = token_spans(tokenizer, doc.text)
        span_uses: dict[tuple[int, int], int] = defaultdict(int)
        for span in spans:
            span_uses[span] += 1
        pieces = tokenizer.convert_ids_to_tokens(ids)
        partial = sum(
            1
            for (start, end), piece in zip(spans, pieces)
            if _BYTE_PIECE.match(piece) or (end - start == 1 and span_uses[(start, end)] > 1)
        )
        for c in (by_lang[doc.lang], overall):
            c["documents"] += 1
            c["chars"] += len(doc.text)
            c["bytes"] += len(doc.text.encode("utf-8"))
            c["tokens"] += len(ids)
            c["partial_char_tokens"] += partial
            c["unk_tokens"] += sum(1 for i in ids if unk is not None and i == unk)
        if doc.lang == "ja":
            for ch in doc.text:
                script_chars[script_of(ch)] += 1
            for start, end in spans:
                for ch in doc.text[start:end]:
                    script_tokens[script_of(ch)] += 1 / (end - start)
    scripts = {
        s: {
            "chars": script_chars[s],
            "tokens": script_tokens[s],
            "chars_per_token": script_chars[s] / script_tokens[s] if script_tokens[s] else None,
        }
        for s in SCRIPTS
    }
    return {
        "by_lang": {lang: _finish(c) for lang, c in sorted(by_lang.items())},
        "overall": _finish(overall),
        "scripts": scripts,
        "tokenizer": getattr(tokenizer, "name_or_path", None),
        "vocab_size": len(tokenizer),
    }


def fertility_table(result: dict) -> str:
    """Plain-text tables for the terminal: per language, then per Japanese script."""

    def num(x, fmt=".3f"):
        return "-" if x is None else format(x, fmt)

    lines = [
        f"{'language':<10}{'docs':>6}{'chars':>10}{'tokens':>10}{'chars/tok':>11}{'bytes/tok':>11}"
        f"{'partial':>9}{'unk':>7}"
    ]
    for lang, c in [*result["by_lang"].items(), ("all", result["overall"])]:
        lines.append(
            f"{lang:<10}{c['documents']:>6}{c['chars']:>10}{c['tokens']:>10}{num(c['chars_per_token']):>11}"
            f"{num(c['bytes_per_token']):>11}{num(c['partial_char_share']):>9}{num(c['unk_share']):>7}"
        )
    lines.append(f"\n{'script (ja)':<12}{'chars':>10}{'tokens':>12}{'chars/tok':>11}")
    for s, c in result["scripts"].items():
        lines.append(f"{s:<12}{c['chars']:>10}{c['tokens']:>12.1f}{num(c['chars_per_token']):>11}")
    return "\n".join(lines)
