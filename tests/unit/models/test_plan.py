"""plan: exact parameter counts (published facts, peft), the memory model against real tensors, the CLI."""

import argparse
import json
import subprocess
import sys
import time
import weakref

import pytest
import torch
from transformers import AutoModelForCausalLM

from ja_adapt.apps.cli import plan as plan_cli
from ja_adapt.config import load_config
from ja_adapt.core.errors import UserError
from ja_adapt.methods.spec import SPECS, resolve_targets
from ja_adapt.models import arch as arch_module
from ja_adapt.models import plan
from ja_adapt.models.load import load_model, preset_config
from ja_adapt.models.recommend import RECOMMEND_GB, recommend
from ja_adapt.train.loss import training_loss

V, B, T = 1024, 2, 48


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    plan_cli.add_arguments(p)
    return p


def _run(argv, capsys) -> str:
    assert plan_cli.run(_parser().parse_args(argv)) == 0
    return capsys.readouterr().out


# ---- parameter counts ----------------------------------------------------------------------------


def test_qwen25_05b_counts_are_the_published_facts():
    c = preset_config("qwen2.5-0.5b")
    full = plan.count_parameters(c, method="full")
    assert full["total"] == full["trainable"] == 494_032_768
    assert full["total"] - full["embedding"] == full["non_embedding"] == 357_898_112
    expected = {"qv": 1_081_344, "qkvo": 2_162_688, "all-linear": 8_798_208}
    for targets, n in expected.items():
        assert plan.count_parameters(c, method="lora", rank=16, targets=targets)["trainable"] == n
    # linear in r
    assert plan.count_parameters(c, rank=32, targets="qv")["trainable"] == 2 * 1_081_344


@pytest.mark.parametrize("targets", ["qv", "qkvo", "all-linear", "gate_proj,down_proj"])
def test_tiny_counts_match_peft_on_the_meta_model(targets):
    from peft import LoraConfig, get_peft_model

    config = preset_config("tiny", vocab_size=V, tie_word_embeddings=False)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    peft_model = get_peft_model(
        model,
        LoraConfig(
            r=8, lora_alpha=16, lora_dropout=0.0, target_modules=resolve_targets(targets), task_type="CAUSAL_LM"
        ),
    )
    trainable, total = peft_model.get_nb_trainable_parameters()
    counts = plan.count_parameters(config, method="lora", rank=8, targets=targets)
    assert counts["trainable"] == trainable
    assert counts["total"] + counts["adapter"] == total
    assert counts["lm_head_untied"] == counts["embedding"] == V * config.hidden_size


# ---- memory model against real tensors -----------------------------------------------------------


def _model(method: str, targets: str = "qv", dropout: float = 0.1, ckpt: bool = False):
    torch.manual_seed(0)
    model = load_model("tiny", vocab_size=V)
    if ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                r=16,
                lora_alpha=32,
                lora_dropout=dropout,
                target_modules=resolve_targets(targets),
                task_type="CAUSAL_LM",
            ),
        )
    elif method != "full":  # the engine's own wrapping (methods.apply_method)
        from ja_adapt.models.build import apply_method

        cfg = load_config(
            None, [f"method={method}", "lora.rank=16", f"lora.targets={targets}", f"lora.dropout={dropout}"]
        )
        model = apply_method(model, cfg)
    return model.train()


def _batch(packed: bool = True) -> dict:
    ids = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(1))
    one = torch.cat([torch.arange(30), torch.arange(T - 30)]) if packed else torch.arange(T)
    return {"input_ids": ids, "position_ids": one.repeat(B, 1), "targets": ids.roll(-1, 1)}


def _predict(method, precision, **kw):
    return plan.plan_memory(
        preset_config("tiny", vocab_size=V), method=method, rank=16, precision=precision, batch=B, seq=T, **kw
    )


def _bytes_after_one_step(model, precision: str) -> dict:
    """Bytes of the real weights, gradients and AdamW state after one training step."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-3)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss, _ = training_loss(model, _batch(), 1.0 / (B * T))
    loss.backward()
    opt.step()
    nbytes = lambda ts: sum(t.numel() * t.element_size() for t in ts)  # noqa: E731
    return {
        "weights": nbytes(model.parameters()),
        "gradients": nbytes(p.grad for p in trainable),
        "optimizer": nbytes(t for s in opt.state.values() for t in s.values()),
    }


@pytest.mark.parametrize(
    "method,precision,targets",
    [
        ("lora", "bf16", "qv"),
        ("full", "fp32", "qv"),
        ("full", "bf16", "qv"),
        # DoRA's magnitudes, AdaLoRA's Λ and rank counters, IA3's vectors, the prefix's one embedding
        ("dora", "bf16", "all-linear"),
        ("adalora", "fp32", "all-linear"),
        ("ia3", "bf16", "qv"),
        ("prefix", "fp32", "qv"),
    ],
)
def test_weights_gradients_optimizer_equal_real_tensors(method, precision, targets):
    real = _bytes_after_one_step(_model(method, targets), precision)
    predicted = _predict(method, precision, targets=targets)["bytes"]
    assert {k: predicted[k] for k in real} == real


CASES = [  # method, precision, checkpointing, loss chunk, targets, dropout, packed
    ("full", "fp32", False, 0, "qv", 0.0, True),
    ("full", "bf16", False, 0, "qv", 0.0, True),
    ("full", "bf16", True, 0, "qv", 0.0, True),
    ("full", "fp32", False, 32, "qv", 0.0, False),
    ("full", "bf16", True, 32, "qv", 0.0, True),
    ("lora", "fp32", False, 0, "qv", 0.1, True),
    ("lora", "bf16", False, 0, "qv", 0.1, True),
    ("lora", "bf16", False, 32, "all-linear", 0.0, False),
    ("lora", "fp32", True, 0, "qkvo", 0.1, True),
    ("lora", "bf16", True, 32, "all-linear", 0.1, True),
    # the peft methods beyond LoRA (method_spec's saved_per_token, adapter_product); their defaults
    # for the method's own keys: ia3.targets k,v,down (down scaled on its input), 16 prefix tokens
    ("dora", "fp32", False, 0, "qv", 0.0, True),
    ("dora", "bf16", False, 0, "all-linear", 0.1, True),  # observed 3% under: fp32 side products
    ("ia3", "fp32", False, 0, "qv", 0.0, True),
    ("ia3", "bf16", False, 0, "qv", 0.0, True),
    ("prefix", "fp32", False, 0, "qv", 0.0, False),
    ("prefix", "bf16", False, 0, "qv", 0.0, True),
    ("adalora", "fp32", False, 0, "all-linear", 0.0, True),
    ("adalora", "bf16", False, 0, "qv", 0.1, True),
]


def _measured_saved_bytes(model, precision, ckpt, chunk, packed) -> int:
    """Every tensor autograd saves in the engine's real forward (loss.training_loss) that is still
    alive when backward would start, counted once per storage and without the parameters, plus what
    checkpointing keeps alive (rotary cos/sin, mask). Saved by a graph the forward already dropped
    (DoRA's weight-norm computation) is a temporary, not counted."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: list[weakref.ref] = []

    def keep(t):
        if t.untyped_storage().data_ptr() not in params:
            saved.append(weakref.ref(t))

    base = model.get_base_model() if hasattr(model, "get_base_model") else model

    def keep_all(module, inputs, outputs):  # returns None so the outputs are left as they are
        for t in outputs:
            keep(t)

    base.model.rotary_emb.register_forward_hook(keep_all)
    if ckpt:  # the checkpoint closures keep the mask alive until backward
        base.model.layers[0].register_forward_pre_hook(
            lambda m, a, kw: keep(kw["attention_mask"]) if kw.get("attention_mask") is not None else None,
            with_kwargs=True,
        )

    def pack(t):
        keep(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = training_loss(model, _batch(packed), 1.0, chunk)  # holds the graph
    alive = {
        t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in (r() for r in saved) if t is not None
    }
    del loss
    return sum(alive.values())


@pytest.mark.parametrize("method,precision,ckpt,chunk,targets,dropout,packed", CASES)
def test_saved_for_backward_matches_hooks(method, precision, ckpt, chunk, targets, dropout, packed):
    measured = _measured_saved_bytes(_model(method, targets, dropout, ckpt), precision, ckpt, chunk, packed)
    predicted = _predict(
        method,
        precision,
        targets=targets,
        activation_checkpointing=ckpt,
        loss_chunk_size=chunk,
        lora_dropout=dropout,
        packed=packed,
    )
    assert predicted["saved_for_backward_bytes"] == pytest.approx(measured, rel=0.10)


@pytest.mark.parametrize("method,precision,targets", [("full", "bf16", "qv"), ("lora", "fp32", "all-linear")])
def test_activation_checkpointing_saving_is_measured_and_planned(method, precision, targets):
    """Checkpointing's memory saving on the tiny model, measured with saved_tensors_hooks: it keeps
    under a third of the activations, and the plan predicts the saving within 10%."""
    off = _measured_saved_bytes(_model(method, targets, 0.0, False), precision, False, 0, True)
    on = _measured_saved_bytes(_model(method, targets, 0.0, True), precision, True, 0, True)
    assert on < off / 3
    plan_kw = dict(targets=targets, lora_dropout=0.0, packed=True)
    planned = (
        _predict(method, precision, activation_checkpointing=False, **plan_kw)["saved_for_backward_bytes"]
        - _predict(method, precision, activation_checkpointing=True, **plan_kw)["saved_for_backward_bytes"]
    )
    assert planned == pytest.approx(off - on, rel=0.10)


@pytest.mark.parametrize("precision,targets", [("fp32", "qv"), ("fp32", "all-linear"), ("bf16", "all-linear")])
def test_peak_tensor_bytes_of_a_lora_step_match_the_plan(precision, targets):
    """The peak of live tensors over a real LoRA step with dropout (the fused loss's forward,
    backward, AdamW; the second step, so AdamW's state exists), counted by
    telemetry.LiveTensorBytes, plus the weights, is the plan's peak_allocated_bytes within 5%: every
    adapted Linear's dropout mask and adapter input is in the plan. (On a CPU, RSS holds more: the
    heap glibc keeps, docs/plan.md "At the reference scale".)"""
    from ja_adapt.train.telemetry import LiveTensorBytes

    model = _model("lora", targets, dropout=0.1)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-3)
    with LiveTensorBytes() as live:
        for _ in range(2):
            live.reset_peak()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss, _ = training_loss(model, _batch(), 1.0 / (B * T))
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)  # as step.train_step
    measured = live.peak + sum(p.numel() * p.element_size() for p in model.parameters())
    planned = _predict("lora", precision, targets=targets, lora_dropout=0.1)["peak_allocated_bytes"]
    assert planned == pytest.approx(measured, rel=0.05)


@pytest.mark.parametrize("targets", ["qv", "all-linear"])
def test_dora_forward_transient_bounds_the_real_weight_norm_tensors(targets):
    """peft's DoRA recomputes its weight norm in every forward, through tensors freed before the next
    Linear: the spec's forward_transient is at least what telemetry.LiveTensorBytes sees live at
    once in the largest adapted Linear's forward, and at most 35% above it. The plan adds what it
    exceeds the loss's working set by (which exists only after the forward)."""
    from peft.tuners.lora import LoraLayer

    from ja_adapt.train.telemetry import LiveTensorBytes

    method_options = plan.method_options
    model = _model("dora", targets, dropout=0.0)
    measured = 0
    for module in model.modules():
        if isinstance(module, LoraLayer) and module.use_dora.get("default"):
            with LiveTensorBytes() as live:
                module(torch.randn(1, 1, module.in_features))  # one token: the rest is negligible
            measured = max(measured, live.peak)
    opts = method_options("dora", 16, targets, {})
    planned = SPECS["dora"].forward_transient(arch_module.architecture(preset_config("tiny", vocab_size=V)), opts)
    # (the measured peak also holds the one token's own outputs, a few KB)
    assert measured > 0 and measured <= 1.001 * planned and planned <= 1.35 * measured
    assert (
        SPECS["lora"].forward_transient(
            arch_module.architecture(preset_config("tiny", vocab_size=V)), method_options("lora", 16, targets, {})
        )
        == 0
    )
    parts = _predict("dora", "fp32", targets=targets)["bytes"]
    assert parts["forward_transient"] == max(0.0, planned - parts["logits"])
    assert _predict("lora", "fp32", targets=targets)["bytes"]["forward_transient"] == 0


def test_memory_levers_move_the_right_components():
    c = preset_config("qwen2.5-0.5b")
    kw = dict(method="lora", rank=16, targets="qkvo", precision="bf16", batch=4, seq=2048)
    plain = plan.plan_memory(c, **kw)
    ckpt = plan.plan_memory(c, activation_checkpointing=True, **kw)
    chunk = plan.plan_memory(c, loss_chunk_size=1024, **kw)
    assert ckpt["bytes"]["activations"] < plain["bytes"]["activations"] / 5
    assert chunk["bytes"]["logits"] < plain["bytes"]["logits"] / 5
    assert ckpt["bytes"]["weights"] == plain["bytes"]["weights"]
    full = plan.plan_memory(c, **{**kw, "method": "full"})
    assert full["bytes"]["optimizer"] > 100 * plain["bytes"]["optimizer"]


# ---- time, recommendations, CLI ------------------------------------------------------------------


def test_time_model_is_flops_over_throughput(capsys):
    out = json.loads(
        _run(
            [
                "--model",
                "qwen2.5-0.5b",
                "--method",
                "full",
                "--seq",
                "1024",
                "--gpu",
                "a100",
                "--mfu",
                "0.5",
                "--tokens",
                "1e9",
                "--json",
            ],
            capsys,
        )
    )
    t = out["time"]
    assert t["seconds"] == pytest.approx(1e9 * t["flops_per_token"] / (0.5 * 312e12))
    assert out["memory"]["params"]["total"] == 494_032_768


def test_recommendations_fit_their_budget(capsys):
    out = json.loads(_run(["--model", "qwen2.5-0.5b", "--recommend", "--json"], capsys))
    rows = out["recommendations"]
    assert {r["gpu_gb"] for r in rows} == {16, 24, 40, 80}
    for r in rows:
        if r["fits"]:
            assert r["total_gb"] <= r["budget_gb"] == pytest.approx(r["gpu_gb"] * 0.9)
    by = {(r["gpu_gb"], r["method"]): r for r in rows}
    assert by[(80, "lora")]["fits"] and by[(80, "full")]["fits"]
    tokens = {gb: by[(gb, "full")]["batch"] * by[(gb, "full")]["seq"] for gb in (16, 80)}
    assert tokens[80] >= tokens[16]
    text = _run(["--model", "qwen2.5-7b", "--gpu-memory", "24", "--recommend"], capsys)
    assert "24 GiB: full does NOT fit" in text


@pytest.mark.parametrize("preset", ["qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-7b", "qwen2.5-14b"])
def test_every_recommended_setting_is_accepted_by_train(preset):
    """Each setting `--recommend` gives for 16/24/40/80 GiB passes train's config validation as it
    is, and uses what training can do: a bf16 frozen base for LoRA, checkpointing where needed."""
    from ja_adapt.config import load_config

    rows = [r for gb in RECOMMEND_GB for r in recommend(arch_module.PRESETS[preset], gpu_gb=gb)]
    assert {r["gpu_gb"] for r in rows} == {16, 24, 40, 80}
    for r in (r for r in rows if r["fits"]):
        overrides = [f"{k}={v}" for k, v in r["overrides"].items()]
        cfg = load_config(None, overrides, {"model.name_or_path": preset})  # raises on a refusal
        assert (cfg.method, cfg.train.batch_size, cfg.data.seq_len) == (r["method"], r["batch"], r["seq"])
        assert cfg.train.activation_checkpointing == r["activation_checkpointing"]
        assert cfg.model.dtype == (
            "fp32" if SPECS[r["method"]].trains_base or SPECS[r["method"]].quantized_base else "bf16"
        )
    fitting = {(r["gpu_gb"], r["method"]) for r in rows if r["fits"]}
    assert (80, "lora") in fitting
    if preset == "qwen2.5-0.5b":
        assert fitting == {(gb, m) for gb in (16, 24, 40, 80) for m in SPECS}


def test_bf16_base_needs_bf16_compute_in_the_plan_as_in_training():
    with pytest.raises(UserError, match="precision=bf16"):
        _predict("lora", "fp32", base_dtype="bf16")
    bf16 = _predict("lora", "bf16", base_dtype="bf16")["bytes"]
    fp32 = _predict("lora", "bf16", base_dtype="fp32")["bytes"]
    assert bf16["autocast_weight_copies"] < fp32["autocast_weight_copies"] / 10  # the adapters' only
    assert bf16["weights"] < fp32["weights"] and bf16["activations"] == fp32["activations"]


@pytest.mark.parametrize("ckpt", [False, True])
def test_bf16_base_plan_equals_the_built_model(ckpt):
    """model.dtype=bf16 as training builds it (methods.build_model): weights, gradients and AdamW
    state equal the plan's bytes, and the saved-for-backward bytes the hooks see are within 10%."""
    from ja_adapt.config import load_config
    from ja_adapt.models.build import build_model

    class Vocab:
        def __len__(self):
            return V

    cfg = load_config(
        None,
        [
            "method=lora",
            "precision=bf16",
            "model.dtype=bf16",
            "lora.dropout=0.1",
            f"train.activation_checkpointing={str(ckpt).lower()}",
        ],
    )
    model = build_model(cfg, Vocab(), torch.device("cpu")).train()
    measured = _measured_saved_bytes(model, "bf16", ckpt, 0, True)
    real = _bytes_after_one_step(model, "bf16")
    predicted = _predict("lora", "bf16", targets="qv", base_dtype="bf16", activation_checkpointing=ckpt)
    assert {k: predicted["bytes"][k] for k in real} == real
    assert predicted["saved_for_backward_bytes"] == pytest.approx(measured, rel=0.10)


def test_presets_plan_fast(capsys):
    for preset in ("qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-7b"):
        start = time.perf_counter()
        text = _run(["--model", preset, "--batch", "4", "--seq", "2048", "--gpu-memory", "24"], capsys)
        assert time.perf_counter() - start < 5
        assert "weights" in text and "FLOPs/token" in text


def test_plan_command_imports_neither_torch_nor_transformers(tmp_path):
    """`ja-adapt plan` is arithmetic on a config: the whole command, in a fresh interpreter, within
    5 s, without torch or transformers (whose import alone took 5-14 s on a busy 2-core machine)."""
    preset_config("qwen2.5-0.5b").save_pretrained(tmp_path)  # a local config.json: same path
    code = (
        "import sys; from ja_adapt.apps.cli import main; "
        f"main(['plan', '--model', 'qwen2.5-7b', '--recommend']); "
        f"main(['plan', '--model', {str(tmp_path)!r}, '--json']); "
        "print('HEAVY', [m for m in ('torch', 'transformers', 'peft') if m in sys.modules])"
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert time.perf_counter() - start < 5
    assert "HEAVY []" in out and "80 GiB: lora" in out


ARCH_CONFIGS = [  # architectures arch.py writes out, with each bias / tying / head_dim variant
    ("qwen2", dict(tie_word_embeddings=False)),
    ("qwen2", dict(tie_word_embeddings=True)),
    ("llama", dict(attention_bias=True, mlp_bias=True, tie_word_embeddings=False)),
    ("llama", dict(attention_bias=False, head_dim=48)),
    ("mistral", dict(tie_word_embeddings=True)),
]


@pytest.mark.parametrize("model_type,extra", ARCH_CONFIGS)
def test_arithmetic_shapes_equal_the_meta_device_model(model_type, extra):
    from transformers import AutoConfig

    config = AutoConfig.for_model(
        model_type,
        hidden_size=128,
        intermediate_size=344,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=V,
        **extra,
    )
    assert arch_module._arithmetic_arch(config) == arch_module._meta_arch(config)
    as_dict = json.loads(config.to_json_string(use_diff=False))
    assert arch_module._arithmetic_arch(as_dict) == arch_module._meta_arch(config)


@pytest.mark.parametrize("preset", ["tiny", "qwen2.5-0.5b", "qwen2.5-7b"])
def test_preset_shapes_equal_the_meta_device_model(preset):
    assert plan.architecture(arch_module.PRESETS[preset]) == arch_module._meta_arch(preset_config(preset))


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--model", "qwen2.5-05b"], "did you mean"),
        (["--model", "tiny", "--rank", "0"], "--rank 0"),
        (["--model", "tiny", "--method", "ful"], "did you mean 'full'"),
        (["--model", "tiny", "--precision", "bf8"], "--precision"),
        (["--model", "tiny", "--targets", "w1,w2"], "matches no nn.Linear"),
        (["--model", "tiny", "--batch", "0"], "--batch 0"),
        (["--model", "tiny", "--gpu", "v100"], "--gpu"),
        (["--model", "tiny", "--method", "full", "--base-dtype", "bf16"], "--base-dtype"),
    ],
)
def test_bad_input_is_a_user_error(argv, needle):
    with pytest.raises(UserError, match=needle):
        plan_cli.run(_parser().parse_args(argv))


def test_config_dir_without_shapes_is_a_user_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2", "hidden_size": 64}))
    with pytest.raises(UserError, match="missing intermediate_size"):
        plan_cli.run(_parser().parse_args(["--model", str(tmp_path)]))
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 64}))  # not even a model type
    with pytest.raises(UserError):
        plan_cli.run(_parser().parse_args(["--model", str(tmp_path)]))


def test_local_config_dir_plans_like_the_preset(tmp_path, capsys):
    preset_config("qwen2.5-0.5b").save_pretrained(tmp_path)
    out = json.loads(_run(["--model", str(tmp_path), "--json"], capsys))
    assert out["memory"]["params"]["total"] == 494_032_768
