"""The training loop shared by LoRA and full fine-tuning, plus run-directory set-up and resume.

    run directory (the contract with every later stage)
        config.yaml      the fully resolved configuration
        metrics.jsonl    one flat record per logged step ({"kind": "train", ...}) and per
                         validation ({"kind": "val", ...})
        checkpoints/     step-N folders (checkpoint.py)
        adapter/|model/  the final weights in Hugging Face format
        summary.json     final / best losses, timings, parameter counts, memory, hashes, versions
        tb/              TensorBoard event files

Several processes (torchrun, `accelerate launch`, `ja-adapt train --nproc N`) run this same loop;
distributed.py holds the specifics (global batches, DDP / FSDP wrapping, reductions) and only rank 0
writes the run directory (`if main:` below), except DCP checkpoint shards. docs/scaling.md.
"""

from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import (
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
)

from ja_adapt import checkpoint, distributed, precision, telemetry
from ja_adapt.config import (
    ExperimentConfig,
    config_hash,
    diff_keys,
    from_dict,
    save_config,
)
from ja_adapt.data.pipeline import prepare_data
from ja_adapt.errors import UserError
from ja_adapt.loss import IGNORE, token_nll
from ja_adapt.methods import apply_method, base_model, count_parameters
from ja_adapt.models import load_model, load_tokenizer, resolve_device

# Config keys that may change between a run and its resume (training longer is allowed).
RESUMABLE_CHANGES = {"train.max_steps", "train.progress", "data.num_workers"}


class TrainingStopped(UserError):
    """Training could not go on (non-finite losses); the last good checkpoint is intact."""


# ---- set-up ------------------------------------------------------------------------------------

def check_run_dir(cfg: ExperimentConfig, out: Path, resume: bool) -> Path | None:
    """Check `out` can be written or resumed; returns the checkpoint to resume from (if any).

    An existing non-empty directory is never overwritten: `--resume` continues it, anything else
    is refused. Nothing is created here, so bad input found later leaves no directory behind.
    """
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory; choose another --out")
    if out.exists() and any(out.iterdir()):
        if not resume:
            raise UserError(f"{out}: already exists and is not empty; pass --resume to continue that "
                            "run, or choose another --out")
        saved = out / "config.yaml"
        if saved.is_file():
            from ja_adapt.config import read_yaml
            changed = [k for k in diff_keys(from_dict(read_yaml(saved), str(saved)), cfg)
                       if k not in RESUMABLE_CHANGES]
            if changed:
                raise UserError(f"{out}: --resume with a different config (key '{changed[0]}' differs "
                                f"from {saved}); resume with the same settings or choose another --out")
        return checkpoint.latest(out / "checkpoints")
    return None


def build_model(cfg: ExperimentConfig, tokenizer, device: torch.device) -> torch.nn.Module:
    """Base model (preset or pretrained) wrapped by the configured method, on `device`."""
    torch.manual_seed(cfg.seed)
    model = load_model(cfg.model.name_or_path, trust_remote_code=cfg.model.trust_remote_code,
                       vocab_size=len(tokenizer), seed=cfg.seed)
    model.config.use_cache = False
    if cfg.model.attn_implementation and hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(cfg.model.attn_implementation)
    if cfg.train.activation_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = apply_method(model, cfg).to(device)
    if cfg.train.compile:
        # The loss calls the decoder body, not the model's forward (loss.py), so compile the body,
        # in place: parameter names and saved weights stay as they are.
        base_model(model).model.compile()
    return model


def build_optimizer(model: torch.nn.Module, cfg: ExperimentConfig, device: torch.device):
    params = [p for p in model.parameters() if p.requires_grad]
    o = cfg.optim
    optimizer = torch.optim.AdamW(params, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps,
                                  weight_decay=o.weight_decay, fused=o.fused or None,
                                  foreach=None if o.fused else True)
    if o.schedule == "cosine":
        # transformers' cosine decays to 0; min_lr_ratio lifts the floor through LambdaLR's factor.
        scheduler = get_cosine_schedule_with_warmup(optimizer, o.warmup_steps, cfg.train.max_steps)
        if o.min_lr_ratio > 0:
            base = scheduler.lr_lambdas[0]
            scheduler.lr_lambdas[0] = lambda s: o.min_lr_ratio + (1 - o.min_lr_ratio) * base(s) \
                if s >= o.warmup_steps else base(s)
    else:
        scheduler = get_constant_schedule_with_warmup(optimizer, o.warmup_steps)
    return optimizer, scheduler


def autocast(cfg: ExperimentConfig, device: torch.device):
    return precision.autocast(cfg.precision, device, cfg.train.emulate_bf16)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def validation_loss(model, batches, n_batches: int, cfg: ExperimentConfig, device) -> tuple[float, int]:
    """Mean next-token NLL (nats) over the first `n_batches` validation batches (0 = all).
    model: a causal LM, or a distributed.LossForward (called with the batch; FSDP needs this).
    With several processes `batches` are global batches (distributed.global_batches): each rank
    evaluates its rows and the sums are all-reduced, so every rank returns the same value."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    n = batches.batches_per_epoch if n_batches == 0 else min(n_batches, batches.batches_per_epoch)
    for i in range(n):
        batch = to_device(distributed.shard_rows(batches.get(i)), device)
        with autocast(cfg, device):
            nll = (model(**batch)[1] if isinstance(model, distributed.LossForward)
                   else token_nll(model, batch, cfg.train.loss_chunk_size))
        total += nll.sum().item()
        count += int((batch["targets"] != IGNORE).sum())
    model.train(was_training)
    if distributed.world() > 1:
        total, count = distributed.all_reduce(torch.tensor([total, count], dtype=torch.float64)).tolist()
        count = int(count)
    return total / max(count, 1), count


# ---- the loop ----------------------------------------------------------------------------------

def defers_sync(cfg: ExperimentConfig) -> bool:
    """Whether the step keeps its loss on the device: fused AdamW can skip a non-finite step by
    itself (its found_inf input), so nothing needs to be read back until the next log step.
    fp16 keeps GradScaler's path."""
    return cfg.optim.fused and cfg.precision != "fp16"


def train_step(engine, model, optimizer, scheduler, scaler, micro: list[dict], cfg: ExperimentConfig,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int, float]:
    """One optimizer step over the micro-batches of a global batch (the step LoRA and full share).

    Token-weighted gradient accumulation (each micro-batch's NLL sum over the global target count),
    clipping, a (loss-scaled) AdamW step that is skipped when the loss is not finite, the schedule.
    Returns (loss, grad norm, target tokens, the learning rate used); loss and grad norm are 0-dim
    tensors on the device. With defers_sync(cfg) the step reads nothing back from the device;
    otherwise one .item() decides whether AdamW steps.
    """
    world = distributed.world()
    n_targets = sum(int((b["targets"] != IGNORE).sum()) for b in micro)   # global batch's, on host
    loss_sum = torch.zeros((), device=device)
    for i, batch in enumerate(micro):
        batch = to_device(distributed.shard_rows(batch), device)
        with autocast(cfg, device):
            loss, _ = engine(**batch, scale=1.0 / n_targets)   # this rank's share of the global mean
        with distributed.grad_sync(engine, i == len(micro) - 1):
            scaler.scale(loss * world).backward()           # x world: DDP / FSDP average over ranks
        loss_sum += loss.detach()
    scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(
        [p for p in model.parameters() if p.requires_grad],
        cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf"))
    loss_sum = distributed.all_reduce(loss_sum)
    if defers_sync(cfg):                                    # fused AdamW skips where found_inf is 1
        optimizer.found_inf = (~torch.isfinite(loss_sum)).float()
        optimizer.step()
        optimizer.found_inf = None
    elif math.isfinite(loss_sum.item()):                    # the one host sync of this path
        scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    lr = scheduler.get_last_lr()[0]
    scheduler.step()
    return loss_sum, grad_norm, n_targets, lr


def train(cfg: ExperimentConfig, out: str | Path, *, resume: bool = False) -> dict:
    """Train `cfg` into the run directory `out`; returns the summary (also in summary.json)."""
    out = Path(out)
    resume_from = check_run_dir(cfg, out, resume)
    if resume and (out / "summary.json").is_file() and resume_from is not None:
        summary = json.loads((out / "summary.json").read_text())
        if summary.get("steps") == cfg.train.max_steps:
            return summary                                  # already finished: nothing to do
    device = distributed.setup(resolve_device(cfg.device))  # joins a launcher's process group
    main, world = distributed.is_main(), distributed.world()
    tokenizer = load_tokenizer(cfg.model.tokenizer or cfg.model.name_or_path, cfg.model.trust_remote_code)
    with distributed.main_first():                          # rank 0 fills the token cache
        data = prepare_data(cfg, tokenizer)
    batches = distributed.global_batches(data.train)        # B*world rows; rank r trains on its B
    val_batches = distributed.global_batches(data.val) if data.val is not None else None
    model = build_model(cfg, tokenizer, device)
    engine = distributed.wrap_model(model, cfg, device)   # batch -> (loss, [B, T] NLL)
    sharded = distributed.is_sharded(engine)
    if main:
        out.mkdir(parents=True, exist_ok=True)              # inputs are good: now write
        save_config(cfg, out / "config.yaml")
    optimizer, scheduler = build_optimizer(model, cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    torch.manual_seed(cfg.seed + distributed.rank())        # dropout stream, independent of init
    state = checkpoint.TrainState(world_size=world)
    if resume_from is not None:
        state = checkpoint.restore(resume_from, model, optimizer, scheduler, scaler, sharded)
    log = MetricsLog(out, state.step, cfg.train.tensorboard) if main else None
    memory = telemetry.MemoryMeter(device)
    trainable, total = count_parameters(model)
    # MFU per step (GPU): FLOPs per trained token (telemetry's formula) over the peak of all devices
    peak = telemetry.device_peak_flops(device)
    flops_per_token = telemetry.flops_per_token(base_model(model).config, method=cfg.method, trainable_params=trainable,
                                                seq_len=cfg.data.seq_len) if peak else None
    engine.train()

    bar = tqdm(total=cfg.train.max_steps, initial=state.step, desc=f"train {cfg.method}",
               unit="step", disable=None if cfg.train.progress and main else True, dynamic_ncols=True)
    mem_samples: list[int] = []
    pending: list[tuple] = []       # steps not read back yet: (step, loss, grad norm, targets, lr)
    defer = defers_sync(cfg)        # read back at log / validation / checkpoint steps only
    stop_reason = "max_steps"
    window_start = time.perf_counter()
    while state.step < cfg.train.max_steps:
        micro = [batches.get(state.batch_index + i) for i in range(cfg.train.grad_accum)]
        state.batch_index += cfg.train.grad_accum
        pending.append((state.step + 1, *train_step(engine, model, optimizer, scheduler, scaler,
                                                    micro, cfg, device)))
        state.step += 1
        mem_samples.append(memory.current_bytes())
        bar.update(1)
        last_step = state.step == cfg.train.max_steps
        validate = data.val is not None and ((cfg.train.eval_every and state.step % cfg.train.eval_every == 0)
                                             or last_step)
        save = last_step or (cfg.train.save_every and state.step % cfg.train.save_every == 0)
        if not defer or state.step % cfg.train.log_every == 0 or validate or save:
            telemetry.sync(device)                          # the window's steps are done
            dt = (time.perf_counter() - window_start) / len(pending)   # its mean step time
            for step, loss, grad_norm, n_targets, lr in pending:
                loss_value = loss.item()
                finite = math.isfinite(loss_value)
                state.nonfinite_in_row = 0 if finite else state.nonfinite_in_row + 1
                state.nonfinite_total += 0 if finite else 1
                state.elapsed_s += dt
                state.tokens_total += n_targets if finite else 0
                if step % cfg.train.log_every == 0 or step == cfg.train.max_steps:
                    record = {"kind": "train", "step": step, "loss": loss_value, "lr": lr,
                              "grad_norm": grad_norm.item(), "tokens": n_targets,
                              "tokens_total": state.tokens_total, "tokens_per_s": n_targets / dt,
                              "step_time_s": dt, "elapsed_s": state.elapsed_s,
                              "peak_mem_bytes": memory.peak_bytes(),
                              "mem_bytes": mem_samples[len(mem_samples) - 1 - (state.step - step)],
                              "params_trainable": trainable, "params_total": total, "skipped": not finite}
                    if device.type == "cuda":               # the caching allocator's share too
                        record["peak_mem_reserved_bytes"] = memory.stats()["peak_reserved_bytes"]
                    if peak:
                        record["mfu"] = telemetry.mfu(n_targets / dt, flops_per_token, peak * world)
                    if world > 1:                           # tokens are global; memory per rank
                        record.update(world_size=world, peak_mem_bytes_max_rank=int(distributed.all_reduce(
                            torch.tensor(memory.peak_bytes()), "max")))
                    if main:
                        log.write(record)
                    bar.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{n_targets / dt:.0f}")
                if state.nonfinite_in_row >= cfg.train.max_nonfinite:
                    last = checkpoint.latest(out / "checkpoints")
                    bar.close()
                    raise TrainingStopped(
                        f"{out}: training stopped at step {step}: {state.nonfinite_in_row} non-finite "
                        f"losses in a row; last good checkpoint: {last or 'none'}; lower optim.lr or use "
                        "precision=bf16/fp32")
            pending.clear()
        if validate and run_validation(distributed.eval_module(engine), val_batches, cfg, device, state, log):
            stop_reason = "early_stopping"
        if stop_reason == "early_stopping" or save:
            checkpoint.save(checkpoint.step_folder(out / "checkpoints", state.step), model, tokenizer,
                            optimizer, scheduler, scaler, state, sharded)   # collective
            if main:
                checkpoint.prune(out / "checkpoints", cfg.train.keep_checkpoints)
        if stop_reason == "early_stopping":
            break
        if not pending:                                     # the next window starts here
            window_start = time.perf_counter()
    bar.close()
    if main:
        log.close()
    final = out / checkpoint.weights_dirname(model)
    checkpoint.save_final(model, tokenizer, final, sharded)   # collective
    peak_max = int(distributed.all_reduce(torch.tensor(memory.peak_bytes()), "max"))
    summary = finish(cfg, out, final, model, tokenizer, optimizer, batches, data, state, memory,
                     mem_samples, trainable, total, stop_reason, world, peak_max) if main else None
    distributed.barrier()                                   # summary.json is written
    return summary if main else json.loads((out / "summary.json").read_text())


def run_validation(model, val_batches, cfg, device, state, log) -> bool:
    """Validate, track the best loss; True when early stopping says stop."""
    val_loss, val_tokens = validation_loss(model, val_batches, cfg.train.eval_batches, cfg, device)
    if distributed.is_main():
        log.write({"kind": "val", "step": state.step, "val_loss": val_loss, "val_tokens": val_tokens,
                   "elapsed_s": state.elapsed_s})
    if state.best_val_loss is None or val_loss < state.best_val_loss:
        state.best_val_loss, state.best_val_step, state.evals_since_best = val_loss, state.step, 0
    else:
        state.evals_since_best += 1
    patience = cfg.train.early_stopping_patience
    return bool(patience) and state.evals_since_best >= patience


class MetricsLog:
    """metrics.jsonl (always) and TensorBoard (optional). On resume, records after the resumed
    step are dropped so the log reads as one uninterrupted run."""

    def __init__(self, out: Path, resumed_step: int, tensorboard: bool):
        self.path = out / "metrics.jsonl"
        if self.path.exists():
            keep = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= resumed_step]
            self.path.write_text("".join(line + "\n" for line in keep))
        self.file = self.path.open("a", encoding="utf-8")
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(out / "tb"), purge_step=resumed_step + 1)

    def write(self, record: dict) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.tb is not None:
            for key, value in record.items():
                if key not in ("kind", "step") and isinstance(value, (int, float)):
                    self.tb.add_scalar(f"{record['kind']}/{key}", value, record["step"])

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


def _local(t: torch.Tensor) -> torch.Tensor:
    """This rank's part of a tensor: the local shard of an FSDP DTensor, else the tensor."""
    return t.to_local() if hasattr(t, "to_local") else t


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def finish(cfg, out: Path, final: Path, model, tokenizer, optimizer, batches, data, state, memory,
           mem_samples, trainable: int, total: int, stop_reason: str, world: int = 1,
           peak_max: int | None = None) -> dict:
    """Write summary.json (rank 0) next to the final weights in `final`. With several processes
    tokens are global, memory is rank 0's with the largest rank's peak beside it, and state
    sizes are per rank (FSDP shards)."""
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line]
    train_losses = [r["loss"] for r in records if r["kind"] == "train" and not r["skipped"]]
    vals = [r for r in records if r["kind"] == "val"]
    window = max(1, min(50, len(train_losses) // 10))
    import numpy as np
    opt_bytes = sum(_local(t).numel() * t.element_size() for s in optimizer.state.values()
                    for t in s.values() if torch.is_tensor(t))
    model_bytes = sum(_local(p).numel() * p.element_size() for p in model.parameters()) + \
        sum(b.numel() * b.element_size() for b in model.buffers())
    summary = {
        "method": cfg.method, "precision": cfg.precision, "seed": cfg.seed,
        "model": cfg.model.name_or_path, "stop_reason": stop_reason,
        "vocab_size": len(tokenizer),
        "steps": state.step, "tokens_total": state.tokens_total,
        "final_train_loss": train_losses[-1] if train_losses else None,
        "final_train_loss_window_mean": float(np.mean(train_losses[-window:])) if train_losses else None,
        "final_train_loss_window": window,
        "final_val_loss": vals[-1]["val_loss"] if vals else None,
        "best_val_loss": state.best_val_loss, "best_val_step": state.best_val_step,
        "train_time_s": state.elapsed_s, "time_per_step_s": state.elapsed_s / max(state.step, 1),
        "tokens_per_s": state.tokens_total / state.elapsed_s if state.elapsed_s else None,
        "mfu_median": float(np.median(mfus)) if (mfus := [r["mfu"] for r in records if "mfu" in r]) else None,
        "peak_mem_bytes": memory.peak_bytes(),
        "mean_mem_bytes": float(np.mean(mem_samples)) if mem_samples else None,
        "memory_kind": memory.stats()["reported"], "memory_stats": memory.stats(),
        "params_total": total, "params_trainable": trainable,
        "trainable_fraction": trainable / total,
        "optimizer_state_bytes": opt_bytes, "model_state_bytes": model_bytes,
        "artifact_dir": final.name, "artifact_bytes": _dir_bytes(final),
        "nonfinite_skipped": state.nonfinite_total,
        "padding_fraction": batches.padding_fraction,
        "seq_len": cfg.data.seq_len, "batch_size": cfg.train.batch_size,
        "grad_accum": cfg.train.grad_accum,
        "world_size": world, "strategy": distributed.resolve_strategy(cfg),
        "peak_mem_bytes_max_rank": peak_max if peak_max is not None else memory.peak_bytes(),
        "config_hash": config_hash(cfg), "data_hash": data.fingerprint,
        "trained_domains": data.trained_domains,
        "n_docs": {k: len(v) for k, v in data.splits.items()},
        "device": telemetry.device_info(resolve_device(cfg.device)),
        "versions": versions(),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def versions() -> dict:
    import peft
    import transformers
    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__}
