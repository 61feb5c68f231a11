"""The environment: hardware, versions, lock files, configuration and data hashes of every run, and
the corpus manifest (OUT/corpora.json) of the first experiment that recorded one."""

from __future__ import annotations

import json
import platform
from pathlib import Path

from ja_adapt.report.load import Experiment


def build(ctx) -> dict:
    return {"environment": environment(ctx.exps)}


def _distinct(exps: list[Experiment], key: str) -> list:
    """The distinct summary.json `key` records of every run, first seen first."""
    out = []
    for r in (r for e in exps for r in e.runs):
        src = r.summary.get(key)
        if src and src not in out:
            out.append(src)
    return out


def hardware(exps: list[Experiment]) -> list[dict]:
    """The devices the runs recorded (summary.json device), first seen first."""
    return _distinct(exps, "device")


def environment(exps: list[Experiment]) -> dict:
    runs = [r for e in exps for r in e.runs]
    return {
        "hardware": hardware(exps),
        "versions": _distinct(exps, "versions"),
        "locks": _distinct(exps, "lock"),
        "report_python": platform.python_version(),
        "config_hashes": {r.name: r.summary.get("config_hash") for r in runs},
        "data_hashes": sorted({str(r.summary.get("data_hash")) for r in runs}),
        "configs": {str(e.out): e.manifest.get("config", {}) for e in exps},
        "data_sources": data_sources(exps),
    }


def data_sources(exps: list[Experiment]) -> dict | None:
    """The corpus manifest (OUT/corpora.json: sources with licences and sizes, documents per set)
    of the first experiment that has one, e.g. the demo's; None when no experiment recorded one."""
    for e in exps:
        path = Path(e.out) / "corpora.json"
        if path.is_file():
            manifest = json.loads(path.read_text(encoding="utf-8"))
            return {"sources": manifest.get("sources", []), "sizes": manifest.get("sizes", [])}
    return None


def blocks(res: dict, plots: dict) -> list[tuple]:
    env = res["environment"]
    return [
        (
            "table",
            ["item", "value"],
            [
                ["hardware", "; ".join(", ".join(f"{k}={v}" for k, v in d.items()) for d in env["hardware"])],
                ["versions", "; ".join(", ".join(f"{k}={v}" for k, v in d.items()) for d in env["versions"])],
                [
                    "lock file",
                    "; ".join(
                        f"sha256 {(d.get('sha256') or 'none')[:16]}…, environment {d.get('environment')}"
                        for d in env.get("locks", [])
                    )
                    or "not recorded",
                ],
                ["data hashes", ", ".join(env["data_hashes"])],
                ["sources", ", ".join(res["sources"])],
            ],
        )
    ]
