"""Sweeps: a sweep over key K is any set of groups whose configurations are equal except for K (seed
aside). The quality metric of a sweep is Japanese held-out bits/char when the runs were evaluated,
else the final validation loss (the section says which)."""

from __future__ import annotations

from ja_adapt.report.load import IGNORED_KEYS


def sweep_metric(groups) -> tuple[str, callable]:
    """(metric name, group → its aggregate): bits/char when every group was evaluated."""
    if all(g.q("ja_bits_per_char")["n"] for g in groups):
        return "ja_bits_per_char", lambda g: g.q("ja_bits_per_char")
    return "final_val_loss", lambda g: g.summary("final_val_loss")


def sweeps(groups, key: str, method: str | None = None) -> list[list]:
    """Buckets of groups equal in everything but `key` (and the seed), with >= 2 values of key."""
    buckets: dict[str, list] = {}
    for g in groups:
        if method and g.method != method:
            continue
        rest = {k: str(v) for k, v in sorted(g.config.items()) if k != key and k not in IGNORED_KEYS}
        buckets.setdefault(repr(rest), []).append(g)
    return [b for b in buckets.values() if len({str(g.config.get(key)) for g in b}) >= 2]


def largest(buckets: list[list], key: str):
    """The bucket with the most distinct values of key (None: no bucket)."""
    return max(buckets, key=lambda b: len({str(g.config.get(key)) for g in b})) if buckets else None
