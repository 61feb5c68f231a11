"""Checkpoints: one self-describing folder per step, written atomically, resumable bit for bit.

    checkpoints/step-00000100/
        adapter/ or model/      the trained weights in Hugging Face format (peft adapter or full
                                model, safetensors) plus the tokenizer: loadable as they are
        optimizer.pt            AdamW state (tensors only; read back with weights_only=True)
        rng.safetensors         torch CPU (and CUDA) generator states: dropout continues exactly
                                (several processes: every rank's, keys `cpu`, `cpu.rank1`, ...)
        method_state.safetensors  what the method keeps besides weights and AdamW's state (its
                                models.build.STATE hooks: AdaLoRA's rank allocator); only for such methods
        trainer_state.json      step, data position, scheduler / scaler state, counters, and the
                                method state's scalars (`method_state`)
        manifest.json           every other file's name, size and sha256, written last

    FSDP (sharded) runs replace adapter/|model/ and optimizer.pt by
        shards/                 torch.distributed.checkpoint (DCP) files: weights and optimizer
                                state, one file per rank, written by every rank; resumable on the
                                same number of processes, `consolidate()` turns them into HF weights

A folder is written as `step-N.tmp`, its manifest last, and renamed when complete, so a killed
run never leaves a half checkpoint behind: `latest()` only sees complete ones. A checkpoint is
trusted only after its files match its manifest (`verify`): `--resume` reports one that does not
(a truncated, changed or deleted file), sets it aside as `step-N.bad` (renamed, never deleted) and
uses the previous one (`latest_verified`). With several processes `save`, `restore` and
`save_final` are collective (every rank calls them); rank 0 writes all but the DCP shards.

Nothing in a checkpoint can run code: weights and RNG states are safetensors, optimizer.pt is read
with `weights_only=True`, and DCP's index `shards/.metadata`, a pickle that torch would read with
`pickle.load`, is read by shards.py's `SafeShardReader`, whose unpickler admits only DCP's metadata
classes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from peft import set_peft_model_state_dict
from safetensors.torch import load_file, save_file
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_state_dict,
)

from ja_adapt.config import from_dict, read_yaml
from ja_adapt.core.errors import UserError, first_line, notice
from ja_adapt.core.hashing import sha256_file
from ja_adapt.core.jsonio import write_json
from ja_adapt.models.build import STATE, build_model, is_adapter
from ja_adapt.models.vocab import run_tokenizers
from ja_adapt.train import distributed
from ja_adapt.train.shards import load_shards

SHARDS = "shards"  # the DCP folder of a sharded (FSDP) checkpoint
MANIFEST = "manifest.json"
METHOD_STATE = "method_state.safetensors"
_STEP_FOLDER = re.compile(r"^step-\d+$")


@dataclass
class TrainState:
    step: int = 0  # optimizer steps done
    batch_index: int = 0  # next micro-batch to read (the data position)
    tokens_total: int = 0  # non-padding target tokens trained on
    elapsed_s: float = 0.0  # training wall time, excluding validation and checkpoints
    nonfinite_total: int = 0  # steps skipped for a non-finite loss
    nonfinite_in_row: int = 0  # consecutive skipped steps
    best_val_loss: float | None = None
    best_val_step: int | None = None
    evals_since_best: int = 0  # validations without improvement (early stopping)
    world_size: int = 1  # processes that wrote it (batch_index counts global batches)


def weights_dirname(model: torch.nn.Module) -> str:
    """Where a model's weights go in a run or checkpoint folder: adapter/ (peft) or model/."""
    return "adapter" if is_adapter(model) else "model"


def weights_in(folder: Path) -> Path:
    """The weights a run or checkpoint folder holds: its adapter/ or model/ directory."""
    for name in ("adapter", "model"):
        if (Path(folder) / name).is_dir():
            return Path(folder) / name
    raise UserError(
        f"{folder}: no adapter/ or model/ directory; the run has not finished "
        "(resume it with `ja-adapt train ... --resume`)"
    )


def save_weights(model: torch.nn.Module, tokenizer, out: Path, state_dict: dict | None = None) -> None:
    """Hugging Face format: a peft adapter directory or a full model directory, with the tokenizer.
    state_dict: the full weights when `model`'s own parameters are FSDP shards."""
    # An adapter never carries the base's embedding matrices: rows added by vocab.extend are its
    # trainable token rows (peft would otherwise save both whole matrices once the vocabulary grew)
    extra = {"save_embedding_layers": False} if is_adapter(model) else {}
    model.save_pretrained(out, safe_serialization=True, state_dict=state_dict, **extra)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)


def save_final(model, tokenizer, final: Path, sharded: bool) -> None:
    """The run's final HF weights in `final`, replaced atomically. Collective: FSDP shards are
    gathered into one full state dict on rank 0, which writes it."""
    state_dict = distributed.full_state_dict(model) if sharded else None
    if distributed.is_main():
        tmp = final.with_name(final.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        save_weights(model, tokenizer, tmp, state_dict)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    distributed.barrier()


def _rng_states() -> dict[str, torch.Tensor]:
    """Every rank's generator states: keys cpu, cuda0, ... (rank 0, as in a single process) and
    the same with `.rankR` for rank R > 0. Collective."""
    local = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        local.update({f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    out = {}
    for key in sorted(local):
        for r, s in enumerate(distributed.all_gather(local[key])):
            out[key if r == 0 else f"{key}.rank{r}"] = s
    return out


def _shard_state(model, optimizer) -> dict:
    model_sd, optim_sd = get_state_dict(model, optimizer)
    return {"model": model_sd, "optim": optim_sd}


def save(
    folder: Path,
    model,
    tokenizer,
    optimizer,
    scheduler,
    scaler,
    state: TrainState,
    sharded: bool = False,
    method: str = "",
) -> Path:
    """Write checkpoint `folder` (layout above); `method` (the config's) names the method whose
    state hooks (models.build.STATE) add to it. Collective with several processes."""
    tmp = folder.with_name(folder.name + ".tmp")
    if distributed.is_main():
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    rng = _rng_states()
    distributed.barrier()  # tmp exists before any rank writes in it
    if sharded:  # every rank writes its DCP shard
        dcp.save(_shard_state(model, optimizer), checkpoint_id=str(tmp / SHARDS))
    if distributed.is_main():
        if not sharded:
            save_weights(model, tokenizer, tmp / weights_dirname(model))
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        save_file(rng, str(tmp / "rng.safetensors"))
        meta = {
            "state": asdict(state),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else None,
        }
        if method in STATE:
            tensors, meta["method_state"] = STATE[method].state_dict(model)
            save_file(tensors, str(tmp / METHOD_STATE))
        write_json(tmp / "trainer_state.json", meta, ensure_ascii=True, strict=False)
        write_file_hashes(tmp)  # last: it vouches for everything above
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    distributed.barrier()  # complete for every rank
    return folder


def write_file_hashes(folder: Path) -> None:
    """manifest.json: {relative path: {"bytes", "sha256"}} of every file in `folder` (DCP shards of
    every rank included: they are written before dcp.save returns on rank 0)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest = {p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in files}
    write_json(folder / MANIFEST, manifest, ensure_ascii=True, strict=False)


def verify(folder: Path) -> str | None:
    """Why checkpoint `folder` cannot be trusted (a file missing, truncated or changed against its
    manifest), or None when every file matches."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return f"no {MANIFEST}"
    except (OSError, ValueError) as e:
        return f"{MANIFEST} is unreadable ({e})"
    for name, expected in manifest.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        size = path.stat().st_size
        if size != expected["bytes"]:
            return f"{name} has {size} bytes, its manifest says {expected['bytes']}"
        if sha256_file(path) != expected["sha256"]:
            return f"{name} does not match its sha256 in {MANIFEST}"
    return None


def set_aside(folder: Path) -> Path:
    """Rename a checkpoint that failed verification to `step-N.bad` (`.bad-2`, ... when taken)."""
    aside, n = folder.with_name(folder.name + ".bad"), 1
    while aside.exists():
        n += 1
        aside = folder.with_name(f"{folder.name}.bad-{n}")
    os.replace(folder, aside)
    return aside


def latest_verified(checkpoints: Path, main: bool = True) -> Path | None:
    """The newest complete checkpoint that verifies. Each newer one that does not is reported and,
    by the main process (`main`), set aside; the others only skip it."""
    for folder in reversed(complete(checkpoints)):
        problem = verify(folder)
        if problem is None:
            return folder
        where = set_aside(folder) if main else folder
        notice(
            f"checkpoint {folder} failed verification ({problem}); set aside as {where.name}, "
            "resuming from the previous complete checkpoint"
        )
    return None


def step_folder(checkpoints: Path, step: int) -> Path:
    return checkpoints / f"step-{step:08d}"


def step_of(folder: Path) -> int:
    return int(folder.name.split("-")[1])


def complete(checkpoints: Path) -> list[Path]:
    """Complete checkpoint folders (their manifest written), oldest first; `.tmp` and `.bad`
    folders are not."""
    if not checkpoints.is_dir():
        return []
    return sorted(
        p for p in checkpoints.iterdir() if p.is_dir() and _STEP_FOLDER.match(p.name) and (p / MANIFEST).is_file()
    )


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
        set_peft_model_state_dict(model, load_file(str(folder / "adapter_model.safetensors")))
        return
    state = {}
    for f in sorted(folder.glob("*.safetensors")):
        state.update(load_file(str(f)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {k for k in missing if "lm_head" in k and model.config.tie_word_embeddings}
    if unexpected or set(missing) - tied:
        raise RuntimeError(
            f"{folder}: checkpoint does not match the model "
            f"(missing {sorted(set(missing) - tied)[:3]}, unexpected {unexpected[:3]})"
        )


def restore(folder: Path, model, optimizer, scheduler, scaler, sharded: bool = False, method: str = "") -> TrainState:
    """Load a checkpoint written by `save` into freshly built objects; returns the train state.
    `method` as for `save`. Every rank reads the checkpoint (a shared file system); it must have
    the same world size."""
    meta = json.loads((folder / "trainer_state.json").read_text())
    written_by = meta["state"].get("world_size", 1)
    if written_by != distributed.world():
        raise UserError(
            f"{folder}: written by {written_by} process(es), resumed with "
            f"{distributed.world()}; resume with the same number of processes"
        )
    if sharded != (folder / SHARDS).is_dir():
        raise UserError(
            f"{folder}: {'not ' if sharded else ''}a sharded (FSDP) checkpoint; resume "
            "with the train.strategy that wrote it"
        )
    if sharded:
        sd = _shard_state(model, optimizer)
        load_shards(sd, folder / SHARDS)
        set_state_dict(model, optimizer, model_state_dict=sd["model"], optim_state_dict=sd["optim"])
    else:
        hooks = STATE.get(method)
        if hooks is None or not hooks.holds_weights:
            _load_weights(model, folder / weights_dirname(model))
        optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    if method in STATE:
        _load_method_state(folder, model, method, meta)
    scheduler.load_state_dict(meta["scheduler"])
    if meta["scaler"] is not None:
        scaler.load_state_dict(meta["scaler"])
    rng = load_file(str(folder / "rng.safetensors"))
    suffix = "" if distributed.is_main() else f".rank{distributed.rank()}"
    torch.set_rng_state(rng["cpu" + suffix])
    if torch.cuda.is_available():
        torch.cuda.set_rng_state_all([rng[f"cuda{i}{suffix}"] for i in range(torch.cuda.device_count())])
    return TrainState(**meta["state"])


def _load_method_state(folder: Path, model, method: str, meta: dict) -> None:
    """The method's state (models.build.STATE) from `folder` into `model`; a checkpoint without it
    (written before ja-adapt saved it) is a UserError: resuming without it would silently differ."""
    if not (folder / METHOD_STATE).is_file() or "method_state" not in meta:
        raise UserError(
            f"{folder}: no {METHOD_STATE}, which method {method} needs to resume exactly "
            "(the checkpoint predates it); start the run again in a new --out"
        )
    try:
        STATE[method].load_state(model, load_file(str(folder / METHOD_STATE)), meta["method_state"])
    except ValueError as e:
        raise UserError(
            f"{folder / METHOD_STATE}: {first_line(e)}; resume with the config that wrote "
            "it, or start the run again in a new --out"
        ) from None


def consolidate(folder: Path, out: Path | None = None) -> Path:
    """HF weights (adapter/ or model/, with the tokenizer) from a sharded checkpoint `folder` of a
    run directory, in one process: the model is rebuilt from the run's config.yaml and the DCP
    shards are read into it without a process group. Returns the written directory."""
    folder = Path(folder)
    if not (folder / SHARDS).is_dir():
        raise UserError(f"{folder}: no {SHARDS}/ folder; not a sharded (FSDP) checkpoint")
    saved = folder.parent.parent / "config.yaml"
    cfg = from_dict(read_yaml(saved), str(saved))
    tokenizer, base_tokenizer = run_tokenizers(cfg, saved.parent)
    model = build_model(cfg, tokenizer, torch.device("cpu"), base_tokenizer)
    sd = get_model_state_dict(model)
    load_shards({"model": sd}, folder / SHARDS, no_dist=True)
    set_model_state_dict(model, sd)
    out = Path(out) if out is not None else folder / weights_dirname(model)
    save_weights(model, tokenizer, out)
    return out
