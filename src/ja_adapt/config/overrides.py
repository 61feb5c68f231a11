"""Reading a config: defaults ← a YAML file ← `key=value` overrides ← command-line flags.

Keys are dotted paths (`lora.rank`, `optim.lr`); unknown keys and values of the wrong type are
refused as they are set (`_set`, with typed coercion in `_coerce`), errors naming the key and, for
a misspelling, the closest valid key. Every entry point that yields a config for training
validates it (load_config, with_overrides); from_dict leaves that to its caller.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from ja_adapt.config.schema import ExperimentConfig
from ja_adapt.config.serialise import flatten, to_dict
from ja_adapt.config.validate import validate
from ja_adapt.core.errors import UserError, closest


def _fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


@functools.cache  # resolving string annotations is slow, and every override pays it
def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, hint: Any, key: str, where: str) -> Any:
    """Check / convert one value against its annotation; raise a UserError naming the key."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], key, where)
    if origin is list:
        (inner,) = typing.get_args(hint)
        if isinstance(value, (str, int, float)):
            value = [value]
        if not isinstance(value, list):
            raise UserError(f"{where}: key '{key}' must be a list, got {value!r}")
        return [_coerce(v, inner, key, where) for v in value]
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{where}: key '{key}' must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise UserError(f"{where}: key '{key}' must be an integer, got {value!r}")
    if hint is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads '1e-4' (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise UserError(f"{where}: key '{key}' must be a number, got {value!r}")
        if not math.isfinite(number):  # .nan / .inf would train to NaN weights
            raise UserError(f"{where}: key '{key}' must be a finite number, got {value!r}")
        return number
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise UserError(f"{where}: key '{key}' must be a string, got {value!r}")
    return value


def _set(cfg: Any, dotted: str, value: Any, where: str) -> None:
    """Set `a.b.c = value` on nested dataclasses, refusing unknown keys with the closest match."""
    parts = dotted.split(".")
    obj, prefix = cfg, ""
    for i, part in enumerate(parts):
        fields = _fields(type(obj))
        if part not in fields:
            valid = [prefix + name for name in fields]
            raise UserError(f"{where}: unknown key '{dotted}'{closest(prefix + part, valid)}")
        hint = _hints(type(obj))[part]
        if i == len(parts) - 1:
            if dataclasses.is_dataclass(getattr(obj, part)):
                if not isinstance(value, dict):
                    raise UserError(f"{where}: key '{dotted}' is a section; set its keys ({dotted}.KEY)")
                for k, v in value.items():
                    _set(cfg, f"{dotted}.{k}", v, where)
                return
            setattr(obj, part, _coerce(value, hint, dotted, where))
            return
        obj = getattr(obj, part)
        if not dataclasses.is_dataclass(obj):
            raise UserError(f"{where}: key '{'.'.join(parts[: i + 1])}' has no sub-keys")
        prefix += part + "."


def read_yaml(path: str | Path) -> dict:
    """A YAML mapping (safe loader), with the file and line named on error."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else "?"
        raise UserError(f"{path}:{line}: invalid YAML ({e.problem}); fix the syntax") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read YAML ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: a config must be a mapping of keys to values")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` → (key, YAML-parsed value): `lora.rank=16`, `data.paths=[a.jsonl,b/]`."""
    if "=" not in text:
        raise UserError(f"override '{text}': expected key=value (e.g. lora.rank=16)")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_config(
    path: str | Path | None = None, overrides: list[str] = (), flags: dict[str, Any] | None = None
) -> ExperimentConfig:
    """Defaults ← YAML file ← `key=value` overrides ← command-line flags; then validate."""
    cfg = ExperimentConfig()
    if path is not None:
        for key, value in flatten(read_yaml(path)).items():
            _set(cfg, key, value, str(path))
    for text in overrides:
        key, value = parse_override(text)
        _set(cfg, key, value, "override")
    for key, value in (flags or {}).items():
        if value is not None:
            _set(cfg, key, value, "flag")
    validate(cfg)
    return cfg


def from_dict(d: dict, where: str = "config") -> ExperimentConfig:
    cfg = ExperimentConfig()
    for key, value in flatten(d).items():
        _set(cfg, key, value, where)
    return cfg


def with_overrides(cfg: ExperimentConfig, overrides: dict[str, Any], where: str = "grid") -> ExperimentConfig:
    """A validated copy of `cfg` with dotted keys set: {"lora.rank": 8, "seed": 1}."""
    new = from_dict(to_dict(cfg), where)
    for key, value in overrides.items():
        _set(new, key, value, where)
    validate(new)
    return new
