"""The training loop shared by every method, plus run-directory set-up and resume.

    run directory (the contract with every later stage)
        config.yaml      the fully resolved configuration
        metrics.jsonl    one flat record per logged step and per validation (runlog.py)
        checkpoints/     step-N folders (checkpoint.py)
        adapter/|model/  the final weights in Hugging Face format
        summary.json     final / best losses, timings, parameter counts, memory, hashes, versions
        tb/              TensorBoard event files

`train` reads as setup → loop → periodic read-back and logging → finish; the step itself is
step.train_step. Several processes (torchrun, `accelerate launch`, `ja-adapt train --nproc N`) run
this same loop; distributed.py holds the specifics (global batches, DDP / FSDP wrapping,
reductions) and only rank 0 writes the run directory (`if s.main:` below), except DCP checkpoint
shards. docs/scaling.md.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ja_adapt.config import ExperimentConfig, diff_keys, from_dict, read_yaml, save_config
from ja_adapt.core.errors import UserError, disk_full_is_user_error
from ja_adapt.data.pipeline import ExperimentData, prepare_data
from ja_adapt.models import vocab
from ja_adapt.models.build import base_model, build_model, count_trainable
from ja_adapt.models.load import resolve_device
from ja_adapt.train import checkpoint, distributed, rundir, telemetry
from ja_adapt.train.runlog import MetricsLog, write_summary
from ja_adapt.train.step import build_optimizer, defers_sync, method_hook, train_step, validation_loss

# Config keys that may change between a run and its resume (training longer is allowed).
RESUMABLE_CHANGES = {"train.max_steps", "train.progress", "data.num_workers"}


class TrainingStopped(UserError):
    """Training could not go on (non-finite losses); the last good checkpoint is intact."""


# ---- set-up ------------------------------------------------------------------------------------


def check_run_dir(cfg: ExperimentConfig, out: Path, resume: bool) -> Path | None:
    """Check `out` can be written or resumed; returns the checkpoint to resume from (if any).

    An existing non-empty directory is never overwritten: `--resume` continues it, anything else
    is refused. Nothing is written here (only rundir.locked's lock, which does not count), so bad
    input found later leaves no directory behind.
    """
    if out.exists() and any(not rundir.is_lock(p) for p in out.iterdir()):
        if not resume:
            raise UserError(
                f"{out}: already exists and is not empty; pass --resume to continue that run, or choose another --out"
            )
        saved = out / "config.yaml"
        if saved.is_file():
            changed = [k for k in diff_keys(from_dict(read_yaml(saved), str(saved)), cfg) if k not in RESUMABLE_CHANGES]
            if changed:
                raise UserError(
                    f"{out}: --resume with a different config (key '{changed[0]}' differs "
                    f"from {saved}); resume with the same settings or choose another --out"
                )
        return checkpoint.latest_verified(out / "checkpoints", main=distributed.launched_rank() == 0)
    return None


@dataclass
class Session:
    """Everything one training run holds while it trains (built by `start`)."""

    cfg: ExperimentConfig
    out: Path
    device: torch.device
    main: bool  # this process writes the run directory
    world: int
    tokenizer: object
    data: ExperimentData
    batches: object  # global training micro-batches (distributed.global_batches)
    val_batches: object | None
    model: torch.nn.Module  # the (peft-wrapped) model whose weights are saved
    engine: torch.nn.Module  # what steps: batch -> (loss, [B, T] NLL) (distributed.wrap_model)
    sharded: bool  # FSDP: weights and optimizer state are shards
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: torch.amp.GradScaler
    state: checkpoint.TrainState
    log: MetricsLog | None  # rank 0 only
    memory: telemetry.MemoryMeter
    trainable: int
    total: int
    flops_per_token: float  # training FLOPs per token (arch.flops_per_token): the run's FLOPs, MFU
    peak_flops: float | None
    mem_samples: list[int] = field(default_factory=list)


def start(cfg: ExperimentConfig, out: Path, resume_from: Path | None) -> Session:
    """Join the process group, prepare data, build model and optimizer, restore a checkpoint."""
    device = distributed.setup(resolve_device(cfg.device))  # joins a launcher's process group
    main, world = distributed.is_main(), distributed.world()
    tokenizer, base_tokenizer = vocab.run_tokenizers(cfg, out)  # base: set when vocab.extend adds tokens
    with distributed.main_first():  # rank 0 fills the token cache
        data = prepare_data(cfg, tokenizer)
    model = build_model(cfg, tokenizer, device, base_tokenizer)
    engine = distributed.wrap_model(model, cfg, device)
    if main:
        out.mkdir(parents=True, exist_ok=True)  # inputs are good: now write
        save_config(cfg, out / "config.yaml")
        if base_tokenizer is not None:
            vocab.save_extension(out, tokenizer, base_tokenizer, cfg)
    optimizer, scheduler = build_optimizer(model, cfg.optim, cfg.train.max_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    torch.manual_seed(cfg.seed + distributed.rank())  # dropout stream, independent of init
    state = checkpoint.TrainState(world_size=world)
    sharded = distributed.is_sharded(engine)
    if resume_from is not None:
        state = checkpoint.restore(resume_from, model, optimizer, scheduler, scaler, sharded, cfg.method)
    trainable, total = count_trainable(model)
    peak = telemetry.device_peak_flops(device)
    fpt = telemetry.flops_per_token(
        base_model(model).config, method=cfg.method, trainable_params=trainable, seq_len=cfg.data.seq_len
    )
    return Session(
        cfg,
        out,
        device,
        main,
        world,
        tokenizer,
        data,
        distributed.global_batches(data.train),
        distributed.global_batches(data.val) if data.val is not None else None,
        model,
        engine,
        sharded,
        optimizer,
        scheduler,
        scaler,
        state,
        MetricsLog(out, state.step, cfg.train.tensorboard) if main else None,
        telemetry.MemoryMeter(device),
        trainable,
        total,
        fpt,
        peak,
    )


# ---- the loop ----------------------------------------------------------------------------------


def train(cfg: ExperimentConfig, out: str | Path, *, resume: bool = False) -> dict:
    """Train `cfg` into the run directory `out`; returns the summary (also in summary.json).
    Rank 0 holds the directory's lock for the whole run (rundir.py); the other ranks of its launch
    run under it."""
    out = Path(out)
    with (
        rundir.locked(out) if distributed.launched_rank() == 0 else contextlib.nullcontext(),
        disk_full_is_user_error(str(out), "run the same command with --resume"),
    ):
        return _train(cfg, out, resume)


def _train(cfg: ExperimentConfig, out: Path, resume: bool) -> dict:
    resume_from = check_run_dir(cfg, out, resume)
    if resume and (out / "summary.json").is_file() and resume_from is not None:
        summary = json.loads((out / "summary.json").read_text())
        if summary.get("steps") == cfg.train.max_steps:
            return summary  # already finished: nothing to do
    s = start(cfg, out, resume_from)
    t = cfg.train
    s.engine.train()
    bar = _progress_bar(s)
    pending: list[tuple] = []  # steps not read back yet: (step, loss, grad norm, targets, lr)
    defer = defers_sync(cfg.optim, cfg.precision)  # read back at log / validation / checkpoint steps only
    post_step = method_hook(cfg)  # the method's hook after each step (AdaLoRA's rank budget)
    stop_reason = "max_steps"
    window_start = time.perf_counter()
    while s.state.step < t.max_steps:
        micro = [s.batches.get(s.state.batch_index + i) for i in range(t.grad_accum)]
        s.state.batch_index += t.grad_accum
        pending.append(
            (
                s.state.step + 1,
                *train_step(
                    s.engine,
                    s.model,
                    s.optimizer,
                    s.scheduler,
                    s.scaler,
                    micro,
                    cfg.optim,
                    t,
                    cfg.precision,
                    s.device,
                    step=s.state.step + 1,
                    post_step=post_step,
                ),
            )
        )
        s.state.step += 1
        s.mem_samples.append(s.memory.current_bytes())
        bar.update(1)
        last_step = s.state.step == t.max_steps
        validate = s.val_batches is not None and ((t.eval_every and s.state.step % t.eval_every == 0) or last_step)
        save = last_step or (t.save_every and s.state.step % t.save_every == 0)
        if not defer or s.state.step % t.log_every == 0 or validate or save:
            read_back(s, pending, window_start, bar)
            pending.clear()
        if validate and run_validation(s):
            stop_reason = "early_stopping"
        if stop_reason == "early_stopping" or save:
            save_checkpoint(s, bar)  # collective
        if stop_reason == "early_stopping":
            break
        if not pending:  # the next window starts here
            window_start = time.perf_counter()
    bar.close()
    return finish(s, stop_reason)


def _progress_bar(s: Session) -> tqdm:
    """The run's step counter: rank 0's, with train.progress, unless TQDM_DISABLE (tqdm's own
    switch, set by experiments' workers) is."""
    quiet = not (s.cfg.train.progress and s.main) or os.environ.get("TQDM_DISABLE")
    return tqdm(
        total=s.cfg.train.max_steps,
        initial=s.state.step,
        desc=f"train {s.cfg.method}",
        unit="step",
        disable=True if quiet else None,
        dynamic_ncols=True,
    )


def read_back(s: Session, pending: list[tuple], window_start: float, bar) -> None:
    """Read the window's steps back from the device: count them, log them, and stop the run
    (TrainingStopped) after `train.max_nonfinite` non-finite losses in a row."""
    cfg, state = s.cfg, s.state
    telemetry.sync(s.device)  # the window's steps are done
    dt = (time.perf_counter() - window_start) / len(pending)  # its mean step time
    for step, loss, grad_norm, n_targets, lr in pending:
        loss_value = loss.item()
        finite = math.isfinite(loss_value)
        state.nonfinite_in_row = 0 if finite else state.nonfinite_in_row + 1
        state.nonfinite_total += 0 if finite else 1
        state.elapsed_s += dt
        state.tokens_total += n_targets if finite else 0
        if step % cfg.train.log_every == 0 or step == cfg.train.max_steps:
            record = {
                "kind": "train",
                "step": step,
                "loss": loss_value,
                "lr": lr,
                "grad_norm": grad_norm.item(),
                "tokens": n_targets,
                "tokens_total": state.tokens_total,
                "tokens_per_s": n_targets / dt,
                "step_time_s": dt,
                "elapsed_s": state.elapsed_s,
                "peak_mem_bytes": s.memory.peak_bytes(),
                "mem_bytes": s.mem_samples[len(s.mem_samples) - 1 - (state.step - step)],
                "params_trainable": s.trainable,
                "params_total": s.total,
                "skipped": not finite,
            }
            if s.device.type == "cuda":  # the caching allocator's share too
                record["peak_mem_reserved_bytes"] = s.memory.stats()["peak_reserved_bytes"]
            if s.peak_flops:
                record["mfu"] = telemetry.mfu(n_targets / dt, s.flops_per_token, s.peak_flops * s.world)
            if s.world > 1:  # tokens are global; memory per rank
                record.update(
                    world_size=s.world,
                    peak_mem_bytes_max_rank=int(distributed.all_reduce(torch.tensor(s.memory.peak_bytes()), "max")),
                )
            if s.main:
                s.log.write(record)
            bar.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{n_targets / dt:.0f}")
        if state.nonfinite_in_row >= cfg.train.max_nonfinite:
            last = checkpoint.latest(s.out / "checkpoints")
            bar.close()
            raise TrainingStopped(
                f"{s.out}: training stopped at step {step}: {state.nonfinite_in_row} non-finite "
                f"losses in a row; last good checkpoint: {last or 'none'}; lower optim.lr or use "
                "precision=bf16/fp32"
            )


def save_checkpoint(s: Session, bar) -> None:
    """The current step's checkpoint, then pruning. Collective. Weights that are no longer finite
    stop the run (TrainingStopped) instead: they are never saved, as a checkpoint or as the final
    weights (which follow the last checkpoint), so the last good checkpoint stays the newest."""
    checkpoints = s.out / "checkpoints"
    if not distributed.trainable_weights_finite(s.model):
        bar.close()
        raise TrainingStopped(
            f"{s.out}: training stopped at step {s.state.step}: the weights are no longer finite "
            f"(not saved); last good checkpoint: {checkpoint.latest(checkpoints) or 'none'}; lower "
            "optim.lr or use precision=bf16/fp32"
        )
    checkpoint.save(
        checkpoint.step_folder(checkpoints, s.state.step),
        s.model,
        s.tokenizer,
        s.optimizer,
        s.scheduler,
        s.scaler,
        s.state,
        s.sharded,
        s.cfg.method,
    )
    if s.main:
        checkpoint.prune(checkpoints, s.cfg.train.keep_checkpoints)


def run_validation(s: Session) -> bool:
    """Validate, track the best loss; True when early stopping says stop."""
    val_loss, val_tokens = validation_loss(
        distributed.eval_module(s.engine),
        s.val_batches,
        s.cfg.train.eval_batches,
        s.cfg.train,
        s.cfg.precision,
        s.device,
    )
    state = s.state
    if s.main:
        s.log.write(
            {
                "kind": "val",
                "step": state.step,
                "val_loss": val_loss,
                "val_tokens": val_tokens,
                "elapsed_s": state.elapsed_s,
            }
        )
    if state.best_val_loss is None or val_loss < state.best_val_loss:
        state.best_val_loss, state.best_val_step, state.evals_since_best = val_loss, state.step, 0
    else:
        state.evals_since_best += 1
    patience = s.cfg.train.early_stopping_patience
    return bool(patience) and state.evals_since_best >= patience


def finish(s: Session, stop_reason: str) -> dict:
    """Save the final weights and write summary.json; every rank returns the summary."""
    if s.main:
        s.log.close()
    final = s.out / checkpoint.weights_dirname(s.model)
    checkpoint.save_final(s.model, s.tokenizer, final, s.sharded)  # collective
    peak_max = int(distributed.all_reduce(torch.tensor(s.memory.peak_bytes()), "max"))
    summary = write_summary(s, final, stop_reason, peak_max) if s.main else None
    distributed.barrier()  # summary.json is written
    return summary if s.main else json.loads((s.out / "summary.json").read_text())
