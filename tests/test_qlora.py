"""qlora: LoRA over a 4-bit NF4 base through bitsandbytes, on CPU (its CPU backend trains: measured,
docs/plan.md). Trains, saves, reloads onto the 4-bit base reproducing the logged validation loss,
merges, is counted exactly, and its plan's weight bytes equal what bitsandbytes stores."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from ja_adapt import cli, plan
from ja_adapt.arch import PRESETS
from ja_adapt.config import load_config
from ja_adapt.errors import UserError

pytest.importorskip("bitsandbytes")

CPU = torch.device("cpu")
FAST = ["precision=fp32", "data.seq_len=64", "train.batch_size=2", "optim.warmup_steps=1",
        "optim.lr=3e-3", "train.eval_every=2", "train.eval_batches=2", "train.tensorboard=false",
        "train.progress=false", "data.val_fraction=0.1", "data.test_fraction=0.1"]


pytestmark = pytest.mark.usefixtures("one_thread")


def cfg_for(saved_tiny_model, *extra):
    _, model_dir, corpus = saved_tiny_model
    return load_config(None, FAST + list(extra), {"model.name_or_path": str(model_dir),
                                                  "data.paths": [str(corpus)], "method": "qlora",
                                                  "train.max_steps": 2})


def _weight_bytes(model) -> int:
    """Bytes a built model holds in weights: a 4-bit weight's packed bytes plus its quantisation
    state (absmax, and under double quantisation the scales' fp32 absmax and offset)."""
    total = 0
    for p in model.parameters():
        total += p.numel() * p.element_size()
        state = getattr(p, "quant_state", None)
        if state is not None:
            total += state.absmax.numel() * state.absmax.element_size()
            if state.nested:
                total += state.state2.absmax.numel() * 4 + state.offset.numel() * 4
    return total


@pytest.mark.parametrize("double_quant", [True, False])
def test_plan_weight_bytes_equal_what_bitsandbytes_stores(double_quant):
    """The plan's weights term (NF4 linears + fp32 rest + fp32 adapter) against the built model."""
    from ja_adapt.methods import build_model
    vocab = 512
    cfg = load_config(None, ["precision=fp32", "method=qlora", "lora.rank=8", "lora.targets=qkvo",
                             f"qlora.double_quant={str(double_quant).lower()}"])
    model = build_model(cfg, [0] * vocab, CPU)
    predicted = plan.plan_memory(dict(PRESETS["tiny"], vocab_size=vocab), method="qlora", rank=8,
                                 targets="qkvo", double_quant=double_quant)["bytes"]["weights"]
    assert _weight_bytes(model) == predicted
    fp32 = plan.plan_memory(dict(PRESETS["tiny"], vocab_size=vocab), method="lora", rank=8,
                            targets="qkvo")["bytes"]["weights"]
    assert predicted < fp32 / 2


def test_nf4_bytes_by_hand():
    """One 4096×4096 matrix: 8 MiB of codes; 262,144 blocks; double-quantised scales are 1 byte each
    plus 1,024 fp32 scales and one offset, else 4 bytes each."""
    n = 4096 * 4096
    assert plan.nf4_bytes(n, double_quant=False) == n // 2 + 4 * n // 64
    assert plan.nf4_bytes(n, double_quant=True) == n // 2 + n // 64 + 4 * (n // 64 // 256) + 4
    assert plan.nf4_bytes(65) == 33 + 2 + 4 + 4           # a partial block and a partial byte


def test_qwen25_05b_plan_counts_the_lora_adapter_exactly_and_stores_the_base_in_nf4():
    """Trainable parameters of qlora are LoRA's: peft's own count on the meta-device Qwen2.5-0.5B;
    its weights are the NF4 linears plus the fp32 embedding and norms."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ja_adapt.models import preset_config
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(preset_config("qwen2.5-0.5b"))
    peft_model = get_peft_model(model, LoraConfig(r=16, target_modules=["q_proj", "v_proj"],
                                                  task_type="CAUSAL_LM"))
    trainable, _ = peft_model.get_nb_trainable_parameters()
    mem = plan.plan_memory(PRESETS["qwen2.5-0.5b"], method="qlora", rank=16, targets="qv",
                           batch=4, seq=2048)
    assert mem["params"]["trainable"] == trainable == 1_081_344
    linear = 24 * (896 * 896 * 2 + 896 * 128 * 2 + 896 * 4864 * 3)
    rest = mem["params"]["total"] - linear
    assert mem["bytes"]["weights"] == (24 * sum(plan.nf4_bytes(i * o) for _, i, o in
                                                plan.architecture(PRESETS["qwen2.5-0.5b"]).linears)
                                       + 4 * rest + 4 * trainable)
    lora = plan.plan_memory(PRESETS["qwen2.5-0.5b"], method="lora", rank=16, targets="qv", batch=4, seq=2048)
    assert mem["peak_allocated_bytes"] < lora["peak_allocated_bytes"]
    assert plan.train_overrides(mem["setup"])["qlora.double_quant"] is True


def test_qlora_trains_saves_and_reloads_onto_the_4bit_base(saved_tiny_model, tmp_path):
    """Two steps; the adapter loads with plain peft onto transformers' 4-bit base and reproduces the
    logged validation loss; trainable and total counts equal lora's (the same adapter and base)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from ja_adapt.data.pipeline import prepare_data
    from ja_adapt.models import load_tokenizer
    from ja_adapt.step import validation_loss
    from ja_adapt.train import train
    _, model_dir, _ = saved_tiny_model
    cfg = cfg_for(saved_tiny_model)
    summary = train(cfg, tmp_path / "run")
    lora = train(cfg_for(saved_tiny_model, "method=lora", "train.eval_every=0"), tmp_path / "lora")
    assert summary["steps"] == 2 and summary["params_trainable"] == lora["params_trainable"] > 0
    assert summary["params_total"] == lora["params_total"]
    base = AutoModelForCausalLM.from_pretrained(model_dir, quantization_config=BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32), device_map={"": "cpu"})
    model = PeftModel.from_pretrained(base, tmp_path / "run" / "adapter")
    assert type(model.base_model.model.model.layers[0].self_attn.q_proj.base_layer).__name__ == "Linear4bit"
    data = prepare_data(cfg, load_tokenizer(tmp_path / "run" / "adapter"))
    val, _ = validation_loss(model.eval(), data.val, cfg.train.eval_batches, cfg, CPU)
    assert val == pytest.approx(summary["final_val_loss"], abs=1e-5)
    assert json.loads((tmp_path / "run" / "adapter" / "adapter_config.json").read_text())[
        "base_model_name_or_path"] == str(model_dir)


def test_qlora_merge_folds_the_adapter_into_the_unquantized_base(saved_tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM

    from ja_adapt.artifacts import load_weights, merge_run, run_config
    from ja_adapt.checkpoint import weights_in
    from ja_adapt.train import train
    train(cfg_for(saved_tiny_model, "train.eval_every=0"), tmp_path / "run")
    merged = AutoModelForCausalLM.from_pretrained(merge_run(tmp_path / "run")).eval()
    adapter, _ = load_weights(weights_in(tmp_path / "run"), run_config(tmp_path / "run"), quantized=False)
    quantized, _ = load_weights(weights_in(tmp_path / "run"), run_config(tmp_path / "run"))
    x = torch.randint(0, 300, (1, 12))
    with torch.no_grad():
        assert torch.allclose(merged(x).logits, adapter(x).logits, atol=1e-4)
        # the 4-bit model is the same network up to NF4 rounding, not the same numbers
        assert not torch.allclose(merged(x).logits, quantized(x).logits, atol=1e-4)


def _cli(argv, capsys) -> tuple[int, str]:
    code = cli.main(argv)
    return code, capsys.readouterr().err.strip()


def test_qlora_with_a_bf16_base_is_one_line_exit_2(saved_tiny_model, tmp_path, capsys):
    _, model_dir, corpus = saved_tiny_model
    code, err = _cli(["train", "--model", str(model_dir), "--data", str(corpus), "--out", str(tmp_path / "r"),
                      "--method", "qlora", "model.dtype=bf16", "precision=bf16"], capsys)
    assert code == 2 and "model.dtype" in err and "qlora" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_qlora_without_bitsandbytes_is_one_line_exit_2(saved_tiny_model, tmp_path, capsys, monkeypatch):
    _, model_dir, corpus = saved_tiny_model
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes"
                        else real(name, *a))
    code, err = _cli(["train", "--model", str(model_dir), "--data", str(corpus), "--out", str(tmp_path / "r"),
                      "--method", "qlora", *FAST, "train.max_steps=2"], capsys)
    assert code == 2 and "pip install bitsandbytes" in err and len(err.splitlines()) == 1


def test_qlora_under_fsdp_is_refused_naming_the_key():
    with pytest.raises(UserError, match="train.strategy"):
        load_config(None, ["method=qlora", "train.strategy=fsdp"])
