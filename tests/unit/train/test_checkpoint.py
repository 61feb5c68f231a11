"""checkpoint.py: save → restore into freshly built objects (weights, optimizer, scheduler, loss
scaler, RNG, TrainState) for lora and full, resuming bit for bit; the folder helpers; final weights."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch

from ja_adapt.config import load_config
from ja_adapt.core.errors import UserError
from ja_adapt.models.build import build_model
from ja_adapt.train import checkpoint
from ja_adapt.train.checkpoint import (
    TrainState,
    complete,
    latest,
    prune,
    restore,
    save,
    save_final,
    step_folder,
    step_of,
    weights_dirname,
    weights_in,
)
from ja_adapt.train.shards import load_shards
from ja_adapt.train.step import build_optimizer

CPU = torch.device("cpu")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a couple of shared cores torch's thread pool stalls on contention
    (a tiny step takes seconds instead of milliseconds); restored after the module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def cfg_of(method: str):
    return load_config(
        None,
        [
            "precision=fp32",
            f"method={method}",
            "optim.warmup_steps=0",
            "train.max_steps=10",
            "optim.lr=1e-2",
            "lora.rank=4",
        ],
    )


def fresh(cfg, tok, init_scale: float = 2.0**16):
    """What train.start builds before restoring: model, optimizer + scheduler, a loss scaler."""
    model = build_model(cfg, tok, CPU)
    optimizer, scheduler = build_optimizer(model, cfg.optim, cfg.train.max_steps)
    return model, optimizer, scheduler, torch.amp.GradScaler("cpu", init_scale=init_scale)


def batch(tok) -> torch.Tensor:
    return torch.randint(0, len(tok), (2, 16), generator=torch.Generator().manual_seed(0))


def one_step(model, optimizer, scheduler, scaler, x) -> None:
    model.train()
    loss = model(input_ids=x, labels=x).loss
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    scheduler.step()


def same(a, b) -> bool:
    """Deep equality of (nested) state dicts holding tensors."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


STATE = TrainState(
    step=1,
    batch_index=3,
    tokens_total=30,
    elapsed_s=1.5,
    nonfinite_total=1,
    nonfinite_in_row=0,
    best_val_loss=2.5,
    best_val_step=1,
    evals_since_best=0,
    world_size=1,
)


@pytest.mark.parametrize("method, weights", [("lora", "adapter"), ("full", "model")])
def test_save_then_restore_gives_back_everything(tmp_path, tiny_tokenizer, method, weights):
    cfg, tok, x = cfg_of(method), tiny_tokenizer, batch(tiny_tokenizer)
    model, optimizer, scheduler, scaler = fresh(cfg, tok, init_scale=2.0**10)  # not the default
    one_step(model, optimizer, scheduler, scaler, x)
    assert optimizer.state  # AdamW has moments now
    torch.manual_seed(1234)
    torch.rand(3)
    rng = torch.get_rng_state()
    saved_lr = scheduler.get_last_lr()
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    folder = save(step_folder(tmp_path / "checkpoints", 1), model, tok, optimizer, scheduler, scaler, STATE)

    assert folder == tmp_path / "checkpoints" / "step-00000001" and folder.is_dir()
    assert not folder.with_name(folder.name + ".tmp").exists()
    assert {p.name for p in folder.iterdir()} == {
        weights,
        "optimizer.pt",
        "rng.safetensors",
        "trainer_state.json",
        "manifest.json",
    }
    listed = json.loads((folder / "manifest.json").read_text())
    assert set(listed) == {
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json"
    }
    assert (folder / weights / "tokenizer.json").is_file()
    assert list((folder / weights).glob("*.safetensors"))
    assert weights_in(folder) == folder / weights

    # what the original does next, from the RNG state it had when saved
    torch.set_rng_state(rng)
    one_step(model, optimizer, scheduler, scaler, x)
    after = {k: v.clone() for k, v in model.state_dict().items()}
    opt_after, sched_after, scaler_after = optimizer.state_dict(), scheduler.state_dict(), scaler.state_dict()

    model2, optimizer2, scheduler2, scaler2 = fresh(cfg, tok)
    torch.rand(7)  # move the generator away
    state = restore(folder, model2, optimizer2, scheduler2, scaler2)
    assert state == STATE
    assert torch.equal(torch.get_rng_state(), rng)
    assert scaler2.get_scale() == 2.0**10
    assert scheduler2.last_epoch == 1 and scheduler2.get_last_lr() == saved_lr
    assert optimizer2.param_groups[0]["lr"] == saved_lr[0] < cfg.optim.lr
    assert len(optimizer2.state) == len([p for p in model2.parameters() if p.requires_grad])

    # resumed, the same step gives the same weights, optimizer, scheduler and scaler state
    one_step(model2, optimizer2, scheduler2, scaler2, x)
    resumed = model2.state_dict()
    assert resumed.keys() == after.keys()
    assert any(not torch.equal(after[k], saved[k]) for k in saved)  # the step did train
    assert all(torch.equal(resumed[k], after[k]) for k in after)
    assert same(optimizer2.state_dict(), opt_after)
    assert same(scheduler2.state_dict(), sched_after)
    assert same(scaler2.state_dict(), scaler_after)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_restore_puts_back_the_saved_weights(tmp_path, tiny_tokenizer, method):
    cfg, tok = cfg_of(method), tiny_tokenizer
    model, optimizer, scheduler, scaler = fresh(cfg, tok)
    one_step(model, optimizer, scheduler, scaler, batch(tok))
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    opt_saved = optimizer.state_dict()
    folder = save(tmp_path / "step-00000001", model, tok, optimizer, scheduler, scaler, STATE)
    model2, optimizer2, scheduler2, scaler2 = fresh(cfg, tok)
    changed = [k for k in saved if not torch.equal(saved[k], model2.state_dict()[k])]
    assert changed  # the step moved weights a fresh build lacks
    restore(folder, model2, optimizer2, scheduler2, scaler2)
    got = model2.state_dict()
    assert all(torch.equal(got[k], saved[k]) for k in saved)
    assert same(optimizer2.state_dict(), opt_saved)
    assert same(scheduler2.state_dict(), scheduler.state_dict())
    meta = json.loads((folder / "trainer_state.json").read_text())
    assert meta["state"] == asdict(STATE)


def test_restore_with_a_different_world_size_is_refused(tmp_path, tiny_tokenizer):
    cfg, tok = cfg_of("lora"), tiny_tokenizer
    model, optimizer, scheduler, scaler = fresh(cfg, tok)
    folder = save(
        tmp_path / "step-00000002", model, tok, optimizer, scheduler, scaler, TrainState(step=2, world_size=2)
    )
    with pytest.raises(UserError, match=rf"{folder}: written by 2 process\(es\), resumed with 1"):
        restore(folder, *fresh(cfg, tok))


def test_restore_of_an_unsharded_checkpoint_as_sharded_is_refused(tmp_path, tiny_tokenizer):
    cfg, tok = cfg_of("lora"), tiny_tokenizer
    parts = fresh(cfg, tok)
    folder = save(tmp_path / "step-00000001", parts[0], tok, *parts[1:], TrainState(step=1))
    with pytest.raises(UserError, match=r"not a sharded \(FSDP\) checkpoint"):
        restore(folder, *parts, sharded=True)


def test_save_replaces_an_existing_folder_and_a_stale_tmp(tmp_path, tiny_tokenizer):
    cfg, tok = cfg_of("lora"), tiny_tokenizer
    parts = fresh(cfg, tok)
    folder = tmp_path / "step-00000005"
    folder.mkdir()
    (folder / "old.txt").write_text("x")
    stale = tmp_path / "step-00000005.tmp"
    stale.mkdir()
    (stale / "junk").write_text("x")
    save(folder, parts[0], tok, *parts[1:], TrainState(step=5))
    assert not (folder / "old.txt").exists() and not stale.exists()
    assert json.loads((folder / "trainer_state.json").read_text())["state"]["step"] == 5


# ---- folders -------------------------------------------------------------------------------------


def make(ckpts, name: str, finished: bool = True):
    folder = ckpts / name
    folder.mkdir(parents=True)
    if finished:
        (folder / checkpoint.MANIFEST).write_text("{}")
    return folder


def test_complete_and_latest_ignore_tmp_set_aside_and_unfinished_folders(tmp_path):
    ckpts = tmp_path / "checkpoints"
    assert complete(ckpts) == [] and latest(ckpts) is None  # no folder yet
    a = make(ckpts, "step-00000010")
    make(ckpts, "step-00000030.tmp")
    make(ckpts, "step-00000035.bad")
    make(ckpts, "step-00000040", finished=False)
    b = make(ckpts, "step-00000020")
    make(ckpts, "other")
    (ckpts / "step-00000050").write_text("a file")
    assert complete(ckpts) == [a, b]
    assert latest(ckpts) == b


def test_prune_keeps_the_newest(tmp_path):
    ckpts = tmp_path / "checkpoints"
    folders = [make(ckpts, step_folder(ckpts, s).name) for s in (5, 10, 100, 1000)]
    tmp = make(ckpts, "step-00002000.tmp")
    prune(ckpts, 0)  # 0 keeps all
    assert complete(ckpts) == folders
    prune(ckpts, 2)
    assert complete(ckpts) == folders[2:]
    assert not folders[0].exists() and not folders[1].exists() and tmp.exists()


@pytest.mark.parametrize("step", [0, 7, 100, 12345678])
def test_step_folder_and_step_of_round_trip(tmp_path, step):
    folder = step_folder(tmp_path, step)
    assert folder.parent == tmp_path and folder.name == f"step-{step:08d}"
    assert step_of(folder) == step


def test_step_folders_sort_by_step(tmp_path):
    steps = [3, 20, 100, 9]
    for s in steps:
        make(tmp_path, step_folder(tmp_path, s).name)
    assert [step_of(f) for f in complete(tmp_path)] == sorted(steps)


def test_weights_dirname(tiny_tokenizer):
    assert weights_dirname(build_model(cfg_of("lora"), tiny_tokenizer, CPU)) == "adapter"
    assert weights_dirname(build_model(cfg_of("full"), tiny_tokenizer, CPU)) == "model"


def test_weights_in(tmp_path):
    (tmp_path / "a" / "adapter").mkdir(parents=True)
    (tmp_path / "m" / "model").mkdir(parents=True)
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "model").write_text("not a directory")
    assert weights_in(tmp_path / "a") == tmp_path / "a" / "adapter"
    assert weights_in(tmp_path / "m") == tmp_path / "m" / "model"
    for bad in (tmp_path / "f", tmp_path / "missing"):
        with pytest.raises(UserError, match=rf"{bad}: no adapter/ or model/ directory.*--resume"):
            weights_in(bad)


def test_save_final_replaces_an_existing_directory(tmp_path, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    model = build_model(cfg_of("full"), tiny_tokenizer, CPU)
    final = tmp_path / "run" / "model"
    final.mkdir(parents=True)
    (final / "stale.safetensors").write_text("old")
    save_final(model, tiny_tokenizer, final, sharded=False)
    assert not (final / "stale.safetensors").exists()
    assert not final.with_name("model.tmp").exists()
    assert (final / "tokenizer.json").is_file()
    loaded = AutoModelForCausalLM.from_pretrained(final).state_dict()
    want = model.state_dict()
    assert all(torch.equal(loaded[k], want[k]) for k in want)


def test_save_final_of_an_adapter_writes_a_peft_directory(tmp_path, tiny_tokenizer):
    model = build_model(cfg_of("lora"), tiny_tokenizer, CPU)
    final = tmp_path / "adapter"
    save_final(model, tiny_tokenizer, final, sharded=False)
    assert (final / "adapter_config.json").is_file() and (final / "adapter_model.safetensors").is_file()
    assert json.loads((final / "adapter_config.json").read_text())["r"] == 4


def test_consolidate_refuses_an_unsharded_folder(tmp_path):
    with pytest.raises(UserError, match=r"no shards/ folder"):
        checkpoint.consolidate(tmp_path)


# ---- the manifest: verification before a checkpoint is trusted -----------------------------------


def saved_pair(tmp_path, tok, method):
    """Checkpoints step-1 and step-2 of one model, as a run writes them."""
    cfg = cfg_of(method)
    parts = fresh(cfg, tok)
    ckpts = tmp_path / "checkpoints"
    for step in (1, 2):
        save(step_folder(ckpts, step), parts[0], tok, *parts[1:], TrainState(step=step))
    return ckpts


@pytest.mark.parametrize(
    "method, member",
    [
        ("lora", "adapter/adapter_model.safetensors"),
        ("full", "model/model.safetensors"),
        ("lora", "optimizer.pt"),
        ("lora", "rng.safetensors"),
        ("lora", "trainer_state.json"),
        ("lora", "adapter/adapter_config.json"),
    ],
)
@pytest.mark.parametrize("damage", ["truncate", "delete", "flip"])
def test_a_damaged_newest_checkpoint_is_set_aside_and_the_previous_used(
    tmp_path, tiny_tokenizer, capsys, method, member, damage
):
    """--resume once died with a traceback on any truncated member or a deleted adapter file."""
    ckpts = saved_pair(tmp_path, tiny_tokenizer, method)
    newest = step_folder(ckpts, 2)
    assert checkpoint.verify(newest) is None
    path = newest / member
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "delete":
        path.unlink()
    else:  # same size, one byte changed
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert member in checkpoint.verify(newest)
    capsys.readouterr()
    assert checkpoint.latest_verified(ckpts) == step_folder(ckpts, 1)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "step-00000002" in err and member in err
    aside = ckpts / "step-00000002.bad"
    assert not newest.exists() and (aside / "trainer_state.json").exists() != (
        member == "trainer_state.json" and damage == "delete"
    )
    assert complete(ckpts) == [step_folder(ckpts, 1)]
    restore(step_folder(ckpts, 1), *fresh(cfg_of(method), tiny_tokenizer))  # the fallback loads


def test_a_checkpoint_without_a_manifest_is_not_complete_and_a_second_bad_one_gets_its_own_name(
    tmp_path, tiny_tokenizer
):
    ckpts = saved_pair(tmp_path, tiny_tokenizer, "lora")
    (step_folder(ckpts, 2) / checkpoint.MANIFEST).unlink()
    assert latest(ckpts) == step_folder(ckpts, 1)
    (ckpts / "step-00000001.bad").mkdir()
    (step_folder(ckpts, 1) / "rng.safetensors").write_bytes(b"")
    assert checkpoint.latest_verified(ckpts, main=True) is None
    assert (ckpts / "step-00000001.bad-2" / "rng.safetensors").exists()


def test_a_non_main_rank_skips_a_bad_checkpoint_without_renaming_it(tmp_path, tiny_tokenizer):
    ckpts = saved_pair(tmp_path, tiny_tokenizer, "lora")
    (step_folder(ckpts, 2) / "optimizer.pt").write_bytes(b"")
    assert checkpoint.latest_verified(ckpts, main=False) == step_folder(ckpts, 1)
    assert step_folder(ckpts, 2).is_dir()


# ---- DCP's .metadata: read without running code (shards.py; issue 14, case 6) --------------------


class _Marker:
    """Unpickling this calls open(path, "w"): a crafted `.metadata` that would run code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _dcp_folder(tmp_path):
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    model_sd, optim_sd = get_state_dict(model, optimizer)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(tmp_path / "shards"), no_dist=True)
    return tmp_path / "shards", model


def test_dcp_shards_load_through_the_restricted_unpickler(tmp_path):
    shards, model = _dcp_folder(tmp_path)
    fresh_model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    state = {"model": fresh_model.state_dict()}
    load_shards(state, shards, no_dist=True)
    assert same(state["model"], model.state_dict())


@pytest.mark.parametrize("payload", ["reduce", "os.system", "not-metadata", "truncated"])
def test_a_crafted_dcp_metadata_runs_no_code_and_is_one_line(tmp_path, payload):
    """torch reads `.metadata` with pickle.load: a crafted one once ran code on --resume with FSDP."""
    import pickle

    shards, _ = _dcp_folder(tmp_path)
    marker = tmp_path / "PWNED"
    blob = {
        "reduce": lambda: pickle.dumps(_Marker(marker)),
        "os.system": lambda: b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.",
        "not-metadata": lambda: pickle.dumps({"a": 1}),
        "truncated": lambda: (shards / ".metadata").read_bytes()[:50],
    }[payload]()
    (shards / ".metadata").write_bytes(blob)
    with pytest.raises(UserError, match=r"\.metadata: not a DCP checkpoint index") as e:
        load_shards({"model": {}}, shards, no_dist=True)
    assert not marker.exists() and len(str(e.value).splitlines()) == 1
