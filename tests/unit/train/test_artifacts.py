"""artifacts.py: reading a run directory (config, final weights, base model) and merging a LoRA run,
on run directories built without training: config.yaml + weights saved as `train` saves them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ja_adapt.config import load_config, save_config, to_dict
from ja_adapt.core.errors import UserError
from ja_adapt.models.build import build_model, is_adapter
from ja_adapt.models.load import load_model
from ja_adapt.train.artifacts import load_base, load_run, merge_run, run_config
from ja_adapt.train.checkpoint import save_weights, weights_dirname

CPU = torch.device("cpu")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a couple of shared cores torch's thread pool stalls on contention
    (a tiny step takes seconds instead of milliseconds); restored after the module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def ids() -> torch.Tensor:
    return torch.randint(0, 512, (2, 10), generator=torch.Generator().manual_seed(1))


def logits(model, x) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=x).logits


def make_run(root: Path, name: str, tokenizer, *overrides) -> tuple[Path, torch.nn.Module]:
    """A run directory as `train` leaves it, with the trainable weights moved off their init."""
    cfg = load_config(None, ["precision=fp32", "lora.rank=4", *overrides])
    model = build_model(cfg, tokenizer, CPU)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    run = root / name
    run.mkdir()
    save_config(cfg, run / "config.yaml")
    save_weights(model, tokenizer, run / weights_dirname(model))
    return run, model.eval()


def bases(saved_tiny_model):
    _, model_dir, _ = saved_tiny_model
    return {
        "dir": [f"model.name_or_path={model_dir}"],
        "preset": ["model.name_or_path=tiny", f"model.tokenizer={model_dir}", "seed=5"],
    }


# ---- run_config ----------------------------------------------------------------------------------


def test_run_config_reads_the_saved_config(tmp_path, saved_tiny_model, tiny_tokenizer):
    run, _ = make_run(tmp_path, "r", tiny_tokenizer, "method=full", *bases(saved_tiny_model)["dir"], "optim.lr=1e-3")
    cfg = run_config(run)
    assert cfg.method == "full" and cfg.optim.lr == 1e-3 and cfg.lora.rank == 4
    assert to_dict(cfg) == to_dict(load_config(run / "config.yaml"))


def test_run_config_without_config_yaml(tmp_path):
    with pytest.raises(UserError, match=rf"{tmp_path}: not a run directory \(no config\.yaml\)"):
        run_config(tmp_path)


def test_run_config_with_an_unknown_key_names_the_file(tmp_path):
    (tmp_path / "config.yaml").write_text("lora:\n  rnak: 4\n")
    with pytest.raises(UserError, match=rf"{tmp_path / 'config.yaml'}: unknown key 'lora\.rnak'"):
        run_config(tmp_path)


# ---- load_run / load_base ------------------------------------------------------------------------


@pytest.mark.parametrize("base", ["dir", "preset"])
def test_load_run_of_a_lora_run_reproduces_its_logits(tmp_path, saved_tiny_model, tiny_tokenizer, base):
    run, model = make_run(tmp_path, "lora", tiny_tokenizer, "method=lora", *bases(saved_tiny_model)[base])
    loaded, tok, cfg = load_run(run)
    assert is_adapter(loaded) and not loaded.training
    assert cfg.method == "lora" and len(tok) == len(tiny_tokenizer)
    x = ids()
    assert torch.allclose(logits(loaded, x), logits(model, x), atol=1e-5)
    base_model, _ = load_base(cfg)
    assert not torch.allclose(logits(base_model, x), logits(model, x), atol=1e-3)  # the adapter counts


def test_load_run_of_a_full_run_reproduces_its_logits(tmp_path, saved_tiny_model, tiny_tokenizer):
    run, model = make_run(tmp_path, "full", tiny_tokenizer, "method=full", *bases(saved_tiny_model)["dir"])
    assert (run / "model" / "model.safetensors").is_file()
    loaded, tok, cfg = load_run(run)
    assert not is_adapter(loaded) and cfg.method == "full"
    x = ids()
    assert torch.equal(logits(loaded, x), logits(model, x))


def test_load_run_without_weights_is_refused(tmp_path, saved_tiny_model, tiny_tokenizer):
    run, _ = make_run(tmp_path, "r", tiny_tokenizer, "method=full", *bases(saved_tiny_model)["dir"])
    for p in (run / "model").iterdir():
        p.unlink()
    (run / "model").rmdir()
    with pytest.raises(UserError, match=r"no adapter/ or model/ directory"):
        load_run(run)


def test_load_base_of_a_directory(saved_tiny_model, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    _, model_dir, _ = saved_tiny_model
    cfg = load_config(None, ["precision=fp32", f"model.name_or_path={model_dir}"])
    model, tok = load_base(cfg)
    assert len(tok) == len(tiny_tokenizer) and not model.training
    x = ids()
    assert torch.equal(logits(model, x), logits(AutoModelForCausalLM.from_pretrained(model_dir), x))


def test_load_base_of_a_preset_is_the_seeded_preset(saved_tiny_model, tiny_tokenizer):
    _, model_dir, _ = saved_tiny_model
    cfg = load_config(None, ["precision=fp32", "model.name_or_path=tiny", f"model.tokenizer={model_dir}", "seed=3"])
    model, _ = load_base(cfg)
    x = ids()
    assert torch.equal(logits(model, x), logits(load_model("tiny", vocab_size=len(tiny_tokenizer), seed=3), x))
    assert not torch.equal(logits(model, x), logits(load_model("tiny", vocab_size=len(tiny_tokenizer), seed=4), x))


# ---- merge_run -----------------------------------------------------------------------------------


def test_merge_run_of_a_lora_run_equals_the_adapter_model(tmp_path, saved_tiny_model, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    run, model = make_run(tmp_path, "lora", tiny_tokenizer, "method=lora", *bases(saved_tiny_model)["dir"])
    out = merge_run(run, tmp_path / "merged")
    assert out == tmp_path / "merged"
    assert not (out / "adapter_config.json").exists() and (out / "tokenizer.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora_" in k for k in merged.state_dict())
    x = ids()
    assert torch.allclose(logits(merged, x), logits(model, x), atol=1e-5)


def test_merge_run_defaults_to_run_merged_and_accepts_an_empty_out(tmp_path, saved_tiny_model, tiny_tokenizer):
    run, _ = make_run(tmp_path, "lora", tiny_tokenizer, "method=lora", *bases(saved_tiny_model)["dir"])
    assert merge_run(run) == run / "merged"
    assert (run / "merged" / "config.json").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert merge_run(run, empty) == empty and (empty / "config.json").is_file()


def test_merge_run_refuses_an_existing_non_empty_out(tmp_path, saved_tiny_model, tiny_tokenizer):
    run, _ = make_run(tmp_path, "lora", tiny_tokenizer, "method=lora", *bases(saved_tiny_model)["dir"])
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match=rf"{out}: already exists and is not empty; choose another --out"):
        merge_run(run, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_merge_run_of_a_full_run_is_refused(tmp_path, saved_tiny_model, tiny_tokenizer):
    run, _ = make_run(tmp_path, "full", tiny_tokenizer, "method=full", *bases(saved_tiny_model)["dir"])
    with pytest.raises(UserError, match=rf"{run}: a full fine-tuning run"):
        merge_run(run, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()
