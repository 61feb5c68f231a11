"""Building a model: load the base, wrap it with the configured method, and the model helpers.

LoRA and full fine-tuning share one training loop; they differ only in how the model is wrapped and
which parameters train. What a method builds and which hooks it runs come from its registration
(ja_adapt.methods: `MethodSpec.peft_config`, `post_step`, `state`); this module applies them.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import get_peft_model
from peft.utils.error import NoMatchingPeftModuleError

from ja_adapt.core import bitsandbytes_gate
from ja_adapt.core.errors import UserError, notice
from ja_adapt.methods import SPECS, method_spec, options, resolve_targets
from ja_adapt.models import precision, vocab
from ja_adapt.models.load import load_model

if TYPE_CHECKING:
    from ja_adapt.config import ExperimentConfig

# name → its checkpoint-state hooks (MethodSpec.state), for the methods that keep any: a view of
# the registry for train/checkpoint.py
STATE = {name: spec.state for name, spec in SPECS.items() if spec.state is not None}


def after_step(model: torch.nn.Module, cfg: ExperimentConfig, step: int) -> None:
    """Run the method's post-step hook, if it has one (the loop calls this for every method)."""
    hook = method_spec(cfg.method).post_step
    if hook is not None:
        hook(model, step)


def peft_config(cfg: ExperimentConfig):
    """The peft config of `cfg.method`, or None for a method without a wrapper."""
    return method_spec(cfg.method).peft_config(cfg)  # a UserError naming the key for an unknown one


def apply_method(model: torch.nn.Module, cfg: ExperimentConfig, new_ids: list[int] = ()) -> torch.nn.Module:
    """`model` wrapped by the configured method, with exactly the method's parameters trainable;
    new_ids: rows of tokens added by vocab.extend, which train too (for a LoRA method: peft's
    trainable token rows, tied output-head rows following; config.validate_vocab refuses others)."""
    config = peft_config(cfg)
    if new_ids and isinstance(config, PeftLoraConfig) and not options(cfg).lora.train_embeddings:
        rows = sorted(set(options(cfg).lora.train_token_ids) | set(new_ids))
        config = dataclasses.replace(
            config, trainable_token_indices=vocab.trainable_rows(model, rows), ensure_weight_tying=True
        )
    if config is None:
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    if method_spec(cfg.method).adapts_linears:
        warn_full_rank(model, cfg)
    check_token_ids(model, cfg)
    try:
        return get_peft_model(model, config)
    except NoMatchingPeftModuleError:
        key = method_spec(cfg.method).targets_key
        if key is None:
            raise
        value = functools.reduce(getattr, key.split("."), cfg)
        raise UserError(
            f"config: key '{key}' is '{value}', which names no module of this model; its "
            f"linear layers: {', '.join(linear_names(model))}"
        ) from None


def check_token_ids(model: torch.nn.Module, cfg: ExperimentConfig) -> None:
    """lora.train_token_ids must be rows of this model's embedding."""
    ids = options(cfg).lora.train_token_ids
    rows = model.get_input_embeddings().weight.shape[0]
    if ids and max(ids) >= rows:
        raise UserError(
            f"config: key 'lora.train_token_ids' has id {max(ids)}, but the embedding has "
            f"{rows} rows (ids 0..{rows - 1})"
        )


def warn_full_rank(model: torch.nn.Module, cfg: ExperimentConfig) -> None:
    """A notice when lora.rank is not below min(in, out) of a target: such an update is not low-rank
    and costs more than training the layer itself. A notice, not an error: a rank sweep may reach
    the width of the smallest layer on purpose."""
    targets = set(resolve_targets(cfg.lora.targets))
    widths = {
        name.rsplit(".", 1)[-1]: min(m.in_features, m.out_features)
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in targets
    }
    narrow = sorted((w, name) for name, w in widths.items() if cfg.lora.rank >= w)
    if narrow:
        width, name = narrow[0]
        notice(
            f"config: key 'lora.rank' ({cfg.lora.rank}) is not below min(in, out) = {width} of "
            f"target {name}: the adapter is not low-rank there; lower lora.rank"
        )


def linear_names(model: torch.nn.Module) -> list[str]:
    """The distinct last names of a model's nn.Linear modules (what lora.targets may name)."""
    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)})


STORAGE_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}  # model.dtype → torch dtype


def build_model(cfg: ExperimentConfig, tokenizer, device: torch.device, base_tokenizer=None) -> torch.nn.Module:
    """Base model (preset or pretrained) wrapped by the configured method, on `device`.

    base_tokenizer: the model's own tokenizer when `tokenizer` extends it (vocab.extend): the
    embedding grows to `tokenizer` and the new rows are initialised and trained (vocab.py).

    With model.dtype=bf16 (a frozen base; config.validate refuses it otherwise) the base is loaded
    in bf16, so its fp32 copy never exists, and every trainable parameter is then made fp32: AdamW
    and its state work in fp32. The embedding's output is cast to fp32, so the residual stream,
    the norms and everything the memory plan counts are as with an fp32 base under autocast;
    only the weights differ (plan.py: 2 bytes per frozen weight, no autocast copies).
    """
    torch.manual_seed(cfg.seed)
    storage = STORAGE_DTYPES[cfg.model.dtype]
    model = load_frozen_base(cfg, len(tokenizer), device, dtype=storage)
    new_ids = vocab.fit_embeddings(model, tokenizer, base_tokenizer) if base_tokenizer is not None else []
    model.config.use_cache = False
    if storage != torch.float32:
        model.get_input_embeddings().register_forward_hook(lambda module, args, out: out.float())
    if cfg.model.attn_implementation and hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(cfg.model.attn_implementation)
    if cfg.train.activation_checkpointing:
        model.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False, "context_fn": precision.checkpoint_contexts}
        )
        model.enable_input_require_grads()
    model = apply_method(model, cfg, new_ids)
    for p in model.parameters():
        if p.requires_grad and p.dtype != torch.float32:  # peft upcasts its adapters; others may not
            p.data = p.data.float()
    model = model.to(device)
    if cfg.train.compile:
        # The loss calls the decoder body, not the model's forward (train/loss.py), so compile the body,
        # in place: parameter names and saved weights stay as they are.
        base_model(model).model.compile()
    return model


def base_model(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model itself: under a peft wrapper, the wrapped one."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def prompt_prefix(model: torch.nn.Module, batch_size: int) -> tuple[object | None, int]:
    """(the learned key/value cache of a prompt-learning adapter for `batch_size` rows, its length
    in positions), or (None, 0) for every other model. Prefix tuning changes the decoder's input,
    not its weights; peft's own forward adds this cache, and the loss (which calls the decoder body
    directly) adds it the same way."""
    if not is_adapter(model) or not model.active_peft_config.is_prompt_learning:
        return None, 0
    return model.get_prompt(batch_size), model.active_peft_config.num_virtual_tokens


def is_adapter(model: torch.nn.Module) -> bool:
    """True when the model is a peft wrapper (its artifact is an adapter, not a full model)."""
    return hasattr(model, "peft_config")


def count_trainable(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts of a built model; tied weights counted once, a 4-bit
    weight (bitsandbytes packs two in a byte) as the weights it stores."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(
        p.quant_state.shape.numel() if getattr(p, "quant_state", None) is not None else p.numel()
        for p in model.parameters()
    )
    return trainable, total


# ---- the 4-bit base of a quantized method (qlora) ----------------------------------------------


def quantization_config(cfg: ExperimentConfig, device: torch.device | str):
    """bitsandbytes' 4-bit NF4 config for a method with a quantized base, else None.

    Blocks of 64 weights (bitsandbytes' default), `qlora.double_quant` for 8-bit block scales. The
    dequantized weight is computed in bf16/fp16 on CUDA under that precision; in fp32 on CPUs
    (bitsandbytes' CPU kernels; bf16 matmuls there are slow, see precision.py).
    """
    if not method_spec(cfg.method).quantized_base:
        return None
    if not bitsandbytes_gate.available():
        raise UserError(
            f"config: key 'method' is '{cfg.method}', which needs bitsandbytes (its 4-bit "
            "NF4 base); run `pip install bitsandbytes`, or use method=lora"
        )
    bitsandbytes_gate.load()
    from transformers import BitsAndBytesConfig

    cuda = torch.device(device).type == "cuda"
    if torch.device(device).type == "cpu":
        bitsandbytes_gate.check_cpu_kernel(cfg.qlora.cpu_kernel)
    compute = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision) if cuda else None
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=cfg.qlora.double_quant,
        bnb_4bit_compute_dtype=compute or torch.float32,
    )


def load_frozen_base(
    cfg: ExperimentConfig, vocab_size: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> torch.nn.Module:
    """The base model a run's method wraps: as stored, or 4-bit on `device` for a quantized method
    (then prepared by peft's prepare_model_for_kbit_training: every weight frozen, the unquantized
    ones in fp32; checkpointing is build_model's, from train.activation_checkpointing)."""
    quantization = quantization_config(cfg, device)
    model = load_model(
        cfg.model.name_or_path,
        trust_remote_code=cfg.model.trust_remote_code,
        vocab_size=vocab_size,
        seed=cfg.seed,
        dtype=dtype,
        quantization=quantization,
        device=device,
    )
    if quantization is not None:
        from peft import prepare_model_for_kbit_training  # only quantized bases need it

        # the name the adapter records as its base (adapter_config.json), not load_model's folder
        model.name_or_path = model.config._name_or_path = cfg.model.name_or_path
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        if torch.device(device).type == "cpu":
            bitsandbytes_gate.fit_cpu_kernels(model, cfg.qlora.cpu_kernel)
    return model
