"""Compare two results.json files, leaving out what a clock or an allocator measured.

    python benchmarks/compare_results.py A/results.json B/results.json [--replace OLD=NEW ...]

Two runs of one command on one CPU give the same losses, metrics and statistics, but not the same
seconds, tokens/s or peak memory. This prints every other difference (a JSON path and both values)
and exits 1 when there is one, 0 when the two agree: the check that a refactor changed no number.
`--replace` rewrites a string in B's values first (e.g. an output directory that differs).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

# Key words (parts of a key between underscores) whose values come from a clock or the allocator,
# and scores computed from them: a path with such a key is left out.
MEASURED_WORDS = {
    "time",
    "times",
    "seconds",
    "sec",
    "s",
    "wall",
    "clock",
    "elapsed",
    "duration",
    "started",
    "finished",
    "timestamp",
    "date",
    "throughput",
    "speed",
    "mfu",
    "mem",
    "memory",
    "rss",
    "peak",
    "hostname",
    "efficiency",
}
_KEY = re.compile(r"[A-Za-z0-9]+")


def measured(path: str) -> bool:
    return any(w.lower() in MEASURED_WORDS for w in _KEY.findall(path))


def differences(a, b, path: str = "") -> list[tuple[str, object, object]]:
    """(path, a, b) for each leaf that differs, skipping paths that `measured` names."""
    if measured(path):
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in list(a) + [k for k in b if k not in a]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in a or key not in b:
                if not measured(sub):
                    out.append((sub, a.get(key, "<absent>"), b.get(key, "<absent>")))
                continue
            out += differences(a[key], b[key], sub)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [(path, f"{len(a)} items", f"{len(b)} items")]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [(path, a, b)]


def _replace(value, old: str, new: str):
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {k: _replace(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, old, new) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--replace", action="append", default=[], metavar="OLD=NEW")
    args = parser.parse_args(argv)
    a = json.loads(args.a.read_text(encoding="utf-8"))
    b = json.loads(args.b.read_text(encoding="utf-8"))
    for pair in args.replace:
        old, _, new = pair.partition("=")
        b = _replace(b, old, new)
    found = differences(a, b)
    for path, x, y in found:
        print(f"{path}: {json.dumps(x, ensure_ascii=False)[:200]} != {json.dumps(y, ensure_ascii=False)[:200]}")
    print(f"{len(found)} differences outside clock- and allocator-measured values")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
