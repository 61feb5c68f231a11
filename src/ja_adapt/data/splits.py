"""Deterministic train / val / test split of documents, per domain, by a hash of each text.

Each document gets a number u in [0, 1) from sha256(salt + text). Inside its domain it goes to
  val   if u <  val_fraction
  test  if u >= 1 - test_fraction
  train otherwise.
A document with its own `split` (a record's "split" field: a split fixed upstream, e.g. translation
pairs split by their English source) goes there and takes no part in the rest.
Because u depends only on the document's own text, adding documents never moves another document
(identical texts always land together, so a duplicate cannot leak across splits).

Minimum shares: a domain with at least 3 documents gets at least one val and one test document
(when the fraction is > 0). If no document of the domain fell into val, its document with the
smallest u (the one nearest to val) becomes val; likewise the largest u becomes test. Both choices
look only at that domain's own documents, never at other domains; with ≥ 3 documents the smallest
and largest are distinct documents (copies of the picked text move with it, so duplicates stay
together). The only instability this
adds: while a small domain has no document inside a share by hash, a new document more extreme
than the current pick takes that pick's place.
"""

from __future__ import annotations

from collections import defaultdict
from hashlib import sha256

from ja_adapt.core.errors import UserError
from ja_adapt.data.documents import Document

SPLITS = ("train", "val", "test")
_MIN_DOCS_FOR_EVAL = 3  # a domain this large always gets ≥ 1 val and ≥ 1 test document


def doc_hash_unit(text: str, salt: str = "ja-adapt") -> float:
    """A number in [0, 1) fixed by (salt, text): the first 8 bytes of sha256 as a fraction."""
    digest = sha256(f"{salt}\x00{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_documents(
    docs: list[Document], val_fraction: float = 0.05, test_fraction: float = 0.05, *, salt: str = "ja-adapt"
) -> dict[str, list[Document]]:
    """{"train", "val", "test"} → documents, each list in input order (see module docstring)."""
    for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise UserError(f"data.{key}: must be in [0, 1), got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise UserError(
            f"data.val_fraction + data.test_fraction must be < 1 (got "
            f"{val_fraction} + {test_fraction}); leave documents for training"
        )
    units = [doc_hash_unit(d.text, salt) for d in docs]
    assign: list[str] = []
    by_domain: dict[str, list[int]] = defaultdict(list)
    for i, (doc, u) in enumerate(zip(docs, units)):
        if doc.split is not None:
            assign.append(doc.split)
            continue
        by_domain[doc.domain].append(i)
        assign.append("val" if u < val_fraction else "test" if u >= 1.0 - test_fraction else "train")
    for members in by_domain.values():
        if len(members) < _MIN_DOCS_FOR_EVAL:
            continue
        lowest, highest = min(units[i] for i in members), max(units[i] for i in members)
        if lowest == highest:  # every document of the domain is the same text: nothing to split
            continue
        # Equal units mean equal texts: all copies of the picked text move together.
        if val_fraction > 0 and not any(assign[i] == "val" for i in members):
            for i in members:
                if units[i] == lowest:
                    assign[i] = "val"
        if test_fraction > 0 and not any(assign[i] == "test" for i in members):
            for i in members:
                if units[i] == highest:
                    assign[i] = "test"
    out: dict[str, list[Document]] = {name: [] for name in SPLITS}
    for doc, name in zip(docs, assign):
        out[name].append(doc)
    return out
