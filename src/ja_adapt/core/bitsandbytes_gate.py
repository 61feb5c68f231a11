"""bitsandbytes only when a quantized method asks for it, and then without a reach for the hub.

Why a gate: `import peft` imports bitsandbytes whenever it is installed (peft/helpers.py), and
bitsandbytes, on a CPU with AVX512-BF16, asks the `kernels` package to download a fused 4-bit GEMM
from the hub repository kernels-community/quantization-bitsandbytes at import time, printing a
warning when it cannot. So `import ja_adapt` marks bitsandbytes absent (`hide()`: a None entry in
`sys.modules`, which `import` and `importlib.util.find_spec` both honour, so peft, transformers and
accelerate all see it as not installed), and a quantized method calls `load()`, which imports it
with `kernels` hidden for that import only: bitsandbytes then uses the CPU kernels its own wheel
ships. A program that wants bitsandbytes itself after `import ja_adapt` calls `load()` too.

The CPU rule (`fit_cpu_kernels`): on an AVX512-BF16 CPU, `Linear4bit.forward` in eval mode without
grad repacks its weight for the fused CPU kernel, which needs `out_features % 32 == 0` ("N must be
divisible by block_n") and `in_features` a multiple of the quantization block (64: its scales are
reshaped per row), bitsandbytes 0.50 functional._convert_weight_packed_for_cpu. A layer that
breaks the rule keeps the unpacked path (its `support_avx512bf16_for_cpu` flag off): it works,
rounds a little differently (the packed kernel computes in bf16) and is slower. Every Qwen2.5
shape keeps the rule, and so do the tiny and micro presets.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import sys
from collections.abc import Iterator

from ja_adapt.core.errors import UserError, notice

PACKED_BLOCK = 32  # out_features multiple the AVX512-BF16 packed CPU kernel needs (block_n)
_KERNEL_REPO = "kernels-community/quantization-bitsandbytes"
_MISSING = object()


def hide() -> None:
    """Mark bitsandbytes as not installed for this process, unless it is imported already."""
    sys.modules.setdefault("bitsandbytes", None)


def hidden() -> bool:
    return "bitsandbytes" in sys.modules and sys.modules["bitsandbytes"] is None


def available() -> bool:
    """Whether bitsandbytes is installed (hidden or not)."""
    with _unhidden():
        return importlib.util.find_spec("bitsandbytes") is not None


@contextlib.contextmanager
def _unhidden() -> Iterator[None]:
    was_hidden = hidden()
    if was_hidden:
        del sys.modules["bitsandbytes"]
    try:
        yield
    finally:
        if was_hidden and "bitsandbytes" not in sys.modules:
            sys.modules["bitsandbytes"] = None


@contextlib.contextmanager
def _without_hub_kernels() -> Iterator[None]:
    """`kernels` absent and bitsandbytes' CPU-ops logger quiet, for the length of one import."""
    saved = sys.modules.get("kernels", _MISSING)
    sys.modules["kernels"] = None
    ops_logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    was_disabled, ops_logger.disabled = ops_logger.disabled, True
    try:
        yield
    finally:
        ops_logger.disabled = was_disabled
        if saved is _MISSING:
            sys.modules.pop("kernels", None)
        else:
            sys.modules["kernels"] = saved


def load():
    """Import bitsandbytes (no hub kernels) and tell peft/transformers it is there; returns it.
    The caller checks `available()` first."""
    if not hidden() and "bitsandbytes" in sys.modules:
        return sys.modules["bitsandbytes"]
    sys.modules.pop("bitsandbytes", None)
    with _without_hub_kernels():
        bnb = importlib.import_module("bitsandbytes")
    _forget_cached_absence()
    if cpu_has_avx512bf16():
        notice(
            f"bitsandbytes uses the CPU kernels of its own wheel; the faster fused 4-bit GEMM is "
            f"the hub kernel {_KERNEL_REPO} (package `kernels`), which ja-adapt does not download"
        )
    return bnb


def _forget_cached_absence() -> None:
    """peft and transformers cache "bitsandbytes is not installed" (functools.lru_cache) when they
    asked while it was hidden; clear those answers so the quantizers find it."""
    for module_name, marker in (("peft.import_utils", "bnb"), ("transformers.utils.import_utils", "bitsandbytes")):
        module = sys.modules.get(module_name)
        for name in dir(module) if module is not None else ():
            fn = getattr(module, name)
            if marker in name and callable(getattr(fn, "cache_clear", None)):
                fn.cache_clear()


def cpu_has_avx512bf16() -> bool:
    """bitsandbytes' own check (its native library's cpuid), False when it is not loaded."""
    bnb = sys.modules.get("bitsandbytes")
    if bnb is None:
        return False
    from bitsandbytes.functional import has_avx512bf16

    return bool(has_avx512bf16())


def check_cpu_kernel(kernel: str) -> None:
    """`qlora.cpu_kernel=packed` needs a CPU with AVX512-BF16: refused before the model loads."""
    if kernel == "packed" and not cpu_has_avx512bf16():
        raise UserError(
            "config: key 'qlora.cpu_kernel' is packed, which needs a CPU with AVX512-BF16 "
            "(this one has none); use auto or unpacked"
        )


def packing_problem(out_features: int, in_features: int, blocksize: int) -> str | None:
    """Why bitsandbytes' packed CPU kernel cannot take a layer of this shape, or None."""
    if out_features % PACKED_BLOCK:
        return f"out_features {out_features}, and the packed CPU kernel needs a multiple of {PACKED_BLOCK}"
    if in_features % blocksize:
        return (
            f"in_features {in_features}, and the packed CPU kernel needs a multiple of the "
            f"quantization block ({blocksize})"
        )
    return None


def fit_cpu_kernels(model, kernel: str = "auto") -> None:
    """Choose each Linear4bit's CPU path: the `qlora.cpu_kernel` key. auto: the packed AVX512-BF16
    kernel where the CPU has it and the layer's shape fits (`packing_problem`), the unpacked one
    elsewhere (one notice names the first layer kept off); unpacked: everywhere; packed: everywhere,
    refused (UserError) for a layer whose shape does not fit (`check_cpu_kernel` refused it earlier
    on a CPU without AVX512-BF16, before any weight was loaded)."""
    import bitsandbytes as bnb

    has = cpu_has_avx512bf16()
    kept_off = []
    for name, module in model.named_modules():
        if not isinstance(module, bnb.nn.Linear4bit):
            continue
        why = packing_problem(module.out_features, module.in_features, module.weight.quant_state.blocksize)
        if kernel == "packed" and why:
            raise UserError(
                f"config: key 'qlora.cpu_kernel' is packed, but layer {name} has {why}; "
                "use auto (that layer then runs unpacked) or unpacked"
            )
        module.support_avx512bf16_for_cpu = kernel != "unpacked" and has and why is None
        if kernel == "auto" and has and why:
            kept_off.append(name)
    if kept_off:
        notice(
            f"{len(kept_off)} 4-bit layers ({kept_off[0]}, ...) run bitsandbytes' unpacked CPU kernel: "
            f"the packed one needs out_features % {PACKED_BLOCK} == 0 and in_features a multiple of "
            "the quantization block"
        )
