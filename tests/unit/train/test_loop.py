"""The training engine end to end on a tiny model saved to disk and loaded back like a hub model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ja_adapt.apps import cli
from ja_adapt.config import load_config

FAST = [
    "precision=fp32",
    "data.seq_len=64",
    "train.batch_size=2",
    "optim.warmup_steps=1",
    "optim.lr=3e-3",
    "train.eval_every=3",
    "train.eval_batches=2",
    "train.tensorboard=false",
    "train.progress=false",
    "data.val_fraction=0.1",
    "data.test_fraction=0.1",
]


@pytest.fixture(scope="module")
def workdir(saved_tiny_model):
    return saved_tiny_model


def cfg_for(workdir, method, steps, *extra):
    _, model_dir, corpus = workdir
    return load_config(
        None,
        FAST + list(extra),
        {"model.name_or_path": str(model_dir), "data.paths": [str(corpus)], "method": method, "train.max_steps": steps},
    )


def losses(run: Path) -> list[float]:
    return [
        r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "train"
    ]


@pytest.mark.parametrize("method", ["lora", "full"])
def test_run_learns_and_writes_loadable_weights(workdir, tmp_path, method):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from ja_adapt.data.pipeline import prepare_data
    from ja_adapt.models.load import load_tokenizer
    from ja_adapt.train.loop import train
    from ja_adapt.train.step import validation_loss

    cfg = cfg_for(workdir, method, 8)
    summary = train(cfg, tmp_path / "run")
    run = tmp_path / "run"
    curve = losses(run)
    assert len(curve) == 8 and curve[-1] < curve[0]
    for name in ("config.yaml", "metrics.jsonl", "summary.json"):
        assert (run / name).is_file()
    assert summary["steps"] == 8 and summary["tokens_total"] > 0 and summary["peak_mem_bytes"] > 0
    # the saved weights load with plain HF / peft and reproduce the validation loss logged in training
    _, model_dir, _ = workdir
    if method == "lora":
        base = AutoModelForCausalLM.from_pretrained(model_dir)
        model = PeftModel.from_pretrained(base, run / "adapter", is_trainable=True)
        assert summary["params_trainable"] == model.get_nb_trainable_parameters()[0]
    else:
        model = AutoModelForCausalLM.from_pretrained(run / "model")
        assert summary["params_trainable"] == summary["params_total"]
    data = prepare_data(cfg, load_tokenizer(run / ("adapter" if method == "lora" else "model")))
    val, _ = validation_loss(
        model.eval(), data.val, cfg.train.eval_batches, cfg.train, cfg.precision, torch.device("cpu")
    )
    assert val == pytest.approx(summary["final_val_loss"], abs=1e-5)


def test_same_command_twice_gives_the_same_numbers(workdir, tmp_path):
    from ja_adapt.train.loop import train

    train(cfg_for(workdir, "lora", 3), tmp_path / "a")
    train(cfg_for(workdir, "lora", 3), tmp_path / "b")
    assert losses(tmp_path / "a") == losses(tmp_path / "b")


BF16_BASE_TOLERANCE = 0.005  # nats: |loss(bf16 frozen base) - loss(fp32 frozen base)| at every step


def test_bf16_frozen_base_gives_the_fp32_loss_curve(workdir, tmp_path):
    """model.dtype=bf16 stores the frozen base in bf16 (as bf16 autocast already rounds it for every
    matmul); the adapter and AdamW stay fp32, so the curve is the fp32-base one within a stated
    tolerance: 0.005 nats per step over 8 steps at lr 3e-3 (observed: at most 0.0005; the matmuls
    round the weights to bf16 under autocast either way, so only norms, biases and the embedding
    lookup see the difference)."""
    from ja_adapt.train.loop import train

    curves = {}
    for dtype in ("fp32", "bf16"):
        train(cfg_for(workdir, "lora", 8, "precision=bf16", f"model.dtype={dtype}"), tmp_path / dtype)
        curves[dtype] = losses(tmp_path / dtype)
    assert curves["bf16"][-1] < curves["bf16"][0]  # it learns
    gaps = [abs(a - b) for a, b in zip(curves["fp32"], curves["bf16"])]
    assert len(gaps) == 8 and max(gaps) < BF16_BASE_TOLERANCE, gaps
    assert curves["fp32"] != curves["bf16"]  # the dtype did change something
    adapter = load_file(tmp_path / "bf16" / "adapter" / "adapter_model.safetensors")
    assert {t.dtype for t in adapter.values()} == {torch.float32}


def test_resume_after_sigkill_equals_uninterrupted_run(workdir, tmp_path):
    """Bitwise on CPU fp32, LoRA with dropout: weights, optimizer, schedule, RNG and data position."""
    from ja_adapt.train.loop import train

    steps, extra = 10, ["train.save_every=2"]
    train(cfg_for(workdir, "lora", steps, *extra), tmp_path / "whole")
    _, model_dir, corpus = workdir
    killed = tmp_path / "killed"
    argv = [
        sys.executable,
        "-m",
        "ja_adapt",
        "train",
        "--model",
        str(model_dir),
        "--data",
        str(corpus),
        "--method",
        "lora",
        "--max-steps",
        str(steps),
        "--out",
        str(killed),
        *FAST,
        *extra,
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "checkpoints" / "step-00000004").is_dir():
        assert proc.poll() is None and time.time() < deadline, "run ended before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "summary.json").exists()
    assert (
        cli.main(
            [
                "train",
                "--model",
                str(model_dir),
                "--data",
                str(corpus),
                "--method",
                "lora",
                "--max-steps",
                str(steps),
                "--out",
                str(killed),
                "--resume",
                *FAST,
                *extra,
            ]
        )
        == 0
    )
    assert losses(killed) == losses(tmp_path / "whole")
    assert (
        json.loads((killed / "summary.json").read_text())["final_train_loss"]
        == json.loads((tmp_path / "whole" / "summary.json").read_text())["final_train_loss"]
    )


@pytest.mark.parametrize("extra", [[], ["optim.fused=true", "train.log_every=5"]], ids=["per-step", "deferred"])
def test_nonfinite_losses_stop_the_run_and_keep_the_last_checkpoint(workdir, tmp_path, monkeypatch, extra):
    """Steps 5.. have a NaN loss: their updates are skipped (the step-6 checkpoint holds the step-4
    weights) and the run stops after 3 in a row, also when the step reads its loss back only at log
    steps (fused AdamW skips by itself)."""
    import ja_adapt.train.distributed as distributed_mod
    import ja_adapt.train.loop as train_mod

    real = distributed_mod.training_loss
    calls = {"n": 0}

    def poisoned(model, batch, scale, chunk_size=0):
        calls["n"] += 1
        loss, nll = real(model, batch, scale, chunk_size)
        return (loss * float("nan"), nll) if calls["n"] > 4 and model.training else (loss, nll)

    monkeypatch.setattr(distributed_mod, "training_loss", poisoned)
    cfg = cfg_for(workdir, "lora", 20, "train.save_every=2", "train.max_nonfinite=3", "train.eval_every=0", *extra)
    with pytest.raises(train_mod.TrainingStopped, match="at step 7: 3 non-finite losses in a row"):
        train_mod.train(cfg, tmp_path / "run")
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == ([5] if extra else [1, 2, 3, 4, 5, 6, 7])
    assert all(r["skipped"] == (r["step"] > 4) for r in records)
    ckpt = tmp_path / "run" / "checkpoints"
    before, after = (load_file(ckpt / f"step-0000000{k}" / "adapter" / "adapter_model.safetensors") for k in (4, 6))
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_fused_step_reads_nothing_back_from_the_device(workdir, tmp_path, monkeypatch):
    """With optim.fused the training step, forward included, makes no host read of a tensor (no
    .item(), float() or bool()): on a GPU each would be a sync. Without it the finite check reads."""
    import ja_adapt.train.loop as train_mod

    reads = {"n": 0, "in_step": False}
    real_step = train_mod.train_step

    def step(*args, **kwargs):
        reads["in_step"] = True
        try:
            return real_step(*args, **kwargs)
        finally:
            reads["in_step"] = False

    monkeypatch.setattr(train_mod, "train_step", step)
    for name in ("item", "__float__", "__bool__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _original=original):
            reads["n"] += reads["in_step"]
            return _original(self, *a)

        monkeypatch.setattr(torch.Tensor, name, counted)
    counts = {}
    for fused in ("true", "false"):
        reads["n"] = 0
        train_mod.train(cfg_for(workdir, "lora", 3, f"optim.fused={fused}", "train.eval_every=0"), tmp_path / fused)
        counts[fused] = reads["n"]
    # foreach AdamW also reads its (host) step counters, so "false" reads more than once per step
    assert counts["true"] == 0 and counts["false"] >= 3


def run_cli(argv, capsys) -> tuple[int, str]:
    code = cli.main(argv)
    return code, capsys.readouterr().err.strip()


def test_existing_out_is_refused_without_resume(workdir, tmp_path, capsys):
    _, model_dir, corpus = workdir
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    code, err = run_cli(["train", "--model", str(model_dir), "--data", str(corpus), "--out", str(out), *FAST], capsys)
    assert code == 2 and "--resume" in err and len(err.splitlines()) == 1
    assert (out / "keep.txt").read_text() == "precious" and sorted(os.listdir(out)) == ["keep.txt"]


@pytest.mark.parametrize(
    "argv_extra, expected",
    [
        (["lora.rank=0"], "lora.rank"),
        (["lora.rnak=8"], "did you mean 'lora.rank'"),
        (["optim.lr=-1"], "optim.lr"),
        (["--method", "lorra"], "did you mean 'lora'"),
        (["optim.warmup_steps=50"], "optim.warmup_steps"),
        (["precision=fp8"], "precision"),
        (["train.emulate_bf16=yes"], "train.emulate_bf16"),
        (["model.dtype=fp8"], "model.dtype"),
        (["model.dtype=bf16"], "set precision=bf16"),  # FAST trains in fp32
        (["model.dtype=bf16", "--method", "full"], "trains every base weight"),
    ],
)
def test_bad_config_is_one_line_exit_2(workdir, tmp_path, capsys, argv_extra, expected):
    _, model_dir, corpus = workdir
    code, err = run_cli(
        [
            "train",
            "--model",
            str(model_dir),
            "--data",
            str(corpus),
            "--max-steps",
            "5",
            "--out",
            str(tmp_path / "run"),
            *FAST,
            *argv_extra,
        ],
        capsys,
    )
    assert code == 2 and expected in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "no such file"),
        ('{"text": "こんにちは"}\n{"text": 5}\n', ":2"),
        ('{"text": "こんにちは"}\n{oops\n', ":2"),
        ('{"text": "hello only English"}\n', "Japanese"),
        ("", "empty"),
    ],
)
def test_bad_corpus_is_one_line_exit_2_and_writes_nothing(workdir, tmp_path, capsys, content, expected):
    _, model_dir, _ = workdir
    corpus = tmp_path / "bad.jsonl"
    if content is not None:
        corpus.write_text(content, encoding="utf-8")
    code, err = run_cli(
        [
            "train",
            "--model",
            str(model_dir),
            "--data",
            str(corpus),
            "--max-steps",
            "5",
            "--out",
            str(tmp_path / "run"),
            *FAST,
        ],
        capsys,
    )
    assert code == 2 and expected.lower() in err.lower() and str(corpus.name) in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "run").exists()


def test_missing_model_is_one_line_exit_2(workdir, tmp_path, capsys):
    _, _, corpus = workdir
    code, err = run_cli(
        ["train", "--model", str(tmp_path / "nope"), "--data", str(corpus), "--out", str(tmp_path / "run"), *FAST],
        capsys,
    )
    assert code == 2 and "nope" in err and len(err.splitlines()) == 1


def test_merge_writes_a_full_model_with_the_adapter_folded_in(workdir, tmp_path):
    from transformers import AutoModelForCausalLM

    from ja_adapt.train.artifacts import load_run, merge_run
    from ja_adapt.train.loop import train

    train(cfg_for(workdir, "lora", 2, "train.eval_every=0"), tmp_path / "run")
    merged_dir = merge_run(tmp_path / "run")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    peft_model, _, _ = load_run(tmp_path / "run")
    x = torch.randint(0, 300, (1, 12))
    with torch.no_grad():
        assert torch.allclose(merged(x).logits, peft_model(x).logits, atol=1e-4)


def test_mfu_is_logged_per_step_where_the_device_peak_is_known(workdir, tmp_path, monkeypatch):
    """On a GPU named in telemetry's table every train record carries MFU = tokens/s x FLOPs per
    token / peak; here a CPU poses as a 1 TFLOP/s device. Without a known peak there is no MFU."""
    from transformers import AutoConfig

    import ja_adapt.train.loop as train_mod
    from ja_adapt.train import telemetry

    monkeypatch.setattr(telemetry, "device_peak_flops", lambda device: 1e12)
    cfg = cfg_for(workdir, "lora", 3, "train.eval_every=0")
    summary = train_mod.train(cfg, tmp_path / "run")
    records = [
        r
        for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
        if (r := json.loads(x))["kind"] == "train"
    ]
    fpt = telemetry.flops_per_token(
        AutoConfig.from_pretrained(workdir[1]),
        method="lora",
        trainable_params=summary["params_trainable"],
        seq_len=cfg.data.seq_len,
    )
    assert [r["step"] for r in records] == [1, 2, 3]
    for r in records:
        assert r["mfu"] == pytest.approx(r["tokens_per_s"] * fpt / 1e12, rel=1e-9) and r["mfu"] > 0
    assert summary["mfu_median"] == pytest.approx(sorted(r["mfu"] for r in records)[1])
    monkeypatch.setattr(telemetry, "device_peak_flops", lambda device: None)
    train_mod.train(cfg, tmp_path / "cpu")
    assert all("mfu" not in json.loads(x) for x in (tmp_path / "cpu" / "metrics.jsonl").read_text().splitlines())


def test_weights_that_overflow_are_never_saved_and_no_loss_is_reported(workdir, tmp_path, monkeypatch):
    """`optim.lr=.inf` once exited 0 with every saved weight NaN and a finite final loss in
    summary.json. Here the step-3 update makes a weight NaN with a finite loss: the run stops
    before the step-4 checkpoint, without final weights or summary, the step-2 checkpoint newest."""
    import ja_adapt.train.loop as train_mod

    real = train_mod.train_step
    calls = {"n": 0}

    def overflowing(engine, model, *args, **kwargs):
        result = real(engine, model, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:
            next(p for p in model.parameters() if p.requires_grad).data.fill_(float("nan"))
        return result

    monkeypatch.setattr(train_mod, "train_step", overflowing)
    run = tmp_path / "run"
    with pytest.raises(train_mod.TrainingStopped, match="at step 4: the weights are no longer finite"):
        train_mod.train(cfg_for(workdir, "lora", 4, "train.save_every=2", "train.eval_every=0"), run)
    assert not (run / "adapter").exists() and not (run / "summary.json").exists()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000002"]


# ---- faults: a damaged checkpoint, a torn metrics line, a full disk ---------------------------------

FAULT_EXTRA = ["train.save_every=2", "train.eval_every=0"]


def train_cli(workdir, out: Path, *extra: str) -> list[str]:
    _, model_dir, corpus = workdir
    return [
        "train",
        "--model",
        str(model_dir),
        "--data",
        str(corpus),
        "--method",
        "lora",
        "--max-steps",
        "4",
        "--out",
        str(out),
        *FAST,
        *FAULT_EXTRA,
        *extra,
    ]


@pytest.fixture(scope="module")
def reference_run(workdir, tmp_path_factory):
    """4 uninterrupted LoRA steps with checkpoints at 2 and 4."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert cli.main(train_cli(workdir, out)) == 0
    return out


def test_resume_sets_aside_a_damaged_checkpoint_and_repairs_a_torn_metrics_line(
    workdir, reference_run, tmp_path, capsys
):
    """Both once ended --resume in a traceback (a truncated adapter; a JSONDecodeError)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(reference_run, run)
    (run / "summary.json").unlink()  # as if killed after the step-4 checkpoint
    adapter = run / "checkpoints" / "step-00000004" / "adapter" / "adapter_model.safetensors"
    adapter.write_bytes(adapter.read_bytes()[:100])
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"kind": "train", "step": 5, "lo')
    capsys.readouterr()
    assert cli.main(train_cli(workdir, run, "--resume")) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ja-adapt:")]
    assert len(notes) == 2 and "adapter_model.safetensors" in notes[0] and "torn last line" in notes[1]
    assert (run / "checkpoints" / "step-00000004.bad").is_dir()
    assert losses(run) == losses(reference_run)
    assert json.loads((run / "summary.json").read_text())["final_train_loss"] == losses(reference_run)[-1]


def one_error_line(err: str) -> str:
    """The one `ja-adapt train: error:` line of stderr (loading bars of transformers aside)."""
    lines = [line for line in err.splitlines() if line.startswith("ja-adapt train: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return lines[0]


def _disk_full(*args, **kwargs):
    import errno

    raise OSError(errno.ENOSPC, "No space left on device", "somefile")


def test_disk_full_during_a_metrics_append_is_one_line_and_resumable(
    workdir, reference_run, tmp_path, capsys, monkeypatch
):
    from ja_adapt.train.runlog import MetricsLog

    real = MetricsLog.write

    def half_then_full(self, record):
        if record["step"] == 3:
            self.file.write(json.dumps(record)[:20])
            self.file.flush()
            _disk_full()
        real(self, record)

    monkeypatch.setattr(MetricsLog, "write", half_then_full)
    run = tmp_path / "run"
    code = cli.main(train_cli(workdir, run))
    err = one_error_line(capsys.readouterr().err)
    assert code == 2 and "disk full" in err and "--resume" in err
    monkeypatch.setattr(MetricsLog, "write", real)
    assert cli.main(train_cli(workdir, run, "--resume")) == 0
    assert losses(run) == losses(reference_run)


def test_disk_full_during_a_checkpoint_is_one_line_and_resumable(workdir, reference_run, tmp_path, capsys, monkeypatch):
    import ja_adapt.train.checkpoint as checkpoint_mod

    real, calls = checkpoint_mod.save_file, {"n": 0}

    def full_on_second(*args, **kwargs):
        calls["n"] += 1
        return _disk_full() if calls["n"] == 2 else real(*args, **kwargs)

    monkeypatch.setattr(checkpoint_mod, "save_file", full_on_second)
    run = tmp_path / "run"
    code = cli.main(train_cli(workdir, run))
    err = one_error_line(capsys.readouterr().err)
    assert code == 2 and "disk full" in err
    assert (run / "checkpoints" / "step-00000004.tmp").is_dir() and not (run / "adapter").exists()
    monkeypatch.setattr(checkpoint_mod, "save_file", real)
    assert cli.main(train_cli(workdir, run, "--resume")) == 0
    assert losses(run) == losses(reference_run)


def _no_tokenizer(model_dir):
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (model_dir / name).unlink()


def _bad_hidden_size(model_dir):
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, "hidden_size": "abc"}))


def _truncated_weights(model_dir):
    weights = model_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])


@pytest.mark.parametrize(
    "damage, extra, expected",
    [
        (_no_tokenizer, [], "no tokenizer files"),
        (_bad_hidden_size, [], "hidden_size"),
        (_truncated_weights, [], "cannot load safetensors weights"),
        (None, ["lora.targets=foo_proj"], "lora.targets"),
    ],
    ids=["no-tokenizer", "hidden-size-abc", "truncated-safetensors", "missing-targets"],
)
def test_a_bad_model_is_one_line_exit_2_and_leaves_nothing(workdir, tmp_path, capsys, damage, extra, expected):
    """Each once ended in a traceback (a ZeroDivisionError after an empty tokenizer, a validation
    error, a SafetensorError, peft's NoMatchingPeftModuleError), some leaving config.yaml and
    metrics.jsonl behind so the same command was then refused."""
    import shutil

    _, model_dir, corpus = workdir
    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    if damage is not None:
        damage(model)
    out = tmp_path / "run"
    argv = ["train", "--model", str(model), "--data", str(corpus), "--max-steps", "2", "--out", str(out), *FAST, *extra]
    code = cli.main(argv)
    err = one_error_line(capsys.readouterr().err)
    assert code == 2 and expected in err
    assert not out.exists()


@pytest.mark.parametrize("command", ["train", "compare", "sweep"])
def test_overrides_are_accepted_anywhere_among_the_flags(command, tmp_path):
    """`train --method lora lora.rank=8 --model M ... optim.warmup_steps=1` once failed with
    'unrecognized arguments'."""
    from ja_adapt.apps.cli import parse
    from ja_adapt.apps.cli.flags import config_from_args

    grid = ["--grid", "lora.rank=4,8"] if command == "sweep" else []
    args = parse(
        [
            command,
            "--method",
            "lora",
            "lora.rank=8",
            "--model",
            "tiny",
            "optim.lr=1e-3",
            "--data",
            "a.jsonl",
            *grid,
            "--out",
            str(tmp_path),
            "optim.warmup_steps=1",
            "--data",
            "b/",
        ]
    )
    cfg = config_from_args(args)
    assert args.overrides == ["lora.rank=8", "optim.lr=1e-3", "optim.warmup_steps=1"]
    assert (cfg.lora.rank, cfg.optim.lr, cfg.optim.warmup_steps) == (8, 1e-3, 1)
    assert (cfg.model.name_or_path, cfg.data.paths, args.command) == ("tiny", ["a.jsonl", "b/"], command)
