"""What a run records about what produced it (provenance.py), against independent sources: each
package's own __version__, bitsandbytes' native cpuid check, torch's CPU capability, sha256sum."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch

from ja_adapt.core import bitsandbytes_gate, provenance


def test_versions_are_the_packages_own():
    import accelerate
    import numpy
    import peft
    import sacrebleu
    import scipy
    import tokenizers
    import transformers

    versions = provenance.package_versions()
    for module in (torch, transformers, peft, accelerate, tokenizers, sacrebleu, numpy, scipy):
        assert versions[module.__name__] == module.__version__
    assert set(provenance.PACKAGES) <= set(versions) and "not installed" not in versions.values()


def test_the_lock_hash_is_sha256sum_and_a_differing_environment_is_named(tmp_path):
    record = provenance.lock_record()
    assert record == {
        "environment": "matches",
        "sha256": subprocess.run(
            ["sha256sum", str(provenance.LOCK)], capture_output=True, text=True, check=True
        ).stdout.split()[0],
    }
    other = tmp_path / "lock.txt"
    other.write_text(f"numpy==0.0.1 \\\n    --hash=sha256:00\nscipy=={__import__('scipy').__version__}\n")
    assert (
        provenance.lock_record.__wrapped__(other)["environment"]
        == f"differs: numpy {__import__('numpy').__version__} (lock 0.0.1)"
    )
    assert provenance.lock_record.__wrapped__(tmp_path / "none.txt")["sha256"] is None


def test_cpu_flags_agree_with_bitsandbytes_and_torch():
    flags = provenance.cpu_record()["cpu_kernel_flags"].split()
    bitsandbytes_gate.load()
    assert ("avx512_bf16" in flags) == bitsandbytes_gate.cpu_has_avx512bf16()
    if torch.backends.cpu.get_cpu_capability() == "AVX512":
        assert "avx512f" in flags
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        assert "avx2" in flags


@pytest.mark.usefixtures("one_thread")
def test_a_runs_summary_records_versions_lock_and_cpu(saved_tiny_model, tmp_path):
    from ja_adapt.config import load_config
    from ja_adapt.train.loop import train

    _, model_dir, corpus = saved_tiny_model
    cfg = load_config(
        None,
        [
            "precision=fp32",
            "data.seq_len=64",
            "train.batch_size=2",
            "optim.warmup_steps=0",
            "train.eval_every=0",
            "train.tensorboard=false",
            "train.progress=false",
            "train.max_steps=1",
        ],
        {"model.name_or_path": str(model_dir), "data.paths": [str(corpus)]},
    )
    train(cfg, tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["versions"]["bitsandbytes"] == __import__("importlib.metadata").metadata.version("bitsandbytes")
    assert summary["lock"]["sha256"] == provenance.lock_record()["sha256"]
    assert summary["device"]["cpu_kernel_flags"] == provenance.cpu_record()["cpu_kernel_flags"]
