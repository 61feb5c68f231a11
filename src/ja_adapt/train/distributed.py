"""Data-parallel training behind small functions: DDP and FSDP2 under torchrun / accelerate launch.

One process per device. The launcher (torchrun, `accelerate launch`, `ja-adapt train --nproc N`)
sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; `setup` reads them. Without them
(plain `ja-adapt train`) the world is one process and every function here is a no-op, so the
single-process run is the same code path with the same numbers.

Semantics (docs/scaling.md):
  global batch   = train.batch_size x train.grad_accum x world rows. Micro-batch g of the run is
                   PackedBatches(batch_size=B*world).get(g) and rank r trains on its rows
                   r*B:(r+1)*B, so the ranks partition the packed stream: no document is
                   duplicated or dropped, and the global batch is the one a single process with
                   batch_size B*world would train on.
  loss           token-weighted over the global batch: every rank builds the whole global batch
                 (index arithmetic only), so each knows the global target count without a
                 collective; DDP / FSDP average gradients over ranks, which `train` undoes by
                 scaling the local loss by the world size.
  strategies     ddp   torch DistributedDataParallel: replicated weights, all-reduced gradients.
                 fsdp  FSDP2 `fully_shard`: parameters, gradients and optimizer state sharded per
                       decoder layer (full sharding), optional bf16 mixed precision; checkpoints
                       are torch.distributed.checkpoint (DCP) shards written by every rank.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.nn.parallel import DistributedDataParallel as DDP

from ja_adapt.core.errors import UserError
from ja_adapt.data.packing import PackedBatches
from ja_adapt.models.build import base_model
from ja_adapt.train.loss import training_loss

# ---- the process group ---------------------------------------------------------------------------


def world() -> int:
    """Number of training processes (1 without a launcher)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def launched_rank() -> int:
    """This process's rank as its launcher set it (RANK), readable before the group is joined."""
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """True on the one process that writes logs, reports, checkpoints and the final weights."""
    return rank() == 0


def setup(device: torch.device) -> torch.device:
    """Join the process group a launcher described in the environment; returns this rank's device.

    device: the configured device (cpu or cuda). CUDA ranks use cuda:LOCAL_RANK and NCCL; CPU ranks
    use gloo. Without WORLD_SIZE > 1 nothing happens and `device` is returned as it is.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    atexit.register(_teardown)
    return device


def _teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if world() > 1:
        dist.barrier()


@contextlib.contextmanager
def main_first():
    """Rank 0 runs the body first (e.g. fills the token cache), then the others (cache hits)."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def _comm_device() -> torch.device:
    if world() > 1 and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce(value: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """The sum (or max) of `value` over ranks, a new tensor on value's device (itself for 1 rank)."""
    if world() == 1:
        return value
    t = value.detach().to(_comm_device()).clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return t.to(value.device)


def local_part(t: torch.Tensor) -> torch.Tensor:
    """This rank's part of a tensor: the local shard of an FSDP DTensor, else the tensor."""
    return t.to_local() if hasattr(t, "to_local") else t


def trainable_weights_finite(model: nn.Module) -> bool:
    """True when every trainable weight is finite on every rank (collective): a step with a finite
    loss can still overflow the weights (a huge learning rate), and such weights are never saved."""
    bad = sum(int(not torch.isfinite(local_part(p).detach()).all()) for p in model.parameters() if p.requires_grad)
    return int(all_reduce(torch.tensor(bad))) == 0


def all_gather(value: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's `value` (same shape and dtype on each rank), in rank order, on the CPU."""
    if world() == 1:
        return [value]
    t = value.detach().to(_comm_device()).contiguous()
    out = [torch.empty_like(t) for _ in range(world())]
    dist.all_gather(out, t)
    return [o.cpu() for o in out]


# ---- data ----------------------------------------------------------------------------------------


def global_batches(packed):
    """The run's micro-batches: `packed` (B rows) itself for one process, else the same stream
    packed B*world rows at a time, so global micro-batch g covers the stream positions a single
    process with batch_size B*world would train on at step g."""
    if world() == 1:
        return packed
    return PackedBatches(
        packed.store,
        packed.seq_len,
        packed.batch_size * world(),
        seed=packed.seed,
        shuffle=packed.shuffle,
        pad_id=packed.pad_id,
    )


def shard_rows(batch: dict[str, torch.Tensor], r: int | None = None, n: int | None = None) -> dict[str, torch.Tensor]:
    """Rank r's rows of a global batch: [B*n, T] tensors -> rows r*B:(r+1)*B, [B, T]."""
    r, n = rank() if r is None else r, world() if n is None else n
    if n == 1:
        return batch
    rows = next(iter(batch.values())).shape[0] // n
    return {k: v[r * rows : (r + 1) * rows] for k, v in batch.items()}


# ---- the model -----------------------------------------------------------------------------------


class LossForward(nn.Module):
    """The training forward as one module call, so DDP / FSDP hooks see the whole computation.

    loss.training_loss reaches into the decoder and lm_head weight instead of calling the model's
    forward; wrapping it in a module's forward puts the DDP reducer set-up and FSDP's root
    all-gather of the embedding / lm_head around it. In: a batch's three [B, T] int64 tensors and
    the loss scale; out: (scale * summed NLL, the [B, T] NLL detached).
    """

    def __init__(self, model: nn.Module, chunk_size: int):
        super().__init__()
        self.model, self.chunk_size = model, chunk_size

    def forward(self, input_ids, position_ids, targets, scale: float = 1.0):
        batch = {"input_ids": input_ids, "position_ids": position_ids, "targets": targets}
        loss, nll = training_loss(self.model, batch, scale, self.chunk_size)
        # nll is a view; FSDP2 warns on view outputs (in-place ops would skip its backward hook),
        # so hand out a copy of the small [B, T] tensor (values unchanged).
        return loss, nll.clone()


def resolve_strategy(cfg) -> str:
    """single (one process), ddp or fsdp, from train.strategy and the world size."""
    strategy = cfg.train.strategy
    if world() == 1:
        return "single"
    return "ddp" if strategy == "auto" else strategy


def _decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The repeated transformer blocks (HF's `_no_split_modules`), the unit of FSDP sharding."""
    base = base_model(model)
    names = set(getattr(base, "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise UserError(
            f"train.strategy: fsdp needs the model's decoder layer class "
            f"(_no_split_modules) and {type(base).__name__} names none; use ddp"
        )
    return layers


def wrap_model(model: nn.Module, cfg, device: torch.device) -> nn.Module:
    """`model` (on `device`) behind a LossForward: as it is (one process), DDP or FSDP2.

    FSDP2 replaces the parameters of `model` in place by sharded DTensors, so build the optimizer
    from `model.parameters()` after this call. Returns the module the loop calls with a batch.
    """
    engine = LossForward(model, cfg.train.loss_chunk_size)
    strategy = resolve_strategy(cfg)
    if strategy == "ddp":
        # Buffers (rotary frequencies) are identical on every rank: no per-forward sync.
        return DDP(engine, device_ids=[device.index] if device.type == "cuda" else None, forward_sync_buffers=False)
    if strategy == "fsdp":
        mesh = init_device_mesh(device.type, (world(),))
        # bf16: all-gather / compute in bf16, reduce-scatter gradients in fp32 into fp32 shards.
        mp = (
            MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
            if cfg.precision == "bf16"
            else MixedPrecisionPolicy()
        )
        for layer in _decoder_layers(model):
            fully_shard(layer, mesh=mesh, mp_policy=mp)
        fully_shard(engine, mesh=mesh, mp_policy=mp)  # root: embeddings, final norm, lm_head
    return engine


def eval_module(engine: nn.Module) -> nn.Module:
    """The module to validate with: DDP's inner module (no gradient sync, no collectives, so ranks
    may differ in batch count), the FSDP root itself (its hooks gather the sharded weights)."""
    return engine.module if isinstance(engine, DDP) else engine


def is_sharded(engine: nn.Module) -> bool:
    """True when parameters are FSDP shards (checkpoints go through DCP)."""
    return isinstance(engine, FSDPModule)


def grad_sync(engine: nn.Module, enabled: bool):
    """Context for one micro-batch's backward: gradients are reduced across ranks only when
    `enabled` (the last micro-batch of a step), saving grad_accum-1 reductions per step."""
    if isinstance(engine, DDP) and not enabled:
        return engine.no_sync()
    if isinstance(engine, FSDPModule):
        engine.set_requires_gradient_sync(enabled)
    return contextlib.nullcontext()


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor] | None:
    """The full (unsharded) CPU state dict of an FSDP-sharded `model`, on rank 0 (None elsewhere).
    Collective: every rank calls it."""
    sd = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return sd if is_main() else None


def launch_command(nproc: int, argv: list[str]) -> list[str]:
    """argv for `torch.distributed.run` starting `nproc` local processes of `ja-adapt <argv>`
    (a free rendezvous port is chosen by the standalone mode)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "ja_adapt",
        *argv,
    ]
