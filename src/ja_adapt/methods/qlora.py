"""QLoRA (method=qlora; Dettmers et al. 2023): LoRA (the lora.* keys, lora.py's builder) over a base
whose decoder linears are 4-bit NF4, dequantized block by block in each matmul. Embeddings, norms and
the output head stay unquantized. The 4-bit base itself is loaded by models/build.py
(quantization_config, load_frozen_base) from the `qlora.*` keys here."""

from __future__ import annotations

from dataclasses import dataclass

from ja_adapt.core.errors import closest
from ja_adapt.methods.lora import LORA_FAMILY
from ja_adapt.methods.spec import MethodSpec, Section, key_error, register

QLORA_CPU_KERNELS = ("auto", "packed", "unpacked")  # bitsandbytes_gate.fit_cpu_kernels


@dataclass
class QLoraConfig:
    # method=qlora: LoRA (the lora.* keys) over a base whose decoder linears bitsandbytes stores as
    # 4-bit NF4 in blocks of 64 weights, each block with its absmax scale.
    double_quant: bool = True  # store the absmax scales 8-bit (QLoRA's double quantisation:
    # ~0.127 instead of 0.5 bits per weight); false: fp32 scales
    cpu_kernel: str = "auto"  # on CPU: auto (bitsandbytes' packed AVX512-BF16 kernel where
    # the CPU has it and the layer's shape fits), packed, unpacked
    # (the two paths round differently: pin one to compare CPUs)


def check(cfg) -> None:
    """qlora.cpu_kernel is one of QLORA_CPU_KERNELS."""
    kernel = cfg.qlora.cpu_kernel
    if kernel not in QLORA_CPU_KERNELS:
        raise key_error(
            "qlora.cpu_kernel", f"is '{kernel}'{closest(kernel, QLORA_CPU_KERNELS)}; use {', '.join(QLORA_CPU_KERNELS)}"
        )


register(
    MethodSpec(
        "qlora",
        "LoRA adapters over a 4-bit NF4 frozen base (bitsandbytes; qlora.* keys)",
        quantized_base=True,
        section=Section("qlora", QLoraConfig, base_storage=True),
        check=check,
        **LORA_FAMILY,
    )
)
