"""The experiment configuration: one dataclass per concern, YAML overrides, `key=value` overrides.

A YAML file holds overrides only; every default lives here with a one-line comment. Keys are dotted
paths (`lora.rank`, `optim.lr`); unknown keys and invalid values are refused with the key named and,
for a misspelling, the closest valid key. Validation happens once, in `validate`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ja_adapt.errors import UserError, closest
from ja_adapt.evaluate.config import EvalConfig

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class ModelConfig:
    name_or_path: str = "tiny"          # a preset (tiny, qwen2.5-0.5b, ...), a local directory or a hub id
    tokenizer: str | None = None        # tokenizer directory / hub id; default: the model's own
    trust_remote_code: bool = False     # run model code shipped with a checkpoint (off: safety)
    attn_implementation: str = "sdpa"   # transformers attention backend (sdpa, eager, flash_attention_2)


@dataclass
class LoraConfig:
    rank: int = 16                      # r: the adapter's inner dimension (reference: 16)
    alpha: float = 32.0                 # scaling numerator; the update is scaled by alpha / rank
    dropout: float = 0.1                # dropout on the adapter input
    targets: str = "qv"                 # qv, qkvo, all-linear, or a comma list of module names


@dataclass
class DataConfig:
    paths: list[str] = field(default_factory=list)       # training corpora: .txt, .jsonl, directories, datasets
    eval_paths: list[str] = field(default_factory=list)  # corpora only evaluated (cross-domain, forgetting)
    seq_len: int = 256                  # tokens per packed row
    val_fraction: float = 0.05          # share of each domain held out for validation
    test_fraction: float = 0.05         # share of each domain held out for the final test
    require_japanese: bool = True       # refuse a training corpus without Japanese characters
    cache_dir: str | None = None        # token-file cache; default: the user cache directory
    num_workers: int = 1                # tokenization worker processes


@dataclass
class OptimConfig:
    lr: float = 3e-4                    # peak learning rate (reference experiment: 3e-4)
    weight_decay: float = 0.0           # AdamW decoupled weight decay
    beta1: float = 0.9                  # AdamW first-moment decay
    beta2: float = 0.999                # AdamW second-moment decay
    eps: float = 1e-8                   # AdamW epsilon
    warmup_steps: int = 200             # linear warmup from 0 to lr (reference: 200)
    schedule: str = "cosine"            # cosine (to min_lr_ratio * lr) or constant after warmup
    min_lr_ratio: float = 0.0           # final lr as a fraction of the peak
    grad_clip: float = 1.0              # max global gradient norm; 0 disables clipping
    fused: bool = False                 # torch's fused AdamW; also lets the step skip host syncs (train.py)


@dataclass
class TrainConfig:
    max_steps: int = 1000               # optimizer steps
    batch_size: int = 8                 # packed rows per micro-batch
    grad_accum: int = 1                 # micro-batches per optimizer step
    eval_every: int = 100               # steps between validation passes; 0 disables
    eval_batches: int = 20              # validation micro-batches per pass (0 = the whole split)
    save_every: int = 200               # steps between checkpoints; 0 saves only at the end
    keep_checkpoints: int = 0           # most recent checkpoints kept (0 = all, for per-checkpoint eval)
    early_stopping_patience: int = 0    # stop after this many validations without improvement; 0 = off
    max_nonfinite: int = 5              # consecutive non-finite losses before the run stops
    log_every: int = 1                  # steps between metrics.jsonl records (with optim.fused, the
                                        # loss is read back from the GPU only then)
    loss_chunk_size: int = 0            # rows per chunked-cross-entropy chunk; 0 = plain cross-entropy
    activation_checkpointing: bool = False  # recompute layer activations in backward to save memory
    compile: bool = False               # torch.compile the decoder (minutes of compiling on CPU)
    emulate_bf16: str = "auto"          # bf16 on a CPU without bf16 GEMM: auto, on, off (precision.py)
    strategy: str = "auto"              # multi-process: auto (= ddp), ddp or fsdp (docs/scaling.md)
    tensorboard: bool = True            # also write TensorBoard event files
    progress: bool = True               # progress bar on a terminal


@dataclass
class ExperimentConfig:
    method: str = "lora"                # lora or full (methods.py lists what is registered)
    precision: str = "bf16"             # fp32, bf16 (autocast) or fp16 (autocast + loss scaling)
    seed: int = 0                       # fixes initialisation, data order and dropout
    device: str = "auto"                # auto (cuda if available), cpu, cuda, cuda:N
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# ---- reading -------------------------------------------------------------------------------------

def _fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


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
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):          # YAML 1.1 reads '1e-4' (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise UserError(f"{where}: key '{key}' must be a number, got {value!r}")
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
            raise UserError(f"{where}: key '{'.'.join(parts[:i + 1])}' has no sub-keys")
        prefix += part + "."


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if not isinstance(k, str):
            raise UserError(f"config key {k!r} is not a string")
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


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


def load_config(path: str | Path | None = None, overrides: list[str] = (),
                flags: dict[str, Any] | None = None) -> ExperimentConfig:
    """Defaults ← YAML file ← `key=value` overrides ← command-line flags; then validate."""
    cfg = ExperimentConfig()
    if path is not None:
        for key, value in _flatten(read_yaml(path)).items():
            _set(cfg, key, value, str(path))
    for text in overrides:
        key, value = parse_override(text)
        _set(cfg, key, value, "override")
    for key, value in (flags or {}).items():
        if value is not None:
            _set(cfg, key, value, "flag")
    validate(cfg)
    return cfg


def validate(cfg: ExperimentConfig) -> None:
    """Cross-field checks; each error names the key and what would be valid."""
    from ja_adapt.methods import METHODS, resolve_targets

    def bad(key: str, why: str) -> UserError:
        return UserError(f"config: key '{key}' {why}")

    if cfg.method not in METHODS:
        raise bad("method", f"is '{cfg.method}', not a known method{closest(cfg.method, METHODS)}; "
                  f"known: {', '.join(METHODS)}")
    if cfg.precision not in PRECISIONS:
        raise bad("precision", f"is '{cfg.precision}'; use one of {', '.join(PRECISIONS)}")
    if cfg.lora.rank <= 0:
        raise bad("lora.rank", f"must be a positive integer, got {cfg.lora.rank}")
    if cfg.lora.alpha <= 0:
        raise bad("lora.alpha", f"must be positive, got {cfg.lora.alpha}")
    if not 0 <= cfg.lora.dropout < 1:
        raise bad("lora.dropout", f"must be in [0, 1), got {cfg.lora.dropout}")
    resolve_targets(cfg.lora.targets)
    if cfg.optim.lr <= 0:
        raise bad("optim.lr", f"must be positive, got {cfg.optim.lr}")
    if cfg.optim.schedule not in ("cosine", "constant"):
        raise bad("optim.schedule", f"is '{cfg.optim.schedule}'; use cosine or constant")
    if cfg.optim.warmup_steps < 0:
        raise bad("optim.warmup_steps", "must be ≥ 0")
    if cfg.train.max_steps <= 0:
        raise bad("train.max_steps", f"must be positive, got {cfg.train.max_steps}")
    if cfg.optim.warmup_steps >= cfg.train.max_steps:
        raise bad("optim.warmup_steps", f"({cfg.optim.warmup_steps}) is not shorter than training "
                  f"(train.max_steps={cfg.train.max_steps}); lower it or train longer")
    for key in ("batch_size", "grad_accum", "max_nonfinite", "log_every"):
        if getattr(cfg.train, key) <= 0:
            raise bad(f"train.{key}", f"must be positive, got {getattr(cfg.train, key)}")
    for key in ("eval_every", "eval_batches", "save_every", "keep_checkpoints",
                "early_stopping_patience", "loss_chunk_size"):
        if getattr(cfg.train, key) < 0:
            raise bad(f"train.{key}", f"must be ≥ 0, got {getattr(cfg.train, key)}")
    if cfg.train.emulate_bf16 not in ("auto", "on", "off"):
        raise bad("train.emulate_bf16", f"is '{cfg.train.emulate_bf16}'; use auto, on or off")
    if cfg.train.strategy not in ("auto", "ddp", "fsdp"):
        raise bad("train.strategy", f"is '{cfg.train.strategy}'; use auto, ddp or fsdp")
    if cfg.train.strategy == "fsdp" and cfg.precision == "fp16":
        raise bad("train.strategy", "fsdp does not support precision=fp16 (loss scaling of sharded "
                  "gradients); use precision=bf16 or fp32")
    if cfg.data.seq_len <= 1:
        raise bad("data.seq_len", f"must be > 1, got {cfg.data.seq_len}")
    for key in ("val_fraction", "test_fraction"):
        if not 0 <= getattr(cfg.data, key) < 0.5:
            raise bad(f"data.{key}", f"must be in [0, 0.5), got {getattr(cfg.data, key)}")
    if cfg.data.num_workers <= 0:
        raise bad("data.num_workers", "must be positive")
    cfg.eval.check()


# ---- writing -------------------------------------------------------------------------------------

def to_dict(cfg: ExperimentConfig) -> dict:
    return dataclasses.asdict(cfg)


def config_hash(cfg: ExperimentConfig) -> str:
    """sha256 of the resolved config (JSON with sorted keys), first 16 hex digits."""
    blob = json.dumps(to_dict(cfg), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def save_config(cfg: ExperimentConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True), encoding="utf-8")


def from_dict(d: dict, where: str = "config") -> ExperimentConfig:
    cfg = ExperimentConfig()
    for key, value in _flatten(d).items():
        _set(cfg, key, value, where)
    return cfg


def diff_keys(a: ExperimentConfig, b: ExperimentConfig) -> list[str]:
    fa, fb = _flatten(to_dict(a)), _flatten(to_dict(b))
    return [k for k in fa if fa.get(k) != fb.get(k)]
