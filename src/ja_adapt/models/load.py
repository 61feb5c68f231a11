"""Models and tokenizers: load by hub id or local directory, or build an architecture preset.

Presets are Qwen2-architecture configs with random weights (arch.PRESETS): the public Qwen2.5
configs for the memory planner and benchmarks, `tiny` (about 5M parameters) for tests and CPU
runs, and `micro` (about 1M) for the embedded demo. Aliases (aliases.py) are names an application
resolves to a directory on first use (the command line registers `demo-base`, the demo's own
pretrained model). A real model (hub id or local directory) always goes through transformers' Auto
classes with safetensors weights and `trust_remote_code` off unless the config turns it on.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from huggingface_hub.errors import StrictDataclassError
from safetensors import SafetensorError
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PretrainedConfig, Qwen2Config

from ja_adapt.core import hub
from ja_adapt.core.errors import UserError, closest, first_line
from ja_adapt.models.aliases import MODEL_ALIASES
from ja_adapt.models.arch import PRESETS

# Files one of which a tokenizer directory holds (fast, slow BPE, sentencepiece, WordPiece).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "vocab.txt")


def is_preset(name: str) -> bool:
    return name in PRESETS


def resolve_name(name_or_path: str) -> str:
    """A preset, path or hub id as is; a registered alias (aliases.MODEL_ALIASES) → the directory
    it resolves to. A preset name always means the preset, even if an alias reuses it.

    A name that is not a preset, not an existing path and not a hub id (hub.is_hub_id: `owner/name`,
    with the hub switched on) is refused at once: it is a typo or a missing path, and a hub lookup
    would only retry against an unreachable network.
    """
    name_or_path = str(name_or_path)
    if name_or_path in MODEL_ALIASES and not is_preset(name_or_path):
        return str(MODEL_ALIASES[name_or_path]())
    if is_preset(name_or_path) or Path(name_or_path).exists():
        return name_or_path
    if hub.is_hub_id(name_or_path):
        if hub.offline():
            hub.require_reachable(name_or_path, "model")  # says the hub is switched off
        return name_or_path
    if "/" in name_or_path or os.path.lexists(name_or_path):  # a path (a broken symlink): no hub id
        raise UserError(f"{name_or_path}: no such model directory; check the path")
    raise UserError(
        f"model '{name_or_path}': not a preset{closest(name_or_path, PRESETS)}, not a "
        f"directory and not a hub id (owner/name); presets: {', '.join(PRESETS)}"
    )


def preset_config(name: str, **overrides) -> Qwen2Config:
    """The transformers config of an architecture preset (random weights are built from it)."""
    if name not in PRESETS:
        raise UserError(f"unknown model preset '{name}'{closest(name, PRESETS)}; presets: {', '.join(PRESETS)}")
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
            raise UserError(
                f"{path}: no config.json here; pass a model directory saved with "
                f"save_pretrained, a hub id, or a preset ({', '.join(PRESETS)})"
            )
        try:
            json.loads((path / "config.json").read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{path / 'config.json'}: not valid JSON ({e})") from None
    else:
        hub.require_reachable(name_or_path, "model")  # fail now, not after retries
    try:
        return AutoConfig.from_pretrained(str(name_or_path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, TypeError, StrictDataclassError) as e:
        # StrictDataclassError: a value of the wrong type (`"hidden_size": "abc"`)
        raise UserError(
            f"model '{name_or_path}': cannot load its config ({first_line(e)}); pass a local "
            f"directory, a reachable hub id, or a preset ({', '.join(PRESETS)})"
        ) from None


def load_model(
    name_or_path: str,
    *,
    trust_remote_code: bool = False,
    vocab_size: int | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    quantization=None,
    device: torch.device | str = "cpu",
) -> torch.nn.Module:
    """A causal LM: a preset with seeded random weights, or pretrained safetensors weights.

    `vocab_size` resizes a preset to its tokenizer. Weights are kept in `dtype` (fp32 by default:
    mixed precision is autocast in the training loop, so master weights stay fp32). `quantization`
    (a transformers quantization config, e.g. bitsandbytes' 4-bit NF4) quantizes the weights as they
    are loaded onto `device`; a quantized preset is built, saved and loaded through the same path.
    """
    name_or_path = resolve_name(name_or_path)
    if is_preset(name_or_path):
        overrides = {"vocab_size": vocab_size} if vocab_size else {}
        config = preset_config(name_or_path, **overrides)
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        if quantization is None:
            return model
        # transformers quantizes only in from_pretrained: the seeded weights go through a folder
        with tempfile.TemporaryDirectory() as folder:
            model.save_pretrained(folder, safe_serialization=True)
            return _from_pretrained(folder, config, dtype, False, quantization, device)
    config = model_config(name_or_path, trust_remote_code)
    return _from_pretrained(name_or_path, config, dtype, trust_remote_code, quantization, device)


def _from_pretrained(name_or_path, config, dtype, trust_remote_code: bool, quantization, device):
    """transformers' from_pretrained with safetensors only; a one-line UserError when it fails."""
    placement = {"quantization_config": quantization, "device_map": {"": str(device)}} if quantization else {}
    try:
        return AutoModelForCausalLM.from_pretrained(
            str(name_or_path),
            config=config,
            dtype=dtype,
            use_safetensors=True,
            trust_remote_code=trust_remote_code,
            **placement,
        )
    except (OSError, ValueError, SafetensorError) as e:  # SafetensorError: a truncated file
        raise UserError(
            f"model '{name_or_path}': cannot load safetensors weights ({first_line(e)}); "
            "ja-adapt loads only complete .safetensors files"
        ) from None


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False):
    """The tokenizer of a model directory or hub id (presets have none: pass `model.tokenizer`)."""
    name_or_path = resolve_name(name_or_path)
    if is_preset(name_or_path):
        raise UserError(
            f"model '{name_or_path}' is an architecture preset without a tokenizer; set "
            "model.tokenizer to a tokenizer directory or hub id"
        )
    path = Path(name_or_path)
    if not path.exists():
        hub.require_reachable(name_or_path, "tokenizer")  # fail now, not after retries
    if path.is_dir() and not any((path / name).is_file() for name in TOKENIZER_FILES):
        # transformers would build an empty tokenizer from the model config, and training divide by
        # zero target tokens
        raise UserError(
            f"tokenizer '{path}': cannot load (no tokenizer files: none of "
            f"{', '.join(TOKENIZER_FILES)}); save the tokenizer there, or set "
            "model.tokenizer to a directory with tokenizer.json"
        )
    try:
        tok = AutoTokenizer.from_pretrained(str(name_or_path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError, StrictDataclassError) as e:  # it reads config.json too
        raise UserError(
            f"tokenizer '{name_or_path}': cannot load ({first_line(e)}); set model.tokenizer "
            "to a directory with tokenizer.json"
        ) from None
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
