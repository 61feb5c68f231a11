"""Hardware-dependent measurements behind small functions: FLOPs per token, MFU, memory, device facts.

Everything that differs between CPU and GPU (CUDA memory statistics, bf16 support, synchronisation)
lives here, so training, benchmarking and planning code is the same on both. FLOPs per trained
token and the peak-throughput table are defined in models/arch.py (torch-free, so `ja-adapt plan` needs
no torch) and re-exported here.
"""

from __future__ import annotations

import ctypes
import gc
import os
import platform
import resource
import sys
import time
import weakref

import psutil
import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from ja_adapt.core import provenance
from ja_adapt.models.arch import (  # noqa: F401  (re-exported: the one definition)
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


def mfu(tokens_per_s: float, model_flops_per_token: float, peak: float) -> float:
    """Model FLOPs utilisation: achieved FLOP/s (tokens/s × FLOPs per token) over the peak."""
    return tokens_per_s * model_flops_per_token / peak


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
        "torch_threads": torch.get_num_threads(),  # intra-op threads the measurement ran with
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "python_version": sys.version.split()[0],
        "bf16_supported": bf16_supported(dev),
        **provenance.cpu_record(),  # the host CPU's kernel-choosing flags
    }
    if dev.type == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(dev)
        info.update(
            device_name=props.name, device_memory_bytes=props.total_memory, peak_bf16_flops=peak_flops(props.name)
        )
    return info


# ---- memory --------------------------------------------------------------------------------------


def ru_maxrss_bytes() -> int:
    """Process lifetime peak RSS; ru_maxrss is KiB on Linux and bytes on macOS."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def proc_status_bytes(key: str) -> int | None:
    """A memory line of /proc/self/status (VmHWM: peak RSS, VmRSS: current), in bytes; None off Linux."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


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
        except (OSError, AttributeError):  # musl and others: nothing to trim with
            pass


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def malloc_heap_bytes() -> dict | None:
    """glibc's heap now (mallinfo2): "in_use" (allocated chunks), "free" (freed chunks it keeps:
    resident once touched, so part of RSS, not of any tensor) and "mmapped" (blocks it maps apart
    and unmaps on free). None where glibc (2.33+) is absent."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
    except (OSError, AttributeError):
        return None
    return {"in_use": info.uordblks, "free": info.fordblks, "mmapped": info.hblkhd}


class LiveTensorBytes(TorchDispatchMode):
    """Bytes of the tensor storages that ops make while this mode is active, for as long as they
    live: `current`, `peak`, and with snapshot=True `at_peak`, the storages live at the peak as
    {address: (bytes, label, op)} (`label`: what the caller set `self.label` to when it was made).

    The tensor counterpart of torch.cuda.max_memory_allocated on any device, where RSS also holds
    what the allocator keeps (docs/plan.md). Storages that existed before (parameters, the batch),
    and views or in-place results of them, are not counted. Backward on the CPU runs in the calling
    thread and is counted. `on_peak(self)` is called at each new peak (e.g. malloc_heap_bytes).
    """

    def __init__(self, snapshot: bool = False, on_peak=None):
        super().__init__()
        self.live: dict[int, tuple[int, str, str]] = {}
        self.current = self.peak = 0
        self.snapshot, self.on_peak, self.at_peak, self.label = snapshot, on_peak, {}, ""

    def reset_peak(self) -> None:
        self.peak, self.at_peak = self.current, dict(self.live) if self.snapshot else {}

    def _freed(self, address: int) -> None:
        self.current -= self.live.pop(address)[0]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {
            t.untyped_storage().data_ptr() for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)
        }
        for t in pytree.tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            address, nbytes = storage.data_ptr(), storage.nbytes()
            if nbytes == 0 or t.is_meta or address in inputs or address in self.live:  # view / in place / seen
                continue
            self.live[address] = (nbytes, self.label, func.__name__)
            weakref.finalize(storage, self._freed, address)
            self.current += nbytes
            if self.current > self.peak:
                self.peak = self.current
                if self.snapshot:
                    self.at_peak = dict(self.live)
                if self.on_peak is not None:
                    self.on_peak(self)
        return out


_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def _kernel_peak_rss_resettable() -> bool:
    """Linux keeps the process's RSS high-water mark (VmHWM) and resets it when "5" is written to
    /proc/self/clear_refs: an exact peak with no sampling. (A sampling thread was tried: its wake-ups
    stalled the OpenMP threads of every op and cost 15-30% of the training throughput on 2 cores.)"""
    try:
        with open(_CLEAR_REFS, "w") as f:
            f.write("5")
        return "VmHWM:" in open(_STATUS).read()
    except OSError:
        return False


def _vm_hwm_bytes() -> int:
    for line in open(_STATUS):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


class MemoryMeter:
    """Peak memory over an interval (call `reset()` to start one).

    CUDA: `peak_bytes()` is torch.cuda.max_memory_allocated (live tensors, comparable with the
    planner's tensor bytes); `stats()` also gives max_memory_reserved (what the caching allocator
    holds, closer to what nvidia-smi shows, minus the CUDA context).
    CPU: `peak_bytes()` is the process's RSS high-water mark since `reset()`: the kernel's own
    (VmHWM, reset through /proc/self/clear_refs) on Linux, else the highest RSS seen at this meter's
    calls (ru_maxrss cannot be reset). `reset()` first releases freed heap (`release_freed_heap`).
    `stats()` also gives ru_maxrss. RSS includes the interpreter and libraries, not only tensors.
    """

    def __init__(self, device="cpu"):
        self.device = _device(device)
        self._process = psutil.Process()
        self._high = 0
        self._kernel = False
        self.reset()

    @property
    def _cuda(self) -> bool:
        return self.device.type == "cuda"

    def reset(self) -> None:
        if self._cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        release_freed_heap()
        self._kernel = _kernel_peak_rss_resettable()  # also resets VmHWM to the current RSS
        self._high = self._process.memory_info().rss

    def current_bytes(self) -> int:
        if self._cuda:
            return torch.cuda.memory_allocated(self.device)
        rss = self._process.memory_info().rss
        self._high = max(self._high, rss)
        return rss

    def peak_bytes(self) -> int:
        if self._cuda:
            return torch.cuda.max_memory_allocated(self.device)
        self.current_bytes()
        if self._kernel:
            self._high = max(self._high, _vm_hwm_bytes())
        return self._high

    def stats(self) -> dict:
        """All peak figures this device has, with the one `peak_bytes` reports named."""
        if self._cuda:
            return {
                "peak_allocated_bytes": torch.cuda.max_memory_allocated(self.device),
                "peak_reserved_bytes": torch.cuda.max_memory_reserved(self.device),
                "reported": "peak_allocated_bytes",
            }
        return {
            "peak_rss_sampled_bytes": self.peak_bytes(),
            "ru_maxrss_bytes": ru_maxrss_bytes(),
            "reported": "peak_rss_sampled_bytes",
        }


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
        for _ in range(repeats + 1):  # the first run warms the kernels up
            sync(dev)
            start = time.perf_counter()
            torch.nn.functional.linear(x, w)
            sync(dev)
            best = min(best, time.perf_counter() - start)
        flops += count * 2.0 * rows * fan_in * fan_out
        seconds += count * best
    return flops / seconds
