"""Resume is bit for bit for every trainable method: N steps straight equal N/2 steps, a stop, and
a resume to N (same losses, same final trainable weights). AdaLoRA's rank allocator keeps
sensitivity EMAs besides the weights; its checkpoint carries them (MethodSpec.state)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ja_adapt.config import load_config

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = 6
FAST = [
    "precision=fp32",
    "data.seq_len=32",
    "train.batch_size=2",
    "optim.warmup_steps=1",
    "optim.lr=3e-3",
    "train.eval_every=0",
    "train.tensorboard=false",
    "train.progress=false",
    "data.val_fraction=0.1",
    "data.test_fraction=0.1",
    "lora.rank=4",
    "lora.dropout=0.1",
    f"train.max_steps={STEPS}",
    f"train.save_every={STEPS // 2}",
]
# (method, its keys). AdaLoRA reallocates its budget at every step (delta_t=1) among the v_proj
# triplets, whose ranking is close enough that the sensitivity EMAs decide it: resumed without them
# (scores from zero), step 5's loss differs.
METHODS = [
    *(pytest.param(method, [], id=method) for method in ("lora", "dora", "rslora", "ia3", "full")),
    pytest.param(
        "adalora",
        [
            "adalora.target_rank=2",
            "adalora.delta_t=1",
            "adalora.tinit=0.1",
            "adalora.tfinal=0.2",
            "lora.targets=v_proj",
        ],
        id="adalora",
    ),
    pytest.param("prefix", ["prefix.virtual_tokens=4"], id="prefix"),
    pytest.param("qlora", [], id="qlora"),  # bitsandbytes is a dependency: never skipped
    # vocab.extend: the new rows (full: the resized matrices; LoRA: peft's trainable token rows) and
    # the run's saved tokenizer carry over
    pytest.param("full", ["vocab.extend=16"], id="full-vocab"),
    pytest.param("lora", ["vocab.extend=16"], id="lora-vocab"),
]


class Stopped(Exception):
    """Stands in for a kill right after the middle checkpoint was written."""


def losses(run: Path) -> list[float]:
    return [
        r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "train"
    ]


def safetensors_in(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of every safetensors file under `folder`, keyed by file and tensor name."""
    return {
        f"{f.relative_to(folder)}:{k}": t
        for f in sorted(folder.rglob("*.safetensors"))
        for k, t in load_file(f).items()
    }


def stop_after_middle_checkpoint(monkeypatch, run_train) -> None:
    """Run `run_train()` with the loop stopped right after the step-STEPS/2 checkpoint is written,
    as a kill there would (nothing after it runs)."""
    import ja_adapt.train.loop as train_mod

    real_save = train_mod.save_checkpoint

    def save_then_stop(s, bar):
        real_save(s, bar)
        if s.state.step == STEPS // 2:
            raise Stopped

    monkeypatch.setattr(train_mod, "save_checkpoint", save_then_stop)
    with pytest.raises(Stopped):
        run_train()
    monkeypatch.undo()


@pytest.mark.parametrize("method, keys", METHODS)
def test_stop_and_resume_equals_the_uninterrupted_run(saved_tiny_model, tmp_path, monkeypatch, method, keys):
    """Losses, final weights and the last checkpoint (its weights, RNG states and, for AdaLoRA, the
    rank allocator and its full-rank weights) are equal bit for bit."""
    from ja_adapt.train.loop import train

    _, model_dir, corpus = saved_tiny_model
    cfg = load_config(
        None, FAST + [f"method={method}", *keys], {"model.name_or_path": str(model_dir), "data.paths": [str(corpus)]}
    )
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    train(cfg, whole)
    stop_after_middle_checkpoint(monkeypatch, lambda: train(cfg, stopped))
    assert len(losses(stopped)) == STEPS // 2 and not (stopped / "summary.json").exists()
    train(cfg, stopped, resume=True)

    assert losses(stopped) == losses(whole)
    weights = "model" if method == "full" else "adapter"
    last = f"checkpoints/step-{STEPS:08d}"
    for folder in (weights, last):
        expected, got = safetensors_in(whole / folder), safetensors_in(stopped / folder)
        assert expected.keys() == got.keys() and any(k.startswith(weights) for k in expected)
        assert [k for k in expected if not torch.equal(expected[k], got[k])] == []
    assert ((whole / last / "method_state.safetensors").is_file()) == (method == "adalora")
    if "vocab.extend=16" in keys:  # the extension happened, and the resumed run reused it
        added = json.loads((whole / "vocab.json").read_text())["added"]
        assert len(added) == 16 and added == json.loads((stopped / "vocab.json").read_text())["added"]
        assert any("trainable_tokens_delta" in k for k in expected) == (method == "lora")


@pytest.mark.parametrize("damage", ["missing", "mismatched"])
def test_a_checkpoint_without_fitting_method_state_is_refused_in_one_line(
    saved_tiny_model, tmp_path, monkeypatch, capsys, damage
):
    """An AdaLoRA checkpoint written before checkpoints carried the rank allocator (missing), or
    whose state does not fit the model (mismatched: a weight missing), cannot resume exactly: exit 2
    naming the checkpoint, and the checkpoint stays as it is."""
    from safetensors.torch import save_file

    from ja_adapt.apps import cli
    from ja_adapt.train.checkpoint import write_file_hashes

    _, model_dir, corpus = saved_tiny_model
    run = tmp_path / "run"
    argv = [
        "train",
        "--model",
        str(model_dir),
        "--data",
        str(corpus),
        "--method",
        "adalora",
        "--out",
        str(run),
        *FAST,
        "adalora.target_rank=2",
    ]
    stop_after_middle_checkpoint(monkeypatch, lambda: cli.main(argv))
    middle = run / "checkpoints" / f"step-{STEPS // 2:08d}"
    state = middle / "method_state.safetensors"
    if damage == "missing":  # as an older ja-adapt wrote it
        state.unlink()
        meta = json.loads((middle / "trainer_state.json").read_text())
        del meta["method_state"]
        (middle / "trainer_state.json").write_text(json.dumps(meta))
    else:
        tensors = load_file(state)
        del tensors[next(k for k in tensors if k.startswith("weight/"))]
        save_file(tensors, state)
    write_file_hashes(middle)  # the manifest vouches for it
    capsys.readouterr()
    assert cli.main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err  # also transformers' loading bar
    errors = [line for line in err.splitlines() if "error" in line]
    assert "Traceback" not in err and len(errors) == 1 and errors[0].startswith("ja-adapt train: error: ")
    assert str(middle) in errors[0] and "method_state.safetensors" in errors[0]
    assert ("predates" if damage == "missing" else "does not match") in errors[0]
    assert (middle / "adapter").is_dir() and not (run / "summary.json").exists()


def test_a_method_keeps_checkpoint_state_exactly_when_it_has_state_hooks():
    """MethodSpec.checkpoint_state (what config validation reads) is its state hooks (what
    checkpoints carry), so a method's checkpoints cannot silently lack its state."""
    import dataclasses

    from ja_adapt.methods import SPECS
    from ja_adapt.models.build import STATE

    assert {name for name, spec in SPECS.items() if spec.checkpoint_state} == set(STATE) == {"adalora"}
    assert all(STATE[name] is SPECS[name].state for name in STATE)
    assert not dataclasses.replace(SPECS["adalora"], state=None).checkpoint_state
