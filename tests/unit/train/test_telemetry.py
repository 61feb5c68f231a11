"""telemetry: FLOPs per token against torch's own FLOP counter, peaks, MFU, memory meter, device facts."""

import time

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModelForCausalLM

from ja_adapt.core.errors import UserError
from ja_adapt.methods.spec import resolve_targets
from ja_adapt.models.load import preset_config
from ja_adapt.train import telemetry
from ja_adapt.train.loss import token_nll

V, B, T = 1024, 2, 32


def _hand_n(c) -> int:
    """Matmul weights from the config's numbers alone: 4 projections + 3 MLP matrices per layer, lm_head."""
    hd = c.hidden_size // c.num_attention_heads
    q, kv = c.num_attention_heads * hd, c.num_key_value_heads * hd
    per_layer = c.hidden_size * (q + 2 * kv) + q * c.hidden_size + 3 * c.hidden_size * c.intermediate_size
    return c.num_hidden_layers * per_layer + c.vocab_size * c.hidden_size


@pytest.mark.parametrize("preset", ["qwen2.5-0.5b", "qwen2.5-7b"])
def test_flops_formula_matches_hand_arithmetic(preset):
    c = preset_config(preset)
    n, attn = _hand_n(c), 12 * c.num_hidden_layers * c.hidden_size * 2048
    assert telemetry.matmul_params(c) == n
    assert telemetry.flops_per_token(c, method="full", trainable_params=0, seq_len=2048) == 6 * n + attn
    assert telemetry.flops_per_token(c, method="lora", trainable_params=1000, seq_len=2048) == 4 * n + 6 * 1000 + attn


@pytest.mark.parametrize("method,ckpt", [("full", False), ("lora", False), ("full", True)])
def test_flops_match_torch_flop_counter(method, ckpt):
    """torch counts every matmul of a real forward+backward (eager attention, so QK^T and AV too);
    with activation checkpointing, the layers' forward once more (its time cost, in FLOPs)."""
    torch.manual_seed(0)
    config = preset_config("tiny", vocab_size=V)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").train()
    if ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                r=8, lora_alpha=16, lora_dropout=0.0, target_modules=resolve_targets("qkvo"), task_type="CAUSAL_LM"
            ),
        )
    ids = torch.randint(0, V, (B, T))
    batch = {"input_ids": ids, "position_ids": torch.arange(T).repeat(B, 1), "targets": ids.roll(-1, 1)}
    with FlopCounterMode(display=False) as counter:
        token_nll(model, batch).sum().backward()
    measured = counter.get_total_flops() / (B * T)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    predicted = telemetry.flops_per_token(config, method=method, trainable_params=trainable, seq_len=T)
    if ckpt:
        predicted += telemetry.recompute_flops_per_token(config, seq_len=T)
    if method == "full":
        assert predicted == pytest.approx(measured, rel=1e-6)
    else:  # the formula ignores that LoRA's first layer needs no input gradient for q/k/v (frozen embedding)
        assert predicted == pytest.approx(measured, rel=0.05)
        assert predicted > measured


def test_unknown_method_is_refused_with_the_key_named():
    with pytest.raises(UserError, match="key 'method' is 'vera'"):
        telemetry.flops_per_token(preset_config("tiny"), method="vera", trainable_params=0, seq_len=8)


def test_peak_flops_and_mfu():
    assert telemetry.peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert telemetry.peak_flops("NVIDIA H200") == 989e12
    assert telemetry.peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert telemetry.peak_flops("Tesla T4") is None
    assert telemetry.mfu(1000.0, 1e9, 1e13) == pytest.approx(0.1)


def test_memory_meter_cpu_sees_an_allocation():
    meter = telemetry.MemoryMeter("cpu")
    meter.reset()
    before = meter.current_bytes()
    x = torch.ones(64 * 1024 * 1024 // 4)  # 64 MiB, written so the pages are resident
    assert meter.peak_bytes() >= before + 0.8 * x.numel() * 4
    del x
    stats = meter.stats()
    assert stats["reported"] == "peak_rss_sampled_bytes"
    # the lifetime peak is not lower, up to the kernel updating its high-water mark lazily
    assert stats["ru_maxrss_bytes"] >= 0.95 * stats["peak_rss_sampled_bytes"]
    meter.reset()  # a new interval: the sampled peak forgets the freed 64 MiB, ru_maxrss cannot
    assert meter.peak_bytes() < stats["peak_rss_sampled_bytes"] - 32 * 1024 * 1024


def test_memory_meter_cpu_catches_a_peak_freed_between_calls():
    """A large tensor is mmap'd and returned to the OS when freed, so RSS read only at the meter's
    calls (as between training steps) would miss it; the kernel's high-water mark keeps it."""
    meter = telemetry.MemoryMeter("cpu")
    before = meter.current_bytes()
    x = torch.ones(128 * 1024 * 1024 // 4)  # 128 MiB, resident
    time.sleep(0.1)  # a forward/backward's worth of time
    del x
    after = meter.current_bytes()
    assert after < before + 32 * 1024 * 1024  # the pages went back: a call now cannot see them
    assert meter.peak_bytes() >= before + 100 * 1024 * 1024


def test_memory_meter_reset_releases_the_freed_heap():
    """Small freed allocations stay in glibc's heap (RSS) until trimmed; reset() trims them so a
    new interval starts from what is live."""
    meter = telemetry.MemoryMeter("cpu")
    junk = [bytes(1000) for _ in range(100_000)]  # ~100 MB in small malloc'd blocks
    pin = [bytes(1000) for _ in range(100)]  # above them: free() cannot shrink the heap
    held = meter.current_bytes()
    del junk
    meter.reset()
    assert meter.current_bytes() < held - 50 * 1024 * 1024
    del pin


def test_live_tensor_bytes_counts_new_storages_until_freed():
    """Views and in-place results of a tensor made before are not counted; a new tensor is, until
    it is freed; the peak stays; the snapshot names what was live at the peak."""
    before = torch.zeros(1000)  # made outside: not counted
    with telemetry.LiveTensorBytes(snapshot=True) as live:
        live.label = "mine"
        before.view(10, 100).add_(1)
        assert live.current == 0
        a = before * 2  # 4,000 bytes
        b = a[:500].mul(3)  # 2,000
        a.t_()
        assert live.current == live.peak == 6000
        del a
        assert live.current == 2000 and live.peak == 6000
        live.reset_peak()
        assert live.peak == 2000 and [v[:2] for v in live.at_peak.values()] == [(2000, "mine")]
    del b
    assert live.current == 0


def test_malloc_heap_bytes_sees_an_allocation():
    before = telemetry.malloc_heap_bytes()
    x = torch.ones(1024 * 1024)  # 4 MiB: in glibc's heap or mapped apart
    after = telemetry.malloc_heap_bytes()
    grew = after["in_use"] + after["mmapped"] - before["in_use"] - before["mmapped"]
    assert grew >= x.numel() * 4 and after["free"] >= 0


def test_device_facts_are_the_machine_s():
    import os
    import platform

    info = telemetry.device_info("cpu")
    assert info["device_type"] == "cpu" and info["torch_version"] == torch.__version__
    assert info["cpu_count"] == os.cpu_count() and info["python_version"] == platform.python_version()
    assert info["cuda_version"] == torch.version.cuda and info["bf16_supported"] is True
    assert "device_memory_bytes" not in info  # CUDA facts only on CUDA
