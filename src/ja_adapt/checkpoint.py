"""Checkpoints: one self-describing folder per step, written atomically, resumable bit for bit.

    checkpoints/step-00000100/
        adapter/ or model/      the trained weights in Hugging Face format (peft adapter or full
                                model, safetensors) plus the tokenizer: loadable as they are
        optimizer.pt            AdamW state (tensors only; read back with weights_only=True)
        rng.safetensors         torch CPU (and CUDA) generator states: dropout continues exactly
        trainer_state.json      step, data position, scheduler / scaler state, counters

A folder is written as `step-N.tmp` and renamed when complete, so a killed run never leaves a
half checkpoint behind: `latest()` only sees complete ones.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ja_adapt.methods import is_adapter


@dataclass
class TrainState:
    step: int = 0                   # optimizer steps done
    batch_index: int = 0            # next micro-batch to read (the data position)
    tokens_total: int = 0           # non-padding target tokens trained on
    elapsed_s: float = 0.0          # training wall time, excluding validation and checkpoints
    nonfinite_total: int = 0        # steps skipped for a non-finite loss
    nonfinite_in_row: int = 0       # consecutive skipped steps
    best_val_loss: float | None = None
    best_val_step: int | None = None
    evals_since_best: int = 0       # validations without improvement (early stopping)


def weights_dirname(model: torch.nn.Module) -> str:
    return "adapter" if is_adapter(model) else "model"


def save_weights(model: torch.nn.Module, tokenizer, out: Path) -> None:
    """Hugging Face format: a peft adapter directory or a full model directory, with the tokenizer."""
    model.save_pretrained(out, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)


def save(folder: Path, model, tokenizer, optimizer, scheduler, scaler, state: TrainState) -> Path:
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_weights(model, tokenizer, tmp / weights_dirname(model))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng.update({f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    save_file(rng, str(tmp / "rng.safetensors"))
    meta = {"state": asdict(state), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else None}
    (tmp / "trainer_state.json").write_text(json.dumps(meta, indent=1))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def step_folder(checkpoints: Path, step: int) -> Path:
    return checkpoints / f"step-{step:08d}"


def complete(checkpoints: Path) -> list[Path]:
    """Complete checkpoint folders, oldest first."""
    if not checkpoints.is_dir():
        return []
    return sorted(p for p in checkpoints.iterdir()
                  if p.is_dir() and p.name.startswith("step-") and not p.name.endswith(".tmp")
                  and (p / "trainer_state.json").is_file())


def latest(checkpoints: Path) -> Path | None:
    found = complete(checkpoints)
    return found[-1] if found else None


def prune(checkpoints: Path, keep: int) -> None:
    if keep > 0:
        for old in complete(checkpoints)[:-keep]:
            shutil.rmtree(old)


def _load_weights(model: torch.nn.Module, folder: Path) -> None:
    """Put the trainable weights saved in `folder` back into `model` (same architecture)."""
    if is_adapter(model):
        from peft import set_peft_model_state_dict
        set_peft_model_state_dict(model, load_file(str(folder / "adapter_model.safetensors")))
        return
    state = {}
    for f in sorted(folder.glob("*.safetensors")):
        state.update(load_file(str(f)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {k for k in missing if "lm_head" in k and model.config.tie_word_embeddings}
    if unexpected or set(missing) - tied:
        raise RuntimeError(f"{folder}: checkpoint does not match the model "
                           f"(missing {sorted(set(missing) - tied)[:3]}, unexpected {unexpected[:3]})")


def restore(folder: Path, model, optimizer, scheduler, scaler) -> TrainState:
    """Load a checkpoint written by `save` into freshly built objects; returns the train state."""
    _load_weights(model, folder / weights_dirname(model))
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    meta = json.loads((folder / "trainer_state.json").read_text())
    scheduler.load_state_dict(meta["scheduler"])
    if meta["scaler"] is not None:
        scaler.load_state_dict(meta["scaler"])
    rng = load_file(str(folder / "rng.safetensors"))
    torch.set_rng_state(rng["cpu"])
    if torch.cuda.is_available():
        torch.cuda.set_rng_state_all([rng[k] for k in sorted(rng) if k.startswith("cuda")])
    return TrainState(**meta["state"])
