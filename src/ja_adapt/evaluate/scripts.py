"""Japanese script classes and per-script bits per character and character accuracy.

Script classes: ja_adapt.core.charclass (one definition for the whole package; characters are
classified as written, no NFKC normalisation).

Per-character attribution (docs/metrics.md#per-script-bits-per-character): each scored token's loss
is shared among the characters whose UTF-8 bytes it covers, in proportion to the bytes of each
character inside the token; a character's bits are the sum of its shares. Character accuracy
(docs/metrics.md#character-accuracy): a character is correct when every token touching its bytes
was the model's argmax prediction at that position (teacher forcing).
"""

from __future__ import annotations

import math
from bisect import bisect_right

import numpy as np

from ja_adapt.core.charclass import SCRIPTS, script_of  # noqa: F401 (re-exported)
from ja_adapt.evaluate.bootstrap import ratio_interval


def char_byte_starts(text: str) -> list[int]:
    """UTF-8 byte offset of each character, plus the total byte length at the end: [len(text)+1]."""
    starts, pos = [0], 0
    for ch in text:
        pos += len(ch.encode("utf-8"))
        starts.append(pos)
    return starts


def attribute(text: str, spans: list[tuple[int, int]], values: np.ndarray) -> tuple[np.ndarray, list[list[int]]]:
    """Share each token's value among the characters it covers, by bytes.

    text: the document; spans: [n_tok] UTF-8 byte spans (start, end) of the scored tokens in text;
    values: [n_tok] per-token loss. Returns (per-character shares [n_chars], and for each character
    the indices of the tokens touching it). A token with an empty span (a special or normalised-away
    token) gives its whole value to the character at its start byte (the last one at the end), so
    shares always sum to the total.
    """
    starts = char_byte_starts(text)
    n_chars = len(text)
    shares = np.zeros(n_chars, dtype=np.float64)
    touching: list[list[int]] = [[] for _ in range(n_chars)]
    if n_chars == 0:
        return shares, touching
    for i, (a, b) in enumerate(spans):
        if b <= a:
            k = min(bisect_right(starts, a) - 1, n_chars - 1)
            shares[k] += values[i]
            touching[k].append(i)
            continue
        k = bisect_right(starts, a) - 1
        while k < n_chars and starts[k] < b:
            overlap = min(b, starts[k + 1]) - max(a, starts[k])
            if overlap > 0:
                shares[k] += values[i] * overlap / (b - a)
                touching[k].append(i)
            k += 1
    return shares, touching


def new_tally() -> dict[str, dict[str, float]]:
    """Empty per-script accumulators (bits, chars, correct, judged)."""
    return {s: {"bits": 0.0, "chars": 0, "correct": 0, "judged": 0} for s in SCRIPTS}


def tally_document(
    tally: dict, text: str, spans: list[tuple[int, int]], nll_nats: np.ndarray, correct_tok: np.ndarray | None
) -> np.ndarray:
    """Add one document to a per-script tally; returns its per-character bits [n_chars].

    correct_tok: [n_tok] bool, argmax == gold for each scored token (None: accuracy not counted).
    Characters touched by no token count in `chars` (with 0 bits) but not in `judged`.
    """
    bits, touching = attribute(text, spans, np.asarray(nll_nats, dtype=np.float64) / math.log(2))
    for k, ch in enumerate(text):
        t = tally[script_of(ch)]
        t["bits"] += float(bits[k])
        t["chars"] += 1
        if correct_tok is not None and touching[k]:
            t["judged"] += 1
            t["correct"] += int(all(bool(correct_tok[i]) for i in touching[k]))
    return bits


def summarize_tally(tally: dict) -> dict:
    """Per-script and overall bits per character and character accuracy from a tally."""
    out = {}
    total = {"bits": 0.0, "chars": 0, "correct": 0, "judged": 0}
    for name in SCRIPTS:
        t = tally[name]
        for key in total:
            total[key] += t[key]
        out[name] = _finish(t)
    out["overall"] = _finish(total)
    return out


def _finish(t: dict) -> dict:
    return {
        "chars": int(t["chars"]),
        "bits": t["bits"],
        "bits_per_char": t["bits"] / t["chars"] if t["chars"] else None,
        "judged_chars": int(t["judged"]),
        "correct_chars": int(t["correct"]),
        "char_accuracy": t["correct"] / t["judged"] if t["judged"] else None,
    }


def merge_into(total: dict, tally: dict) -> dict:
    """Add a tally ({class: {count: value}}) into total, in place; returns total."""
    for name, counts in tally.items():
        for k, v in counts.items():
            total[name][k] += v
    return total


def tally_intervals(per_doc: list[dict], *, resamples: int, seed: int) -> dict:
    """Document-bootstrap intervals (docs/metrics.md#intervals) of each script's and the overall
    bits per character and character accuracy: documents are resampled and each resample's ratio
    of summed bits / characters and correct / judged characters is recomputed.

    per_doc: one tally (new_tally's shape) per document."""
    names = (*SCRIPTS, "overall")

    def column(key):
        return np.array(
            [[t[s][key] for s in SCRIPTS] + [sum(t[s][key] for s in SCRIPTS)] for t in per_doc], dtype=np.float64
        )

    if not per_doc:
        return {}
    kw = {"resamples": resamples, "seed": seed}
    bits = ratio_interval(column("bits"), column("chars"), **kw)
    acc = ratio_interval(column("correct"), column("judged"), **kw)
    return {name: {"bits_per_char_ci": b, "char_accuracy_ci": a} for name, b, a in zip(names, bits, acc)}
