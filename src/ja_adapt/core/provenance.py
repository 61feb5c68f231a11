"""What produced a run's numbers: package versions, the lock file, and the CPU features that choose
kernels. summary.json records it (runlog.write_summary); results.json and the report's appendix
gather it over runs (report/sections/environment.py).

Versions are read from the installed distributions' metadata, not by importing the packages: a
record must not import bitsandbytes (bitsandbytes_gate) nor cost lm_eval's import.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import re
from functools import lru_cache
from pathlib import Path

# every distribution whose version shapes a number ja-adapt reports (MeCab: sacrebleu's ja
# tokenizer runs mecab-python3 with the ipadic dictionary)
PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "bitsandbytes",
    "tokenizers",
    "safetensors",
    "datasets",
    "lm_eval",
    "sacrebleu",
    "mecab-python3",
    "ipadic",
    "numpy",
    "scipy",
)
# /proc/cpuinfo flags that decide which CPU kernels run: oneDNN's bf16 GEMMs (avx512_bf16, amx),
# bitsandbytes' packed 4-bit path (avx512_bf16)
KERNEL_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
LOCK = Path(__file__).resolve().parents[3] / "requirements" / "lock.txt"  # a source checkout's lock


def package_versions() -> dict[str, str]:
    """{package: version} for PACKAGES and python; "not installed" for an absent one."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


@lru_cache(maxsize=1)
def lock_record(lock: Path = LOCK) -> dict:
    """The lock file's sha256 and whether this environment holds exactly its pins: "matches", or
    the packages that differ (the first five), or "no lock" for an install without one."""
    if not lock.is_file():
        return {"sha256": None, "environment": "no lock (installed from pyproject.toml's ranges)"}
    text = lock.read_text(encoding="utf-8")
    differ = []
    for name, pinned in re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", text, flags=re.M):
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = "not installed"
        if installed != pinned:
            differ.append(f"{name} {installed} (lock {pinned})")
    return {
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "environment": "matches"
        if not differ
        else "differs: " + ", ".join(differ[:5]) + (f" and {len(differ) - 5} more" if len(differ) > 5 else ""),
    }


@lru_cache(maxsize=1)
def cpu_record() -> dict:
    """The CPU's model and which KERNEL_FLAGS it has (Linux /proc/cpuinfo; elsewhere unknown)."""
    model, flags = platform.processor() or platform.machine(), None
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    if m := re.search(r"^model name\s*:\s*(.+)$", text, flags=re.M):
        model = m.group(1).strip()
    if m := re.search(r"^flags\s*:\s*(.+)$", text, flags=re.M):
        have = set(m.group(1).split())
        flags = " ".join(f for f in KERNEL_FLAGS if f in have) or "none of " + " ".join(KERNEL_FLAGS)
    return {"cpu_model": model, "cpu_kernel_flags": flags if flags is not None else "unknown"}
