"""Strict JSON out: the one conversion of measurements into JSON values, and atomic writes."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


def json_safe(x):
    """NaN / inf → None (strict JSON), numpy scalars → Python numbers, tuples → lists, keys → str."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):  # numpy scalars
        return json_safe(x.item())
    return x


def write_json(
    path: str | Path, data, indent: int = 1, *, ensure_ascii: bool = False, strict: bool = True, default=None
) -> Path:
    """`data` as UTF-8 JSON at `path`, written to a temp file and renamed into place, so a
    reader never sees half a file. strict: NaN / inf → null, numpy scalars → numbers (json_safe);
    strict=False writes `data` as json.dumps does (NaN as `NaN`, `default` for other objects), and
    ensure_ascii=True escapes non-ASCII: for files whose bytes predate this writer (summary.json,
    experiment.json, stats.json, plan.json) and must not change."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    text = (
        json.dumps(json_safe(data), ensure_ascii=ensure_ascii, indent=indent, allow_nan=False, default=default)
        if strict
        else json.dumps(data, ensure_ascii=ensure_ascii, indent=indent, default=default)
    )
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
