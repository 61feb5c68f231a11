"""Prefix tuning (method=prefix): prefix.virtual_tokens learned keys and values in every layer."""

from __future__ import annotations

from dataclasses import dataclass

from ja_adapt.methods.spec import MethodSpec, Section, key_error, register


@dataclass
class PrefixConfig:
    """Prefix tuning (method=prefix): learned keys and values prepended in every layer."""

    virtual_tokens: int = 16  # prefix length: key/value positions per layer


def check(cfg) -> None:
    """prefix.virtual_tokens is at least 1."""
    if cfg.prefix.virtual_tokens < 1:
        raise key_error("prefix.virtual_tokens", f"must be >= 1, got {cfg.prefix.virtual_tokens}")


def _prefix_params(arch, options) -> int:
    """A key and a value per virtual token in every layer, of the key/value width (peft sizes the
    prefix by num_key_value_heads under grouped-query attention)."""
    return options.prefix.virtual_tokens * arch.layers * 2 * arch.kv_width


def _prefix_saved(arch, options, act: int, seq: int, masked: bool) -> float:
    """Attention saves the prefix's keys and values in every layer, once per sequence of `seq`
    tokens and repeated to every query head (the mask is explicit: masks_attention), and the mask
    grows by the prefix's columns."""
    return options.prefix.virtual_tokens * (2 * arch.q_width * act / seq + act)


def prefix_config(cfg):
    """peft prefix tuning: prefix.virtual_tokens learned keys and values in every layer (no
    reparametrisation MLP, so what trains is what is saved). The loss feeds them to the decoder
    body as its cache (train/loss.py, through models/build.py's `prompt_prefix`)."""
    from peft import PrefixTuningConfig  # here, not at the top: the methods layer is torch-free

    return PrefixTuningConfig(num_virtual_tokens=cfg.prefix.virtual_tokens, task_type="CAUSAL_LM")


register(
    MethodSpec(
        "prefix",
        "prefix tuning: learned keys and values of prefix.virtual_tokens in every layer",
        trains_base=False,
        artifact="adapter",
        adapts_linears=False,
        trainable=_prefix_params,
        grad_entry=lambda arch, options: frozenset({"k_proj", "v_proj"}),
        trainable_tensors=lambda arch, options: 1,  # one embedding of every layer's keys and values
        masks_attention=True,
        saved_per_token=_prefix_saved,
        merges=False,
        section=Section("prefix", PrefixConfig),
        check=check,
        peft_config=prefix_config,
    )
)
