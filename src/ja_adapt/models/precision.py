"""Mixed precision for the training step: torch autocast, or its emulation on CPUs without bf16
matrix instructions.

`precision: bf16` means autocast to bf16 with fp32 master weights. On an x86 CPU without bf16
GEMM kernels (AVX2 only: no AVX512-BF16 / AMX, so oneDNN reports no bf16 support) ATen's bf16
matmul is a generic loop, 10-60x slower than fp32 (docs/bench.md). There `emulated_bf16` computes
what autocast computes with fp32 kernels. `train.emulate_bf16` chooses: auto (emulate exactly on
such CPUs), on, off.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


def _bf16(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.to(torch.bfloat16)


class _Bf16Linear(torch.autograd.Function):
    """F.linear as bf16 autocast computes it, on fp32 kernels. It saves the bf16 operands, as
    autocast's own backward does, rather than fp32 copies of them (half the activation memory)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        xb, wb, bb = _bf16(x), _bf16(weight), _bf16(bias)
        out = F.linear(xb.float(), wb.float(), None if bb is None else bb.float())
        ctx.save_for_backward(xb if ctx.needs_input_grad[1] else None, wb if ctx.needs_input_grad[0] else None)
        ctx.dtypes = x.dtype, weight.dtype, None if bias is None else bias.dtype
        return out.to(torch.bfloat16)

    @staticmethod
    def backward(ctx, grad):
        xb, wb = ctx.saved_tensors
        g = grad.to(torch.bfloat16).float()

        def back(t, i):
            return t.to(torch.bfloat16).to(ctx.dtypes[i])  # bf16 result, as autocast's

        gx = back(g @ wb.float(), 0) if ctx.needs_input_grad[0] else None
        g2 = g.reshape(-1, g.shape[-1])
        gw = back(g2.t() @ xb.float().reshape(-1, xb.shape[-1]), 1) if ctx.needs_input_grad[1] else None
        gb = back(g2.sum(0), 2) if ctx.dtypes[2] is not None and ctx.needs_input_grad[2] else None
        return gx, gw, gb


class emulated_bf16(TorchFunctionMode):
    """bf16 autocast, emulated for CPUs without bf16 matrix kernels.

    F.linear and scaled_dot_product_attention (the matmuls of an SDPA decoder, its lm_head and the
    fused loss's gradient products) round their floating inputs to bf16, compute in fp32 and
    return bf16, as autocast does: bf16 products are exact in fp32, so only the accumulation order
    differs from a bf16 GEMM with fp32 accumulation. Gradients pass through the same bf16 roundings.
    Other ops see bf16 activations, as under autocast. Written by hand: torch has no such mode.
    """

    active = 0  # modes entered and not yet left (checkpoint_contexts reads it)

    def __enter__(self):
        emulated_bf16.active += 1
        return super().__enter__()

    def __exit__(self, *exc):
        emulated_bf16.active -= 1
        return super().__exit__(*exc)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear:
            given = {**dict(zip(("input", "weight", "bias"), args)), **kwargs}
            return _Bf16Linear.apply(given["input"], given["weight"], given.get("bias"))
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)

        def r(x):
            return x.to(torch.bfloat16).float() if torch.is_tensor(x) and x.is_floating_point() else x

        return func(*[r(a) for a in args], **{k: r(v) for k, v in kwargs.items()}).to(torch.bfloat16)


def checkpoint_contexts():
    """`context_fn` for torch's non-reentrant checkpoint: (forward context, recompute context).

    torch re-enters autocast when it recomputes a checkpointed layer in backward, but not a
    TorchFunctionMode, so a layer checkpointed under `emulated_bf16` would be recomputed in fp32:
    other numbers than its forward, and with bf16 frozen weights (model.dtype) a dtype error. This
    re-enters the emulation for the recompute when it was on in the forward."""
    return contextlib.nullcontext(), (emulated_bf16() if emulated_bf16.active else contextlib.nullcontext())


def cpu_has_bf16_matmul() -> bool:
    """Whether this CPU has native bf16 GEMM kernels (oneDNN's own check)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def emulates_bf16(precision: str, device: torch.device, emulate: str = "auto") -> bool:
    if precision != "bf16" or device.type != "cpu" or emulate == "off":
        return False
    return emulate == "on" or not cpu_has_bf16_matmul()


def autocast(precision: str, device: torch.device, emulate: str = "auto"):
    """The context one forward pass runs in: none (fp32), autocast to bf16 / fp16, or its
    emulation (see the module docstring)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    if emulates_bf16(precision, device, emulate):
        return emulated_bf16()
    return torch.autocast(device_type=device.type, dtype=dtype)
