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
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):     # numpy scalars
        return json_safe(x.item())
    return x


def write_json(path: str | Path, data, indent: int = 1) -> Path:
    """`data` as strict UTF-8 JSON at `path`, written to a temp file and renamed into place, so a
    reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(json_safe(data), ensure_ascii=False, indent=indent, allow_nan=False),
                   encoding="utf-8")
    os.replace(tmp, path)
    return path
