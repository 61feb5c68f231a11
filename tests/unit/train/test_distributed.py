"""Two CPU processes (gloo) against one: DDP and FSDP give the single-process numbers, FSDP
checkpoints resume after SIGKILL, consolidate into a Hugging Face model directory, and a crafted
DCP index runs no code."""

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

from ja_adapt.apps import cli

# fp32, no dropout: LoRA dropout draws its masks per rank (seed + rank), so a 2-process run cannot
# reproduce a 1-process run's masks; with dropout=0 the two runs compute the same function.
FAST = [
    "precision=fp32",
    "data.seq_len=64",
    "optim.warmup_steps=1",
    "optim.lr=3e-3",
    "train.eval_every=0",
    "train.eval_batches=2",
    "train.tensorboard=false",
    "train.progress=false",
    "data.val_fraction=0.1",
    "data.test_fraction=0.1",
    "lora.dropout=0",
    "train.grad_accum=2",
]
STEPS = 4
TOL = 1e-5


@pytest.fixture(scope="module")
def workdir(saved_tiny_model):
    """conftest's saved tiny checkpoint and corpus; JA_ADAPT_CACHE is inherited by launched processes."""
    return saved_tiny_model


def train_argv(workdir, method: str, out: Path, *extra: str) -> list[str]:
    _, model_dir, corpus = workdir
    return [
        "train",
        "--model",
        str(model_dir),
        "--data",
        str(corpus),
        "--method",
        method,
        "--max-steps",
        str(STEPS),
        "--out",
        str(out),
        *FAST,
        *extra,
    ]


def torchrun(argv: list[str], nproc: int = 2, quiet: bool = False) -> subprocess.Popen:
    """`python -m torch.distributed.run --standalone --nproc_per_node N -m ja_adapt <argv>` in its own
    process group (so a test can SIGKILL the launcher and its workers together)."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "ja_adapt",
        *argv,
    ]
    return subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL if quiet else subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen) -> None:
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out[-3000:]


def records(run: Path, kind: str) -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == kind]


def losses(run: Path) -> list[float]:
    return [r["loss"] for r in records(run, "train")]


@pytest.fixture(scope="module")
def single(workdir, tmp_path_factory):
    """1-process reference runs (LoRA and full) with the 2-process runs' global batch: 4 rows."""
    root = tmp_path_factory.mktemp("single")
    for method in ("lora", "full"):
        assert cli.main(train_argv(workdir, method, root / method, "train.batch_size=4")) == 0
    return root


# ---- the data split across ranks -----------------------------------------------------------------


def test_ranks_partition_the_packed_stream(tiny_docs, tiny_tokenizer, tmp_path):
    """Rank r of 2 at global micro-batch g holds exactly single-process batch 2g+r (B rows each),
    and an epoch over both ranks covers every token once: nothing duplicated, nothing dropped."""
    from ja_adapt.data.packing import PackedBatches
    from ja_adapt.data.tokens import build_token_store
    from ja_adapt.train import distributed

    store = build_token_store(tiny_docs, tiny_tokenizer, tmp_path / "cache")
    b, t, world = 2, 8, 2
    small = PackedBatches(store, t, b, seed=3)
    big = PackedBatches(store, t, b * world, seed=3)
    seen = 0
    for g in range(big.batches_per_epoch):
        for r in range(world):
            rows = distributed.shard_rows(big.get(g), r, world)
            seen += small.real_tokens(rows)
            if g * world + r < small.batches_per_epoch - 1:  # the epoch's tail may hold padding
                for key in rows:
                    assert torch.equal(rows[key], small.get(g * world + r)[key])
    assert seen == store.n_tokens
    assert distributed.shard_rows(big.get(0)) is not None and distributed.world() == 1


# ---- DDP: 2 processes == 1 process ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["lora", "full"])
def test_ddp_two_processes_match_one(workdir, single, tmp_path, method):
    out = tmp_path / "ddp"
    argv = train_argv(workdir, method, out, "train.batch_size=2", "train.strategy=ddp")
    if method == "lora":  # the CLI convenience: ja-adapt train --nproc 2 (re-launches torchrun)
        proc = subprocess.run(
            [sys.executable, "-m", "ja_adapt", *argv, "--nproc", "2"],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    else:
        finish(torchrun(argv))
    one, two = losses(single / method), losses(out)
    assert len(two) == STEPS and two == pytest.approx(one, abs=TOL, rel=0)
    assert records(out, "val")[-1]["val_loss"] == pytest.approx(
        records(single / method, "val")[-1]["val_loss"], abs=TOL, rel=0
    )
    summary = json.loads((out / "summary.json").read_text())
    reference = json.loads((single / method / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["strategy"] == "ddp"
    assert summary["tokens_total"] == reference["tokens_total"]  # same global batches
    assert summary["params_trainable"] == reference["params_trainable"]
    assert (out / ("adapter" if method == "lora" else "model")).is_dir()


# ---- FSDP: sharded checkpoints, SIGKILL, resume, consolidation -----------------------------------


def test_fsdp_resumes_after_sigkill_and_consolidates(workdir, single, tmp_path):
    from transformers import AutoModelForCausalLM

    from ja_adapt.train.checkpoint import consolidate, latest, write_file_hashes

    out = tmp_path / "fsdp"
    argv = train_argv(
        workdir,
        "full",
        out,
        "train.batch_size=2",
        "train.strategy=fsdp",
        "train.save_every=2",
        "train.activation_checkpointing=true",
    )
    proc = torchrun(argv, quiet=True)
    deadline = time.time() + 180
    while not (out / "checkpoints" / "step-00000002").is_dir():
        assert proc.poll() is None and time.time() < deadline, "run ended before it could be killed"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both workers
    proc.wait()
    assert not (out / "summary.json").exists()
    assert (out / "checkpoints" / "step-00000002" / "shards" / ".metadata").is_file()
    finish(torchrun([*argv, "--resume"]))

    # the interrupted, sharded run trained exactly like one process with the same global batch
    assert losses(out) == pytest.approx(losses(single / "full"), abs=TOL, rel=0)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["strategy"] == "fsdp" and summary["steps"] == STEPS
    # RUN/model is a consolidated HF directory; so is a consolidated sharded checkpoint
    final = AutoModelForCausalLM.from_pretrained(out / "model")
    reference = AutoModelForCausalLM.from_pretrained(single / "full" / "model")
    last = consolidate(latest(out / "checkpoints"), tmp_path / "consolidated")
    from_shards = AutoModelForCausalLM.from_pretrained(last)
    ref_sd, shard_sd = reference.state_dict(), from_shards.state_dict()
    for name, tensor in final.state_dict().items():
        assert torch.equal(tensor, shard_sd[name]), name
        assert torch.allclose(tensor, ref_sd[name], atol=1e-4), name

    # resuming with another world size is refused in one line
    code = cli.main(
        [*argv[: argv.index("--max-steps") + 1], str(STEPS + 2), *argv[argv.index("--max-steps") + 2 :], "--resume"]
    )
    assert code == 2

    # a crafted shards/.metadata (its manifest rewritten to match) runs no code on a 2-process
    # resume: once it did, as torch reads it with pickle.load
    marker = tmp_path / "PWNED"
    newest = latest(out / "checkpoints")
    (newest / "shards" / ".metadata").write_bytes(b"cbuiltins\nopen\n(S'" + str(marker).encode() + b"'\nS'w'\ntR.")
    write_file_hashes(newest)
    (out / "summary.json").unlink()
    proc = torchrun([*argv, "--resume"])
    text, _ = proc.communicate(timeout=240)
    assert proc.returncode != 0 and not marker.exists()
    assert "ja-adapt train: error:" in text and "not a DCP checkpoint index (refuses to load builtins.open)" in text


# ---- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["train.strategy=zero3"], "train.strategy"),
        (["train.strategy=fsdp", "precision=fp16"], "fp16"),
        (["--nproc", "0"], "--nproc"),
    ],
)
def test_bad_strategy_is_one_line_exit_2(workdir, tmp_path, capsys, extra, expected):
    argv = train_argv(workdir, "full", tmp_path / "run")
    code = cli.main([*argv, *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and expected in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()
