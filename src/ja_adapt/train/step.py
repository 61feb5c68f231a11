"""One training step, shared by every method, by `train` and by the benchmark; validation loss.

    build_optimizer   AdamW over the trainable parameters and the warmup + cosine/constant schedule
    train_step        one optimizer step over the micro-batches of a global batch
    validation_loss   mean next-token NLL over validation batches

Each takes only the config sections it reads (`cfg.optim`, `cfg.train`, `cfg.precision`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from transformers import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

from ja_adapt.config import ExperimentConfig, OptimConfig, TrainConfig
from ja_adapt.core.modes import eval_mode
from ja_adapt.data.packing import IGNORE
from ja_adapt.models.build import after_step
from ja_adapt.models.precision import autocast
from ja_adapt.train import distributed
from ja_adapt.train.loss import token_nll

PostStep = Callable[[torch.nn.Module, int], None]  # the method's hook: (model, step number from 1)


def build_optimizer(model: torch.nn.Module, optim: OptimConfig, max_steps: int):
    """(AdamW over the parameters that require grad, its LR scheduler) from `cfg.optim`; the cosine
    schedule ends at `max_steps` (cfg.train.max_steps)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params,
        lr=optim.lr,
        betas=(optim.beta1, optim.beta2),
        eps=optim.eps,
        weight_decay=optim.weight_decay,
        fused=optim.fused or None,
        foreach=None if optim.fused else True,
    )
    if optim.schedule == "cosine":
        # transformers' cosine decays to 0; min_lr_ratio lifts the floor through LambdaLR's factor.
        scheduler = get_cosine_schedule_with_warmup(optimizer, optim.warmup_steps, max_steps)
        if optim.min_lr_ratio > 0:
            base = scheduler.lr_lambdas[0]
            scheduler.lr_lambdas[0] = lambda s: (
                optim.min_lr_ratio + (1 - optim.min_lr_ratio) * base(s) if s >= optim.warmup_steps else base(s)
            )
    else:
        scheduler = get_constant_schedule_with_warmup(optimizer, optim.warmup_steps)
    return optimizer, scheduler


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def validation_loss(model, batches, n_batches: int, train: TrainConfig, precision: str, device) -> tuple[float, int]:
    """Mean next-token NLL (nats) over the first `n_batches` validation batches (0 = all).
    model: a causal LM, or a distributed.LossForward (called with the batch; FSDP needs this).
    train: reads emulate_bf16 and loss_chunk_size; precision: cfg.precision.
    With several processes `batches` are global batches (distributed.global_batches): each rank
    evaluates its rows and the sums are all-reduced, so every rank returns the same value."""
    total, count = 0.0, 0
    n = batches.batches_per_epoch if n_batches == 0 else min(n_batches, batches.batches_per_epoch)
    with eval_mode(model):
        for i in range(n):
            batch = to_device(distributed.shard_rows(batches.get(i)), device)
            with autocast(precision, device, train.emulate_bf16):
                nll = (
                    model(**batch)[1]
                    if isinstance(model, distributed.LossForward)
                    else token_nll(model, batch, train.loss_chunk_size)
                )
            total += nll.sum().item()
            count += int((batch["targets"] != IGNORE).sum())
    if distributed.world() > 1:
        total, count = distributed.all_reduce(torch.tensor([total, count], dtype=torch.float64)).tolist()
        count = int(count)
    return total / max(count, 1), count


# ---- the loop ----------------------------------------------------------------------------------


def method_hook(cfg: ExperimentConfig) -> PostStep:
    """train_step's `post_step` for the run's method: models.build.after_step bound to `cfg`."""

    def post_step(model: torch.nn.Module, step: int) -> None:
        after_step(model, cfg, step)

    return post_step


def defers_sync(optim: OptimConfig, precision: str) -> bool:
    """Whether the step keeps its loss on the device: fused AdamW can skip a non-finite step by
    itself (its found_inf input), so nothing needs to be read back until the next log step.
    fp16 keeps GradScaler's path."""
    return optim.fused and precision != "fp16"


def train_step(
    engine,
    model,
    optimizer,
    scheduler,
    scaler,
    micro: list[dict],
    optim: OptimConfig,
    train: TrainConfig,
    precision: str,
    device: torch.device,
    step: int,
    post_step: PostStep | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int, float]:
    """One optimizer step over the micro-batches of a global batch (the step every method shares).

    Token-weighted gradient accumulation (each micro-batch's NLL sum over the global target count),
    clipping, a (loss-scaled) AdamW step that is skipped when the loss is not finite, the method's
    post-step hook (`post_step(model, step)`, e.g. models.build.after_step for the run's method:
    AdaLoRA's rank budget; `step` is this step's number, from 1), the schedule.
    optim: reads grad_clip and fused; train: emulate_bf16; precision: cfg.precision.
    Returns (loss, grad norm, target tokens, the learning rate used); loss and grad norm are 0-dim
    tensors on the device. With defers_sync(optim, precision) the step reads nothing back from the
    device; otherwise one .item() decides whether AdamW steps.
    """
    world = distributed.world()
    n_targets = sum(int((b["targets"] != IGNORE).sum()) for b in micro)  # global batch's, on host
    loss_sum = torch.zeros((), device=device)
    for i, batch in enumerate(micro):
        batch = to_device(distributed.shard_rows(batch), device)
        with autocast(precision, device, train.emulate_bf16):
            # this rank's share of the global mean; a batch of prompt tokens only (completion-only
            # loss) has no target: its loss and gradients are 0
            loss, _ = engine(**batch, scale=1.0 / max(n_targets, 1))
        with distributed.grad_sync(engine, i == len(micro) - 1):
            scaler.scale(loss * world).backward()  # x world: DDP / FSDP average over ranks
        loss_sum += loss.detach()
    scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(
        [p for p in model.parameters() if p.requires_grad], optim.grad_clip if optim.grad_clip > 0 else float("inf")
    )
    loss_sum = distributed.all_reduce(loss_sum)
    if defers_sync(optim, precision):  # fused AdamW skips where found_inf is 1
        optimizer.found_inf = (~torch.isfinite(loss_sum)).float()
        optimizer.step()
        optimizer.found_inf = None
    elif math.isfinite(loss_sum.item()):  # the one host sync of this path
        scaler.step(optimizer)
    scaler.update()
    if post_step is not None:
        post_step(model, step)  # reads this step's gradients
    optimizer.zero_grad(set_to_none=True)
    lr = scheduler.get_last_lr()[0]
    scheduler.step()
    return loss_sum, grad_norm, n_targets, lr
