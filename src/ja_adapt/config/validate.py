"""Cross-field rules of a config: `validate`, which every config that reaches training passes
through (load_config, from_dict + validate, with_overrides). Each error names the key and what
would be valid. The rules of a method's own keys live in its module (ja_adapt.methods.<name>,
`MethodSpec.check`); `EvalConfig.check` is the evaluation part, also run by stand-alone
evaluation (`ja-adapt eval`)."""

from __future__ import annotations

from ja_adapt.config.schema import BASE_DTYPES, PRECISIONS, ExperimentConfig
from ja_adapt.core.errors import UserError
from ja_adapt.methods import SPECS, MethodSpec, key_error, method_spec


def base_dtype_problem(method: str, dtype: str, precision: str, strategy: str = "auto") -> str | None:
    """Why a frozen-base storage dtype cannot train with these settings (None: it can). Shared by
    `validate` (key model.dtype) and the planner (--base-dtype), so a plan is one training accepts."""
    if dtype not in BASE_DTYPES:
        return f"is '{dtype}'; use {' or '.join(BASE_DTYPES)}"
    if dtype == "fp32":
        return None
    if method_spec(method).quantized_base:
        return (
            f"is bf16, but method '{method}' stores its base 4-bit (NF4) and keeps the rest fp32 "
            "(peft's prepare_model_for_kbit_training); use model.dtype=fp32"
        )
    if method_spec(method).trains_base:
        return (
            f"is bf16, but method '{method}' trains every base weight, and trained weights stay "
            "fp32; use model.dtype=fp32 (or a frozen-base method such as lora)"
        )
    if precision != "bf16":
        return (
            f"is bf16, which computes in bf16: set precision=bf16 (precision is '{precision}'), or use model.dtype=fp32"
        )
    if strategy == "fsdp":
        return "is bf16, which train.strategy=fsdp does not shard (mixed dtypes); use ddp or fp32"
    return None


def validate_method_keys(cfg: ExperimentConfig) -> None:
    """The keys of every registered method (its rules: MethodSpec.check), checked whatever the
    method (a grid may switch methods), then vocab.*; each error names the key."""
    for spec in SPECS.values():
        if spec.check is not None:
            spec.check(cfg)
    validate_vocab(cfg)


def validate_vocab(cfg: ExperimentConfig) -> None:
    """vocab.extend: a count, and a method whose new embedding rows train (full fine-tuning, or a
    LoRA method through peft's trainable token rows)."""
    v = cfg.vocab
    if v.extend < 0:
        raise UserError(
            f"config: key 'vocab.extend' must be a positive number of new tokens (or 0: no extension), got {v.extend}"
        )
    if v.min_frequency < 1:
        raise UserError(f"config: key 'vocab.min_frequency' must be >= 1, got {v.min_frequency}")
    spec = method_spec(cfg.method)
    if v.extend and not (spec.trains_base or (spec.adapts_linears and cfg.method != "adalora")):
        raise UserError(
            f"config: key 'vocab.extend' is {v.extend} with method '{cfg.method}', whose new "
            "embedding rows would not train; use method full or a LoRA method (lora, dora, "
            "rslora, qlora)"
        )


def validate(cfg: ExperimentConfig) -> None:
    """Cross-field checks; each error names the key and what would be valid."""
    spec = method_spec(cfg.method)
    if cfg.precision not in PRECISIONS:
        raise key_error("precision", f"is '{cfg.precision}'; use one of {', '.join(PRECISIONS)}")
    validate_method_keys(cfg)
    _check_method_fits(cfg, spec)
    _check_optim(cfg)
    _check_train(cfg)
    _check_data(cfg)
    cfg.eval.check()


def _check_method_fits(cfg: ExperimentConfig, spec: MethodSpec) -> None:
    """The method against the base's storage dtype and the multi-process strategy."""
    why = base_dtype_problem(cfg.method, cfg.model.dtype, cfg.precision, cfg.train.strategy)
    if why:
        raise key_error("model.dtype", why)
    if spec.quantized_base and cfg.train.strategy == "fsdp":
        raise key_error("train.strategy", f"fsdp does not shard method {cfg.method}'s 4-bit base here; use ddp")
    if spec.checkpoint_state and cfg.train.strategy == "fsdp":
        raise key_error(
            "train.strategy",
            f"is fsdp, whose sharded checkpoints do not carry method "
            f"{cfg.method}'s training state (a run could not resume); use ddp",
        )


def _check_optim(cfg: ExperimentConfig) -> None:
    if cfg.optim.lr <= 0:
        raise key_error("optim.lr", f"must be positive, got {cfg.optim.lr}")
    if cfg.optim.schedule not in ("cosine", "constant"):
        raise key_error("optim.schedule", f"is '{cfg.optim.schedule}'; use cosine or constant")
    if cfg.optim.warmup_steps < 0:
        raise key_error("optim.warmup_steps", "must be ≥ 0")


def _check_train(cfg: ExperimentConfig) -> None:
    if cfg.train.max_steps <= 0:
        raise key_error("train.max_steps", f"must be positive, got {cfg.train.max_steps}")
    if cfg.optim.warmup_steps >= cfg.train.max_steps:
        raise key_error(
            "optim.warmup_steps",
            f"({cfg.optim.warmup_steps}) is not shorter than training "
            f"(train.max_steps={cfg.train.max_steps}); lower it or train longer",
        )
    for key in ("batch_size", "grad_accum", "max_nonfinite", "log_every"):
        if getattr(cfg.train, key) <= 0:
            raise key_error(f"train.{key}", f"must be positive, got {getattr(cfg.train, key)}")
    for key in (
        "eval_every",
        "eval_batches",
        "save_every",
        "keep_checkpoints",
        "early_stopping_patience",
        "loss_chunk_size",
    ):
        if getattr(cfg.train, key) < 0:
            raise key_error(f"train.{key}", f"must be ≥ 0, got {getattr(cfg.train, key)}")
    if cfg.train.emulate_bf16 not in ("auto", "on", "off"):
        raise key_error("train.emulate_bf16", f"is '{cfg.train.emulate_bf16}'; use auto, on or off")
    if cfg.train.strategy not in ("auto", "ddp", "fsdp"):
        raise key_error("train.strategy", f"is '{cfg.train.strategy}'; use auto, ddp or fsdp")
    if cfg.train.strategy == "fsdp" and cfg.precision == "fp16":
        raise key_error(
            "train.strategy",
            "fsdp does not support precision=fp16 (loss scaling of sharded gradients); use precision=bf16 or fp32",
        )


def _check_data(cfg: ExperimentConfig) -> None:
    d = cfg.data
    if d.seq_len <= 1:
        raise key_error("data.seq_len", f"must be > 1, got {d.seq_len}")
    for key in ("val_fraction", "test_fraction"):
        if not 0 <= getattr(d, key) < 0.5:
            raise key_error(f"data.{key}", f"must be in [0, 0.5), got {getattr(d, key)}")
    if d.num_workers <= 0:
        raise key_error("data.num_workers", "must be positive")
    if d.weights and len(d.weights) != len(d.paths):
        raise key_error(
            "data.weights",
            f"has {len(d.weights)} entries for {len(d.paths)} data.paths; give one weight per path, or none",
        )
    if any(w < 0 for w in d.weights) or (d.weights and not any(d.weights)):
        raise key_error("data.weights", f"must be >= 0 and not all 0, got {d.weights}")
