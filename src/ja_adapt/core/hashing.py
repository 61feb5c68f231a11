"""The one sha256 of a file: checkpoint manifests and downstream task data are hashed alike."""

from __future__ import annotations

import hashlib
from pathlib import Path

_BLOCK = 1 << 20  # read 1 MiB at a time: a multi-GB weights file never sits in memory whole


def sha256_file(path: str | Path) -> str:
    """sha256 (hex) of the file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
