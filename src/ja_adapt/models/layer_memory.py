"""The memory model of one decoder layer: what a Llama-style layer (RMSNorm, SDPA attention, gated
SiLU MLP) saves for backward under ja-adapt's training step, the autocast weight copies it makes and
the adapter products it keeps. plan.py's plan_memory sums it over the layers; docs/plan.md states
the formulas, tests/unit/models/test_plan.py checks them against saved-tensor hooks."""

from __future__ import annotations

from dataclasses import dataclass, field

from ja_adapt.models.arch import Arch

F32 = 4  # bytes of an fp32 element


@dataclass(frozen=True)
class LayerSetup:
    full: bool
    adapted: frozenset  # Linears with rank-r adapters
    entry: frozenset  # Linears from whose outputs gradients flow, in every layer
    extra: float  # bytes per token per layer the method saves besides (spec)
    product: bool  # the adapter's first factor is formed per step (spec.adapter_product)
    reruns_base: bool  # DoRA under dropout: peft re-runs each adapted base matmul on
    # the dropped input, so autocast saves a second weight copy
    rank: int
    dropout: float
    act: int  # bytes of an activation made by an autocast op (2 or 4)
    autocast: bool
    masked: bool  # attention gets an explicit mask (packed rows, a prefix)
    seq: int
    copy_frozen: bool  # frozen fp32 base weights get a 2-byte autocast copy


@dataclass
class _LayerTally:
    """What one decoder layer keeps, as layer_bytes adds it up."""

    saved: dict = field(default_factory=dict)  # tensor → bytes per token saved for backward
    copies: float = 0.0  # bytes of autocast weight copies
    products: float = 0.0  # bytes of adapter products formed per step and saved


def _norm(t: _LayerTally, s: LayerSetup, d: int, name: str, grad: bool) -> None:
    """RMSNorm saves x and 1/rms when a gradient flows through it, and x/rms if its weight trains."""
    if grad:
        t.saved[name + ".x"], t.saved[name + ".rstd"] = F32 * d, F32
    if s.full:
        t.saved[name + ".xhat"] = F32 * d


def _linear(t: _LayerTally, s: LayerSetup, dims: dict, name: str, src: str, src_bytes: int, grad_in: bool) -> None:
    """A Linear (and its adapter) reading tensor `src` of `src_bytes` per element."""
    if name not in dims:
        return
    a, width = s.act, dims[name][0]
    cast = src if src_bytes == a else f"{src}@{name}"  # autocast makes a copy per consumer
    if s.full:
        t.saved[cast] = width * a
    if s.autocast and (s.full or s.copy_frozen) and (s.full or grad_in):
        t.copies += 2 * width * dims[name][1]
    if name in s.adapted:  # peft casts the adapter input to fp32 (the adapter's dtype) first
        if s.dropout > 0:
            if grad_in:
                t.saved[f"{name}.noise"] = width * F32
            t.saved[f"{name}.drop"] = width * a
        else:
            t.saved[f"{src}@lora.{name}" if s.autocast else src] = width * a
        t.saved[f"{name}.lora_a"] = s.rank * a
        t.copies += 2 * s.rank * sum(dims[name]) if s.autocast else 0
        if s.product and grad_in and not s.autocast:  # autocast's copy of it is counted above
            t.products += F32 * s.rank * width
        if s.reruns_base and grad_in and s.autocast:
            t.copies += 2 * width * dims[name][1]


def layer_bytes(arch: Arch, s: LayerSetup, first: bool) -> tuple[float, float, float]:
    """(bytes per token saved for backward by one decoder layer, bytes of its autocast weight
    copies, bytes of the adapter products it forms per step and saves).

    A Linear saves its input only if its weight trains, and its weight only if its input needs a
    gradient; RMSNorm saves x and 1/rms, and x/rms only if its weight trains. LoRA's first layer
    gets no gradient from the frozen embedding. Under autocast each Linear casts an fp32 input to
    its own 2-byte copy (autocast caches casts of weights, not of activations).
    """
    a, d, t = s.act, arch.hidden, _LayerTally()
    dims = {n: (i, o) for n, i, o in arch.linears}
    grad = s.full or not first
    _norm(t, s, d, "norm1", grad)
    for name in ("q_proj", "k_proj", "v_proj"):
        _linear(t, s, dims, name, "n1", F32, grad)
    attn_grad = grad or bool(s.entry & {"q_proj", "k_proj", "v_proj"})
    if attn_grad:  # SDPA saves q, k, v (repeated to all heads when a mask is passed), out, logsumexp
        kv = arch.q_width if s.masked else arch.kv_width
        t.saved.update(q=a * arch.q_width, k=a * kv, v=a * kv, out=a * arch.q_width, lse=F32 * arch.heads)
        if s.masked:  # the block-diagonal mask, converted to the query dtype in every layer
            t.saved["mask"] = a * s.seq
    _linear(t, s, dims, "o_proj", "out", a, attn_grad)
    _norm(t, s, d, "norm2", attn_grad)
    for name in ("gate_proj", "up_proj"):
        _linear(t, s, dims, name, "n2", F32, attn_grad)
    mlp_grad = attn_grad or bool(s.entry & {"gate_proj", "up_proj"})
    if mlp_grad:  # silu saves gate; the product saves silu(gate) and up
        t.saved.update(gate=a * arch.ff, up=a * arch.ff, act=a * arch.ff)
    _linear(t, s, dims, "down_proj", "prod", a, mlp_grad)
    return float(sum(t.saved.values())) + (s.extra if (grad or s.entry) else 0.0), t.copies, t.products
