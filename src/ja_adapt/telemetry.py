"""Hardware-dependent measurements behind small functions: FLOPs per token, MFU, memory, device facts.

Everything that differs between CPU and GPU (CUDA memory statistics, bf16 support, synchronisation)
lives here, so training, benchmarking and planning code is the same on both.

FLOPs per trained token (defined once, here; docs/plan.md states the derivation):
  N       = matmul weight parameters: every nn.Linear weight of the model, lm_head included (it is
            a [vocab, hidden] matmul even when tied to the embedding). Embedding lookups, norms and
            biases are not counted (lookups and element-wise ops are not matmuls; biases are O(N/d)).
  attn    = 12 · L · (heads · head_dim) · T, T = seq_len, the full packed row length (PaLM's
            convention: the whole T×T score matrix, not halved for the causal mask nor shortened by
            document boundaries), so MFU is comparable with published numbers.
  base trains (full)   6 · N + attn                   (forward 2N, backward 4N: input and weight grads)
  frozen base (lora)   4 · N + 6 · N_trainable + attn (the base skips its 2N weight-gradient matmuls)
Which applies is the method's `MethodSpec.trains_base` (method_spec.py).
"""

from __future__ import annotations

import ctypes
import gc
import os
import platform
import resource
import sys
import threading

import psutil
import torch
from transformers import AutoModelForCausalLM

from ja_adapt.method_spec import method_spec

# Peak dense bf16 tensor throughput (FLOP/s), matched as a case-insensitive substring of the device
# name. Dense figures only: H100's "1979 TFLOP/s" is with 2:4 sparsity and is never used.
PEAK_BF16_FLOPS: dict[str, float] = {
    "H100": 989e12,
    "H200": 989e12,
    "A100": 312e12,
}


_MATMUL_CACHE: dict[str, tuple[int, int, int]] = {}


def _matmul_shape(config) -> tuple[int, int, int]:
    """(N matmul weight params incl. lm_head, layers, attention width) of a config, built on meta."""
    key = config.to_json_string(use_diff=False)
    if key not in _MATMUL_CACHE:
        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            model = AutoModelForCausalLM.from_config(config)
        n = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        _MATMUL_CACHE[key] = (n, config.num_hidden_layers, heads * head_dim)
    return _MATMUL_CACHE[key]


def matmul_params(config) -> int:
    """N: parameters of every nn.Linear weight (decoder projections and lm_head) of `config`'s model."""
    return _matmul_shape(config)[0]


def flops_per_token(config, *, method: str, trainable_params: int, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward) of a causal LM built from `config`.

    method: a registered method; one that trains its base (full) needs no `trainable_params`, one
    with a frozen base (lora) takes its trainable (adapter) parameters. seq_len: packed row length T.
    """
    n, layers, attn_width = _matmul_shape(config)
    attention = 12.0 * layers * attn_width * seq_len
    if method_spec(method).trains_base:
        return 6.0 * n + attention
    return 4.0 * n + 6.0 * trainable_params + attention


def peak_flops(device_name: str) -> float | None:
    """Peak dense bf16 FLOP/s of a device from its name (e.g. 'NVIDIA H100 80GB HBM3'), None if unknown."""
    upper = device_name.upper()
    for key, value in PEAK_BF16_FLOPS.items():
        if key in upper:
            return value
    return None


def device_peak_flops(device) -> float | None:
    """Peak dense bf16 FLOP/s of one device of the run (CUDA, named in PEAK_BF16_FLOPS), else None."""
    dev = _device(device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        return None
    return peak_flops(torch.cuda.get_device_name(dev))


def mfu(tokens_per_s: float, flops_per_token: float, peak: float) -> float:
    """Model FLOPs utilisation: achieved FLOP/s (tokens/s × FLOPs per token) over the peak."""
    return tokens_per_s * flops_per_token / peak


# ---- devices -------------------------------------------------------------------------------------

def _device(device) -> torch.device:
    return device if isinstance(device, torch.device) else torch.device(device)


def bf16_supported(device) -> bool:
    """Whether bf16 autocast runs natively: CUDA asks the GPU; CPU autocast supports bf16 always."""
    dev = _device(device)
    if dev.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return dev.type == "cpu"


def sync(device) -> None:
    """Wait for queued GPU work (so timings are real); a no-op on CPU."""
    dev = _device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def device_info(device="cpu") -> dict:
    """Facts about the machine a measurement ran on, for results.json."""
    dev = _device(device)
    info = {
        "device_type": dev.type,
        "device_name": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "python_version": sys.version.split()[0],
        "bf16_supported": bf16_supported(dev),
    }
    if dev.type == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(dev)
        info.update(device_name=props.name, device_memory_bytes=props.total_memory,
                    peak_bf16_flops=peak_flops(props.name))
    return info


# ---- memory --------------------------------------------------------------------------------------

def ru_maxrss_bytes() -> int:
    """Process lifetime peak RSS; ru_maxrss is KiB on Linux and bytes on macOS."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def release_freed_heap() -> None:
    """Collect garbage and hand glibc's freed heap back to the OS (malloc_trim), so that a process
    RSS measured next counts what is live, not what earlier work in the same process freed. The
    demo trains and evaluates a dozen runs in one process; without this, later runs inherited the
    heap of earlier evaluations (0.8 GiB for a run's first seed, 1.4 GiB for its third). No-op
    where glibc is absent."""
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):     # musl and others: nothing to trim with
            pass


class _RssSampler:
    """A daemon thread that keeps the high-water mark of the process RSS, sampled every
    `interval` seconds. Large tensors are mmap'd and returned to the OS as soon as they are freed,
    so sampling only between steps would miss the forward/backward peak. The thread holds this
    small object, not the meter, so a dropped meter stops it (MemoryMeter.__del__)."""

    def __init__(self, process: psutil.Process, interval: float = 0.005):
        self._process, self._interval = process, interval
        self._stop = threading.Event()
        self.high = process.memory_info().rss
        threading.Thread(target=self._run, name="ja-adapt-rss", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.high = max(self.high, self._process.memory_info().rss)
            except psutil.Error:               # the process is exiting
                return

    def sample(self) -> int:
        rss = self._process.memory_info().rss
        self.high = max(self.high, rss)
        return rss

    def stop(self) -> None:
        self._stop.set()


class MemoryMeter:
    """Peak memory over an interval (call `reset()` to start one).

    CUDA: `peak_bytes()` is torch.cuda.max_memory_allocated (live tensors, comparable with the
    planner's tensor bytes); `stats()` also gives max_memory_reserved (what the caching allocator
    holds, closer to what nvidia-smi shows, minus the CUDA context).
    CPU: `peak_bytes()` is the high-water mark of the process RSS (psutil), sampled every 5 ms by a
    background thread and at every call to this meter, because ru_maxrss cannot be reset; `reset()`
    first releases freed heap (`release_freed_heap`). `stats()` also gives ru_maxrss (the
    process-lifetime peak, never lower). RSS includes the interpreter and libraries, not only
    tensors. `close()` stops the sampler (a dropped meter stops it too).
    """

    def __init__(self, device="cpu"):
        self.device = _device(device)
        self._process = psutil.Process()
        self._sampler: _RssSampler | None = None
        self.reset()

    @property
    def _cuda(self) -> bool:
        return self.device.type == "cuda"

    def reset(self) -> None:
        if self._cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        self.close()
        release_freed_heap()
        self._sampler = _RssSampler(self._process)

    def close(self) -> None:
        """Stop the CPU sampler; the peak so far stays readable."""
        if getattr(self, "_sampler", None) is not None:
            self._sampler.stop()

    def __del__(self):
        self.close()

    def current_bytes(self) -> int:
        if self._cuda:
            return torch.cuda.memory_allocated(self.device)
        return self._sampler.sample()

    def peak_bytes(self) -> int:
        if self._cuda:
            return torch.cuda.max_memory_allocated(self.device)
        self.current_bytes()
        return self._sampler.high

    def stats(self) -> dict:
        """All peak figures this device has, with the one `peak_bytes` reports named."""
        if self._cuda:
            return {"peak_allocated_bytes": torch.cuda.max_memory_allocated(self.device),
                    "peak_reserved_bytes": torch.cuda.max_memory_reserved(self.device),
                    "reported": "peak_allocated_bytes"}
        return {"peak_rss_sampled_bytes": self.peak_bytes(), "ru_maxrss_bytes": ru_maxrss_bytes(),
                "reported": "peak_rss_sampled_bytes"}
