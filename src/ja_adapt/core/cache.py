"""Where ja-adapt caches token files and demo base models: $JA_ADAPT_CACHE, else the user cache dir."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    if os.environ.get("JA_ADAPT_CACHE"):
        return Path(os.environ["JA_ADAPT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ja-adapt"
