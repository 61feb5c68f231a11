"""Models and tokenizers: load by hub id or local directory, or build an architecture preset.

Presets are Qwen2-architecture configs with random weights (arch.PRESETS): the public Qwen2.5
configs for the memory planner and benchmarks, `tiny` (about 5M parameters) for tests and CPU
runs, and `micro` (about 1M) for the embedded demo. Aliases are names an application resolves to a directory on first use
(the command line registers `demo-base`, the demo's own pretrained model). A real model (hub id or local directory) always goes through transformers' Auto
classes with safetensors weights and `trust_remote_code` off unless the config turns it on.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PretrainedConfig,
    Qwen2Config,
)

from ja_adapt.arch import PRESETS
from ja_adapt.config import MODEL_ALIASES
from ja_adapt.errors import UserError, closest


def is_preset(name: str) -> bool:
    return name in PRESETS


def resolve_name(name_or_path: str) -> str:
    """A preset, path or hub id as is; a registered alias (config.MODEL_ALIASES) → the directory
    it resolves to. A preset name always means the preset, even if an alias reuses it.

    A name that is not a preset, not an existing path and not `owner/name` is refused at once:
    it is a typo, and a hub lookup would only retry against an unreachable network.
    """
    name_or_path = str(name_or_path)
    if name_or_path in MODEL_ALIASES and not is_preset(name_or_path):
        return str(MODEL_ALIASES[name_or_path]())
    if is_preset(name_or_path) or Path(name_or_path).exists() or "/" in name_or_path:
        return name_or_path
    raise UserError(f"model '{name_or_path}': not a preset{closest(name_or_path, PRESETS)}, not a "
                    f"directory and not a hub id (owner/name); presets: {', '.join(PRESETS)}")


def preset_config(name: str, **overrides) -> Qwen2Config:
    """The transformers config of an architecture preset (random weights are built from it)."""
    if name not in PRESETS:
        raise UserError(f"unknown model preset '{name}'{closest(name, PRESETS)}; "
                        f"presets: {', '.join(PRESETS)}")
    return Qwen2Config(**{k: v for k, v in {**PRESETS[name], **overrides}.items() if k != "model_type"})


def model_config(name_or_path: str, trust_remote_code: bool = False) -> PretrainedConfig:
    """Config of a preset, a local model directory (its config.json) or a hub id (when online)."""
    name_or_path = resolve_name(name_or_path)
    if is_preset(name_or_path):
        return preset_config(name_or_path)
    path = Path(name_or_path)
    if path.exists():
        if path.is_file() and path.suffix == ".json":
            path = path.parent
        if not (path / "config.json").is_file():
            raise UserError(f"{path}: no config.json here; pass a model directory saved with "
                            f"save_pretrained, a hub id, or a preset ({', '.join(PRESETS)})")
        try:
            json.loads((path / "config.json").read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{path / 'config.json'}: not valid JSON ({e})") from None
    try:
        return AutoConfig.from_pretrained(str(name_or_path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"model '{name_or_path}': cannot load its config ({first}); pass a local "
                        f"directory, a reachable hub id, or a preset ({', '.join(PRESETS)})") from None


def load_model(name_or_path: str, *, trust_remote_code: bool = False, vocab_size: int | None = None,
               seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """A causal LM: a preset with seeded random weights, or pretrained safetensors weights.

    `vocab_size` resizes a preset to its tokenizer. Weights are kept in `dtype` (fp32 by default:
    mixed precision is autocast in the training loop, so master weights stay fp32).
    """
    name_or_path = resolve_name(name_or_path)
    if is_preset(name_or_path):
        overrides = {"vocab_size": vocab_size} if vocab_size else {}
        config = preset_config(name_or_path, **overrides)
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        return model
    config = model_config(name_or_path, trust_remote_code)
    try:
        return AutoModelForCausalLM.from_pretrained(
            str(name_or_path), config=config, dtype=dtype, use_safetensors=True,
            trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"model '{name_or_path}': cannot load safetensors weights ({first}); "
                        "ja-adapt loads only .safetensors files") from None


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False):
    """The tokenizer of a model directory or hub id (presets have none: pass `model.tokenizer`)."""
    name_or_path = resolve_name(name_or_path)
    if is_preset(name_or_path):
        raise UserError(f"model '{name_or_path}' is an architecture preset without a tokenizer; set "
                        "model.tokenizer to a tokenizer directory or hub id")
    try:
        tok = AutoTokenizer.from_pretrained(str(name_or_path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"tokenizer '{name_or_path}': cannot load ({first}); set model.tokenizer "
                        "to a directory with tokenizer.json") from None
    return tok


def tokenizer_for(cfg):
    """The tokenizer of an experiment config: `model.tokenizer`, else the model's own."""
    return load_tokenizer(cfg.model.tokenizer or cfg.model.name_or_path, cfg.model.trust_remote_code)


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` → the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"config: key 'device' is '{name}'; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"config: key 'device' is '{name}' but no CUDA device is available; use cpu or auto")
    return device
