"""Hardware-dependent measurements behind small functions: FLOPs per token, MFU, memory, device facts.

Everything that differs between CPU and GPU (CUDA memory statistics, bf16 support, synchronisation)
lives here, so training, benchmarking and planning code is the same on both. FLOPs per trained
token and the peak-throughput table are defined in arch.py (torch-free, so `ja-adapt plan` needs
no torch) and re-exported here.
"""

from __future__ import annotations

import ctypes
import gc
import os
import platform
import resource
import sys
import threading
import time

import psutil
import torch

from ja_adapt.arch import (  # noqa: F401  (re-exported: the one definition)
    PEAK_BF16_FLOPS,
    architecture,
    flops_per_token,
    matmul_params,
    peak_flops,
    recompute_flops_per_token,
)


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


# ---- throughput ----------------------------------------------------------------------------------

def measure_matmul_flops(config, rows: int, device="cpu", repeats: int = 3) -> float:
    """This machine's fp32 matmul FLOP/s at the shapes of one training step of `config`'s model:
    each Linear of a layer (times the layer count) and the lm_head, on `rows` = batch · seq rows,
    each shape timed as the fastest of `repeats` runs. The plan's time model divides FLOPs by it."""
    a = architecture(config)
    dev = _device(device)
    shapes = [(i, o, a.layers) for _, i, o in a.linears] + [(a.hidden, a.vocab, 1)]
    flops = seconds = 0.0
    for fan_in, fan_out, count in shapes:
        x = torch.randn(rows, fan_in, device=dev)
        w = torch.randn(fan_out, fan_in, device=dev)
        best = float("inf")
        for _ in range(repeats + 1):                     # the first run warms the kernels up
            sync(dev)
            start = time.perf_counter()
            torch.nn.functional.linear(x, w)
            sync(dev)
            best = min(best, time.perf_counter() - start)
        flops += count * 2.0 * rows * fan_in * fan_out
        seconds += count * best
    return flops / seconds
