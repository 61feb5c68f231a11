"""What a run directory records besides its weights: metrics.jsonl (+ TensorBoard) and summary.json.

metrics.jsonl    one flat record per logged step ({"kind": "train", ...}) and per validation
                 ({"kind": "val", ...}); MetricsLog writes it
summary.json     final / best losses, timings, parameter counts, memory, hashes, versions;
                 write_summary writes it from the metrics and the finished train.Session
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from ja_adapt.config import config_hash
from ja_adapt.core import provenance
from ja_adapt.core.errors import UserError, notice
from ja_adapt.core.jsonio import write_json
from ja_adapt.train import distributed, telemetry


def read_records(path: Path) -> list[dict]:
    """The records of a metrics.jsonl. A torn last line (a write cut short: a kill, a full disk) is
    dropped with a notice; any other unreadable line is a UserError naming it."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                raise UserError(
                    f"{path}:{number}: not a JSON record; the metrics log is damaged, "
                    "remove the line or train into another --out"
                ) from None
            notice(f"{path}:{number}: dropped a torn last line ({len(line)} characters) left by an interrupted write")
    return records


def write_records(path: Path, records: list[dict]) -> None:
    """Replace metrics.jsonl with `records`, through a temporary file: the old log stays whole until
    the new one is."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    os.replace(tmp, path)


class MetricsLog:
    """metrics.jsonl (always) and TensorBoard (optional). On resume, records after the resumed
    step (and a torn last line) are dropped so the log reads as one uninterrupted run."""

    def __init__(self, out: Path, resumed_step: int, tensorboard: bool):
        self.path = out / "metrics.jsonl"
        if self.path.exists():
            keep = [r for r in read_records(self.path) if r["step"] <= resumed_step]
            write_records(self.path, keep)
        self.file = self.path.open("a", encoding="utf-8")
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # optional (train.tensorboard), slow to import

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


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _loss_fields(records: list[dict], state) -> dict:
    """summary.json's losses: the last logged train loss and the mean of the last `window` of them
    (a tenth of the run, 1 to 50), the last and the best validation loss."""
    train_losses = [r["loss"] for r in records if r["kind"] == "train" and not r["skipped"]]
    vals = [r for r in records if r["kind"] == "val"]
    window = max(1, min(50, len(train_losses) // 10))
    return {
        "final_train_loss": train_losses[-1] if train_losses else None,
        "final_train_loss_window_mean": float(np.mean(train_losses[-window:])) if train_losses else None,
        "final_train_loss_window": window,
        "final_val_loss": vals[-1]["val_loss"] if vals else None,
        "best_val_loss": state.best_val_loss,
        "best_val_step": state.best_val_step,
    }


def _speed_fields(s, records: list[dict]) -> dict:
    """summary.json's time, throughput and compute; s: the train.Session."""
    state = s.state
    return {
        "train_time_s": state.elapsed_s,
        "time_per_step_s": state.elapsed_s / max(state.step, 1),
        "tokens_per_s": state.tokens_total / state.elapsed_s if state.elapsed_s else None,
        # the same throughput in characters (tokens/s x the train split's characters per token):
        # what compares runs whose tokenizers differ (vocab.extend)
        "train_chars_per_token": s.data.chars_per_token,
        # the compute the run spent: tokens x the one FLOPs formula (arch.flops_per_token; a frozen
        # base skips its weight gradients), so runs compare at equal steps, tokens or FLOPs
        "flops_per_token": s.flops_per_token,
        "train_flops": s.flops_per_token * state.tokens_total,
        "chars_per_s": (
            state.tokens_total * s.data.chars_per_token / state.elapsed_s
            if state.elapsed_s and s.data.chars_per_token
            else None
        ),
        "mfu_median": float(np.median(mfus)) if (mfus := [r["mfu"] for r in records if "mfu" in r]) else None,
    }


def _size_fields(s, final: Path) -> dict:
    """summary.json's memory, parameter counts and state sizes (this rank's part of FSDP shards),
    and the final weights' size on disk; s: the train.Session."""
    memory, model = s.memory, s.model
    opt_bytes = sum(
        distributed.local_part(t).numel() * t.element_size()
        for st in s.optimizer.state.values()
        for t in st.values()
        if torch.is_tensor(t)
    )
    model_bytes = sum(distributed.local_part(p).numel() * p.element_size() for p in model.parameters()) + sum(
        b.numel() * b.element_size() for b in model.buffers()
    )
    return {
        "peak_mem_bytes": memory.peak_bytes(),
        "mean_mem_bytes": float(np.mean(s.mem_samples)) if s.mem_samples else None,
        "memory_kind": memory.stats()["reported"],
        "memory_stats": memory.stats(),
        "params_total": s.total,
        "params_trainable": s.trainable,
        "trainable_fraction": s.trainable / s.total,
        "optimizer_state_bytes": opt_bytes,
        "model_state_bytes": model_bytes,
        "artifact_dir": final.name,
        "artifact_bytes": _dir_bytes(final),
    }


def write_summary(s, final: Path, stop_reason: str, peak_max: int) -> dict:
    """Write summary.json (rank 0) next to the final weights in `final`; s: the train.Session.
    With several processes tokens are global, memory is rank 0's with the largest rank's peak
    beside it, and state sizes are per rank (FSDP shards). Its keys keep one order: the run, then
    its losses, speed and sizes (the helpers above), then its shape, data and provenance."""
    cfg, out, state = s.cfg, s.out, s.state
    records = read_records(out / "metrics.jsonl")
    summary = {
        "method": cfg.method,
        "precision": cfg.precision,
        "seed": cfg.seed,
        "model": cfg.model.name_or_path,
        "stop_reason": stop_reason,
        "vocab_size": len(s.tokenizer),
        "vocab_extended_by": cfg.vocab.extend,
        "steps": state.step,
        "tokens_total": state.tokens_total,
        **_loss_fields(records, state),
        **_speed_fields(s, records),
        **_size_fields(s, final),
        "nonfinite_skipped": state.nonfinite_total,
        "padding_fraction": s.batches.padding_fraction,
        "seq_len": cfg.data.seq_len,
        "batch_size": cfg.train.batch_size,
        "grad_accum": cfg.train.grad_accum,
        "world_size": s.world,
        "strategy": distributed.resolve_strategy(cfg),
        "peak_mem_bytes_max_rank": peak_max,
        "config_hash": config_hash(cfg),
        "data_hash": s.data.fingerprint,
        "trained_domains": s.data.trained_domains,
        "n_docs": {k: len(v) for k, v in s.data.splits.items()},
        "device": telemetry.device_info(s.device),
        "versions": provenance.package_versions(),
        "lock": provenance.lock_record(),
    }
    write_json(out / "summary.json", summary, ensure_ascii=True, strict=False)  # the bytes json.dumps gave
    return summary
