"""rundir.py: one process per run directory; a stale lock never blocks; the lock is the first write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from ja_adapt.apps import cli
from ja_adapt.core.errors import UserError
from ja_adapt.train.rundir import LOCK_NAME, locked

HOLD = (
    "import sys, time; from pathlib import Path; from ja_adapt.train.rundir import locked; "
    "ctx = locked(Path(sys.argv[1])); ctx.__enter__(); print('held', flush=True); time.sleep(120)"
)


@pytest.fixture
def holder(tmp_path):
    """Another process holding tmp_path/run's lock; yields (its Popen, the run directory)."""
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield proc, out
    proc.kill()
    proc.wait()


def test_a_second_process_is_refused_naming_the_holder_pid(holder):
    proc, out = holder
    with pytest.raises(UserError, match=rf"in use by another ja-adapt process \(pid {proc.pid}\)"):
        with locked(out):
            pass
    assert (out / LOCK_NAME).read_text().strip() == str(proc.pid)  # the holder's lock is untouched


def test_a_stale_lock_of_a_killed_process_does_not_block(holder):
    proc, out = holder
    (out / "metrics.jsonl").write_text("")  # the killed run wrote something
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / LOCK_NAME).read_text().strip() == str(proc.pid)  # its lock file is left behind
    with locked(out):
        assert (out / LOCK_NAME).read_text().strip() == str(os.getpid())
    assert not (out / LOCK_NAME).exists() and (out / "metrics.jsonl").exists()


def test_a_directory_created_for_a_refused_run_is_removed_an_existing_one_kept(tmp_path):
    new, existing = tmp_path / "new", tmp_path / "existing"
    existing.mkdir()
    for out in (new, existing):
        with pytest.raises(UserError, match="refused"):
            with locked(out):
                assert (out / LOCK_NAME).is_file()
                raise UserError("refused")
    assert not new.exists() and existing.is_dir() and os.listdir(existing) == []


def test_a_path_that_is_a_file_or_under_one_is_refused(tmp_path):
    file = tmp_path / "file"
    file.write_text("precious")
    with pytest.raises(UserError, match="exists and is not a directory"):
        with locked(file):
            pass
    with pytest.raises(UserError, match="cannot write here"):
        with locked(file / "run"):
            pass
    assert file.read_text() == "precious"


def test_train_into_a_locked_directory_is_one_line_exit_2(holder, saved_tiny_model, capsys, monkeypatch):
    """Two `train` (or `--resume`) processes on one --out once both ran, writing every step twice."""
    import ja_adapt.train.loop as train_mod

    proc, out = holder
    _, model_dir, corpus = saved_tiny_model
    monkeypatch.setattr(train_mod, "prepare_data", lambda *a: pytest.fail("prepared data"))
    for extra in ([], ["--resume"]):
        code = cli.main(
            [
                "train",
                "--model",
                str(model_dir),
                "--data",
                str(corpus),
                "--out",
                str(out),
                "train.tensorboard=false",
                *extra,
            ]
        )
        err = capsys.readouterr().err.strip()
        assert code == 2 and f"pid {proc.pid}" in err and len(err.splitlines()) == 1
    assert sorted(os.listdir(out)) == [LOCK_NAME]


def test_an_unwritable_out_is_refused_before_data_and_model(saved_tiny_model, tmp_path, capsys, monkeypatch):
    import ja_adapt.train.loop as train_mod

    _, model_dir, corpus = saved_tiny_model
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(train_mod, "prepare_data", lambda *a: pytest.fail("prepared data"))
    code = cli.main(
        [
            "train",
            "--model",
            str(model_dir),
            "--data",
            str(corpus),
            "--out",
            str(tmp_path / "file" / "run"),
            "train.tensorboard=false",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "cannot write here" in err and len(err.splitlines()) == 1
