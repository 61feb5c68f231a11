"""Sentence complexity buckets: where does a model lag (docs/metrics.md#complexity-buckets).

Japanese documents are split into sentences after 。！？!? (with any closing brackets 」』）) that
follow) and at newlines. A sentence is `complex` when at least `min_criteria` of these hold, else
`simple` (whitespace is not counted as characters here):
  long     at least `long_chars` characters
  clauses  at least `min_commas` clause commas (、 or ，)
  kanji    kanji (charclass.py's script classes) make up at least `kanji_ratio` of its characters
A sentence's bits are the per-character bits of its characters, scored in the context of its whole
document (the likelihood pass; nothing is re-run per sentence).
"""

from __future__ import annotations

import re

import numpy as np

from ja_adapt.config import BucketConfig
from ja_adapt.evaluate.scripts import script_of

BUCKETS = ("simple", "complex")
_SENTENCE = re.compile(r"[^。！？!?\n]+(?:[。！？!?]+[」』）)]*)?|[。！？!?]+[」』）)]*")


def sentences(text: str) -> list[tuple[int, int]]:
    """Character spans (start, end) of the sentences of a text; whitespace-only pieces dropped."""
    return [(m.start(), m.end()) for m in _SENTENCE.finditer(text) if m.group().strip()]


def classify(sentence: str, cfg: BucketConfig = BucketConfig()) -> str:
    """simple or complex, by the rule in the module docstring."""
    chars = [c for c in sentence if not c.isspace()]
    n = len(chars)
    if n == 0:
        return "simple"
    kanji = sum(script_of(c) == "kanji" for c in chars)
    commas = sum(c in "、，" for c in chars)
    met = (n >= cfg.long_chars) + (commas >= cfg.min_commas) + (kanji / n >= cfg.kanji_ratio)
    return "complex" if met >= cfg.min_criteria else "simple"


def new_tally() -> dict:
    return {b: {"sentences": 0, "chars": 0, "bits": 0.0} for b in BUCKETS}


def tally_document(tally: dict, text: str, char_bits: np.ndarray, cfg: BucketConfig = BucketConfig()) -> None:
    """Add a document's sentences to a bucket tally; char_bits: [len(text)] bits of each character."""
    for s, e in sentences(text):
        t = tally[classify(text[s:e], cfg)]
        t["sentences"] += 1
        t["chars"] += e - s
        t["bits"] += float(char_bits[s:e].sum())


def summarize_tally(tally: dict) -> dict:
    return {b: {**t, "bits_per_char": t["bits"] / t["chars"] if t["chars"] else None} for b, t in tally.items()}


def bucket_ratios(buckets_a: dict, buckets_b: dict) -> dict:
    """bits_per_char(a) / bits_per_char(b) per bucket, overall and per domain (> 1: a needs more bits).

    buckets_x: the `buckets` section of evaluate_model results.
    """

    def ratio(x, y):
        if not x or not y or x.get("bits_per_char") is None or not y.get("bits_per_char"):
            return None
        return x["bits_per_char"] / y["bits_per_char"]

    out = {
        "definition": "docs/metrics.md#complexity-buckets",
        "direction": "bits_per_char(a) / bits_per_char(b); > 1 means a needs more bits",
        "overall": {b: ratio(buckets_a["overall"].get(b), buckets_b["overall"].get(b)) for b in BUCKETS},
        "by_domain": {},
    }
    for dom in sorted(set(buckets_a["by_domain"]) & set(buckets_b["by_domain"])):
        out["by_domain"][dom] = {
            b: ratio(buckets_a["by_domain"][dom].get(b), buckets_b["by_domain"][dom].get(b)) for b in BUCKETS
        }
    return out
