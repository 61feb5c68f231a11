"""qlora: LoRA over a 4-bit NF4 base through bitsandbytes, on CPU (its CPU backend trains: measured,
docs/plan.md). Trains, saves, reloads onto the 4-bit base reproducing the logged validation loss,
merges, is counted exactly, and its plan's weight bytes equal what bitsandbytes stores."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from ja_adapt.apps import cli
from ja_adapt.config import load_config
from ja_adapt.core import bitsandbytes_gate, provenance
from ja_adapt.core.errors import UserError
from ja_adapt.models import plan
from ja_adapt.models.arch import PRESETS

CPU = torch.device("cpu")
FAST = [
    "precision=fp32",
    "data.seq_len=64",
    "train.batch_size=2",
    "optim.warmup_steps=1",
    "optim.lr=3e-3",
    "train.eval_every=2",
    "train.eval_batches=2",
    "train.tensorboard=false",
    "train.progress=false",
    "data.val_fraction=0.1",
    "data.test_fraction=0.1",
]


pytestmark = pytest.mark.usefixtures("one_thread")


def cfg_for(saved_tiny_model, *extra):
    _, model_dir, corpus = saved_tiny_model
    return load_config(
        None,
        FAST + list(extra),
        {"model.name_or_path": str(model_dir), "data.paths": [str(corpus)], "method": "qlora", "train.max_steps": 2},
    )


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
    from ja_adapt.models.build import build_model

    vocab = 512
    cfg = load_config(
        None,
        [
            "precision=fp32",
            "method=qlora",
            "lora.rank=8",
            "lora.targets=qkvo",
            f"qlora.double_quant={str(double_quant).lower()}",
        ],
    )
    model = build_model(cfg, [0] * vocab, CPU)
    predicted = plan.plan_memory(
        dict(PRESETS["tiny"], vocab_size=vocab), method="qlora", rank=8, targets="qkvo", double_quant=double_quant
    )["bytes"]["weights"]
    assert _weight_bytes(model) == predicted
    fp32 = plan.plan_memory(dict(PRESETS["tiny"], vocab_size=vocab), method="lora", rank=8, targets="qkvo")["bytes"][
        "weights"
    ]
    assert predicted < fp32 / 2


def test_nf4_bytes_by_hand():
    """One 4096×4096 matrix: 8 MiB of codes; 262,144 blocks; double-quantised scales are 1 byte each
    plus 1,024 fp32 scales and one offset, else 4 bytes each."""
    n = 4096 * 4096
    assert plan.nf4_bytes(n, double_quant=False) == n // 2 + 4 * n // 64
    assert plan.nf4_bytes(n, double_quant=True) == n // 2 + n // 64 + 4 * (n // 64 // 256) + 4
    assert plan.nf4_bytes(65) == 33 + 2 + 4 + 4  # a partial block and a partial byte


def test_qwen25_05b_plan_counts_the_lora_adapter_exactly_and_stores_the_base_in_nf4():
    """Trainable parameters of qlora are LoRA's: peft's own count on the meta-device Qwen2.5-0.5B;
    its weights are the NF4 linears plus the fp32 embedding and norms."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ja_adapt.models.load import preset_config

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(preset_config("qwen2.5-0.5b"))
    peft_model = get_peft_model(model, LoraConfig(r=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    trainable, _ = peft_model.get_nb_trainable_parameters()
    mem = plan.plan_memory(PRESETS["qwen2.5-0.5b"], method="qlora", rank=16, targets="qv", batch=4, seq=2048)
    assert mem["params"]["trainable"] == trainable == 1_081_344
    linear = 24 * (896 * 896 * 2 + 896 * 128 * 2 + 896 * 4864 * 3)
    rest = mem["params"]["total"] - linear
    assert mem["bytes"]["weights"] == (
        24 * sum(plan.nf4_bytes(i * o) for _, i, o in plan.architecture(PRESETS["qwen2.5-0.5b"]).linears)
        + 4 * rest
        + 4 * trainable
    )
    lora = plan.plan_memory(PRESETS["qwen2.5-0.5b"], method="lora", rank=16, targets="qv", batch=4, seq=2048)
    assert mem["peak_allocated_bytes"] < lora["peak_allocated_bytes"]
    assert plan.train_overrides(mem["setup"])["qlora.double_quant"] is True


def test_qlora_trains_saves_and_reloads_onto_the_4bit_base(saved_tiny_model, tmp_path):
    """Two steps; the adapter loads with plain peft onto transformers' 4-bit base and reproduces the
    logged validation loss; trainable and total counts equal lora's (the same adapter and base)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from ja_adapt.data.pipeline import prepare_data
    from ja_adapt.models.load import load_tokenizer
    from ja_adapt.train.loop import train
    from ja_adapt.train.step import validation_loss

    _, model_dir, _ = saved_tiny_model
    cfg = cfg_for(saved_tiny_model)
    summary = train(cfg, tmp_path / "run")
    lora = train(cfg_for(saved_tiny_model, "method=lora", "train.eval_every=0"), tmp_path / "lora")
    assert summary["steps"] == 2 and summary["params_trainable"] == lora["params_trainable"] > 0
    assert summary["params_total"] == lora["params_total"]
    base = AutoModelForCausalLM.from_pretrained(
        model_dir,
        quantization_config=BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.float32,
        ),
        device_map={"": "cpu"},
    )
    model = PeftModel.from_pretrained(base, tmp_path / "run" / "adapter")
    assert type(model.base_model.model.model.layers[0].self_attn.q_proj.base_layer).__name__ == "Linear4bit"
    data = prepare_data(cfg, load_tokenizer(tmp_path / "run" / "adapter"))
    val, _ = validation_loss(model.eval(), data.val, cfg.train.eval_batches, cfg.train, cfg.precision, CPU)
    assert val == pytest.approx(summary["final_val_loss"], abs=1e-5)
    assert json.loads((tmp_path / "run" / "adapter" / "adapter_config.json").read_text())[
        "base_model_name_or_path"
    ] == str(model_dir)


def test_qlora_merge_folds_the_adapter_into_the_unquantized_base(saved_tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM

    from ja_adapt.train.artifacts import load_weights, merge_run, run_config
    from ja_adapt.train.checkpoint import weights_in
    from ja_adapt.train.loop import train

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
    code, err = _cli(
        [
            "train",
            "--model",
            str(model_dir),
            "--data",
            str(corpus),
            "--out",
            str(tmp_path / "r"),
            "--method",
            "qlora",
            "model.dtype=bf16",
            "precision=bf16",
        ],
        capsys,
    )
    assert code == 2 and "model.dtype" in err and "qlora" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_qlora_without_bitsandbytes_is_one_line_exit_2(saved_tiny_model, tmp_path, capsys, monkeypatch):
    _, model_dir, corpus = saved_tiny_model
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a)
    )
    code, err = _cli(
        [
            "train",
            "--model",
            str(model_dir),
            "--data",
            str(corpus),
            "--out",
            str(tmp_path / "r"),
            "--method",
            "qlora",
            *FAST,
            "train.max_steps=2",
        ],
        capsys,
    )
    assert code == 2 and "pip install bitsandbytes" in err and len(err.splitlines()) == 1


def test_qlora_under_fsdp_is_refused_naming_the_key():
    with pytest.raises(UserError, match="train.strategy"):
        load_config(None, ["method=qlora", "train.strategy=fsdp"])


# ---- bitsandbytes' two CPU paths, the shape rule, and no reach for the hub -------------------------


def _has_avx512bf16() -> bool:
    from ja_adapt.core import bitsandbytes_gate

    bitsandbytes_gate.load()
    return bitsandbytes_gate.cpu_has_avx512bf16()


def _odd_model(tmp_path, tokenizer=None):
    """A saved Qwen2 whose MLP gate/up projections have 100 outputs (not a multiple of 32)."""
    from transformers import AutoModelForCausalLM, Qwen2Config

    torch.manual_seed(0)
    config = Qwen2Config(
        hidden_size=64,
        intermediate_size=100,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=512,
        tie_word_embeddings=True,
    )
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path / "odd")
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp_path / "odd")
    return tmp_path / "odd"


def _eval_logits(model_dir, kernel):
    from ja_adapt.models.build import build_model

    cfg = load_config(
        None, ["precision=fp32", "method=qlora", f"qlora.cpu_kernel={kernel}", f"model.name_or_path={model_dir}"]
    )
    model = build_model(cfg, [0] * 512, CPU).eval()
    with torch.no_grad():
        logits = model(torch.arange(24).reshape(2, 12)).logits
    return model, logits


def _layers(model):
    import bitsandbytes as bnb

    return {name: m for name, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)}


# the CPU's flags, read without loading bitsandbytes at collection (test_provenance checks that
# they agree with bitsandbytes' own cpuid)
PATHS = [
    pytest.param("unpacked", id="unpacked"),
    pytest.param(
        "packed",
        id="packed-avx512bf16",
        marks=pytest.mark.skipif(
            "avx512_bf16" not in provenance.cpu_record()["cpu_kernel_flags"].split(),
            reason="bitsandbytes' packed path needs a CPU with AVX512-BF16",
        ),
    ),
]


@pytest.mark.parametrize("kernel", PATHS)
def test_each_cpu_path_is_the_one_chosen_and_both_compute_the_same_network(saved_tiny_model, kernel):
    """The tiny preset's layers are all multiples of 32, so `packed` packs every 4-bit weight at the
    first eval forward and `unpacked` none; the two paths agree up to their bf16 rounding."""
    _, model_dir, _ = saved_tiny_model
    model, logits = _eval_logits(model_dir, kernel)
    packed = {
        name: bool(getattr(m.weight.quant_state, "packing_format_for_cpu", False)) for name, m in _layers(model).items()
    }
    assert len(packed) == 4 * 7 and set(packed.values()) == {kernel == "packed"}
    if kernel == "packed":
        _, reference = _eval_logits(model_dir, "unpacked")
        assert torch.allclose(logits, reference, atol=0.05) and not torch.equal(logits, reference)


def test_auto_keeps_a_layer_off_the_packed_path_when_its_width_breaks_the_rule(tmp_path, capsys):
    """On a CPU with AVX512-BF16 the MLP's layers (100 outputs, or 100 inputs: not a multiple of
    the 64-weight block) run unpacked (a working fallback, one notice), the attention packed;
    without that CPU every layer runs unpacked. Either way: no crash."""
    model, logits = _eval_logits(_odd_model(tmp_path), "auto")
    state = {
        name.removesuffix(".base_layer").split(".")[-1]: getattr(m.weight.quant_state, "packing_format_for_cpu", False)
        for name, m in _layers(model).items()
    }
    has = _has_avx512bf16()
    assert state["gate_proj"] is False and state["up_proj"] is False  # 100 outputs
    assert state["down_proj"] is False  # 100 inputs
    assert state["q_proj"] is has and state["o_proj"] is has
    assert torch.isfinite(logits).all()
    err = capsys.readouterr().err
    assert ("unpacked CPU kernel" in err and "gate_proj" in err) is has


def test_packed_on_a_layer_that_breaks_the_rule_is_one_line_exit_2(tmp_path, capsys, tiny_tokenizer):
    odd, corpus = _odd_model(tmp_path, tiny_tokenizer), tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"text": "今日は良い天気ですね。" * 20}) + "\n")
    capsys.readouterr()
    code, err = _cli(
        [
            "train",
            "--model",
            str(odd),
            "--data",
            str(corpus),
            "--out",
            str(tmp_path / "r"),
            "--method",
            "qlora",
            "qlora.cpu_kernel=packed",
            *FAST,
            "train.max_steps=2",
        ],
        capsys,
    )
    err = "\n".join(line for line in err.splitlines() if "Loading weights" not in line)  # transformers' bar
    assert code == 2 and len(err.splitlines()) == 1 and "qlora.cpu_kernel" in err
    assert ("mlp.gate_proj" in err and "multiple of 32" in err) if _has_avx512bf16() else "AVX512-BF16" in err
    assert not (tmp_path / "r" / "summary.json").exists()


def test_packed_on_a_cpu_without_avx512bf16_is_one_line_exit_2(saved_tiny_model, tmp_path, capsys, monkeypatch):
    _, model_dir, corpus = saved_tiny_model
    monkeypatch.setattr(bitsandbytes_gate, "cpu_has_avx512bf16", lambda: False)
    code, err = _cli(
        [
            "train",
            "--model",
            str(model_dir),
            "--data",
            str(corpus),
            "--out",
            str(tmp_path / "r"),
            "--method",
            "qlora",
            "qlora.cpu_kernel=packed",
            *FAST,
            "train.max_steps=2",
        ],
        capsys,
    )
    assert code == 2 and len(err.splitlines()) == 1 and "AVX512-BF16" in err and "qlora.cpu_kernel" in err
    assert not (tmp_path / "r" / "summary.json").exists()


def test_a_bad_cpu_kernel_value_names_the_key():
    with pytest.raises(UserError, match="qlora.cpu_kernel.*use auto, packed, unpacked"):
        load_config(None, ["qlora.cpu_kernel=fast"])


_PROBE = """
import sys
from ja_adapt.apps import cli
code = cli.main(sys.argv[1:])
print("BNB", sys.modules.get("bitsandbytes") is not None, "KERNELS_IMPORTED_BY_BNB", code)
"""


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_only_qlora_imports_bitsandbytes_and_neither_reaches_for_a_hub_kernel(saved_tiny_model, tmp_path, method):
    """In a fresh process: a lora run never imports bitsandbytes; a qlora run does, without the
    hub-kernel warning, saying in one line (on an AVX512-BF16 CPU) which package has the faster one."""
    import os
    import subprocess
    import sys

    _, model_dir, corpus = saved_tiny_model
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _PROBE,
            "train",
            "--model",
            str(model_dir),
            "--data",
            str(corpus),
            "--out",
            str(tmp_path / "r"),
            "--method",
            method,
            *FAST,
            "train.max_steps=2",
            "train.eval_every=0",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"BNB {method == 'qlora'}" in done.stdout
    assert "kernels-community" not in done.stderr.replace("the hub kernel kernels-community", "")
    assert "Failed to load" not in done.stderr
    notes = [line for line in done.stderr.splitlines() if "fused 4-bit GEMM" in line]
    assert len(notes) == (1 if method == "qlora" and _has_avx512bf16() else 0)
    assert not notes or "`kernels`" in notes[0]
