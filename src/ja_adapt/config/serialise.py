"""Writing a config: as a dict, its hash, config.yaml, and which keys two configs differ in."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from ja_adapt.config.schema import ExperimentConfig
from ja_adapt.core.errors import UserError


def to_dict(cfg: ExperimentConfig) -> dict:
    return dataclasses.asdict(cfg)


def config_hash(cfg: ExperimentConfig) -> str:
    """sha256 of the resolved config (JSON with sorted keys), first 16 hex digits."""
    blob = json.dumps(to_dict(cfg), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def save_config(cfg: ExperimentConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True), encoding="utf-8")


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """{"lora": {"rank": 8}} → {"lora.rank": 8}; lists are values."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if not isinstance(k, str):
            raise UserError(f"config key {k!r} is not a string")
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def diff_keys(a: ExperimentConfig, b: ExperimentConfig) -> list[str]:
    fa, fb = flatten(to_dict(a)), flatten(to_dict(b))
    return [k for k in fa if fa.get(k) != fb.get(k)]
