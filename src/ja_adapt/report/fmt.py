"""Number formatting for the report: every number on the page goes through one of these, at render time."""

from __future__ import annotations

import math

DASH = "–"


def _finite(x) -> bool:
    """A real, finite number (not a bool, not None)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def num(x, digits: int = 4) -> str:
    """Significant-digit float (integers with thousands separators); '–' for missing."""
    if not _finite(x):
        return DASH
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e6):
        return f"{x:.{max(digits - 1, 1)}e}"
    return f"{x:.{digits}g}" if abs(x) < 1 else f"{x:,.{max(digits - len(str(int(abs(x)))), 0)}f}"


def integer(x) -> str:
    return f"{int(round(x)):,}" if _finite(x) else DASH


def pct(x, digits: int = 1) -> str:
    """x already in percent."""
    return f"{x:.{digits}f}%" if _finite(x) else DASH


def less(x, digits: int = 1) -> str:
    """A reduction in percent as words: 10.9 → '10.9% less', -189.4 → '189.4% more'."""
    if not _finite(x):
        return DASH
    return f"{abs(x):.{digits}f}% {'less' if x >= 0 else 'more'}"


def share(x, digits: int = 1) -> str:
    """A fraction shown as percent."""
    return f"{100 * x:.{digits}f}%" if _finite(x) else DASH


def times(x, digits: int = 2) -> str:
    return f"{x:.{digits}f}×" if _finite(x) else DASH


def nbytes(x) -> str:
    """Bytes in binary units (GiB / MiB / KiB)."""
    if not _finite(x):
        return DASH
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(x) >= size:
            return f"{x / size:.2f} {unit}"
    return f"{int(x)} B"


def seconds(x) -> str:
    if not _finite(x):
        return DASH
    if x >= 3600:
        return f"{x / 3600:.2f} h"
    if x >= 60:
        return f"{x / 60:.2f} min"
    return f"{x:.3g} s"


def agg(a: dict | None, f=num) -> str:
    """An analysis.aggregate dict as 'mean ± sd [95% interval]' (one seed: the mean and, where the
    evaluation has one, its bootstrap interval)."""
    if not isinstance(a, dict) or not _finite(a.get("mean")):
        return DASH
    s = f(a["mean"])
    if _finite(a.get("sd")):
        s += f" ± {f(a['sd'])}"
    if _finite(a.get("ci_low")) and _finite(a.get("ci_high")):
        s += f" [{f(a['ci_low'])}, {f(a['ci_high'])}]"
    return s


UNITS = {"num": num, "bytes": nbytes, "seconds": seconds, "count": integer}  # metrics.Metric.unit
