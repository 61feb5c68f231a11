"""ja_adapt.methods and models/build.py: the one registry, which parameters each method trains (checked
against peft's own count and the LoRA shapes), the seeded model builder, and the helpers."""

from __future__ import annotations

import pytest
import torch

from ja_adapt.config import load_config
from ja_adapt.core.errors import UserError
from ja_adapt.methods import spec as method_spec
from ja_adapt.methods.spec import MethodSpec, Section, register
from ja_adapt.models.build import apply_method, base_model, build_model, count_trainable, is_adapter, peft_config
from ja_adapt.models.load import PRESETS, load_model

CPU = torch.device("cpu")
VOCAB = 512


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a couple of shared cores torch's thread pool stalls on contention
    (a tiny step takes seconds instead of milliseconds); restored after the module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def cfg_of(*overrides):
    return load_config(None, ["precision=fp32", *overrides])


def tiny():
    return load_model("tiny", vocab_size=VOCAB, seed=0)


def lora_param_count(rank: int, targets: list[str]) -> int:
    """rank * (in + out) per adapted linear of the tiny preset, from its shapes."""
    p = PRESETS["tiny"]
    h, inter = p["hidden_size"], p["intermediate_size"]
    kv = p["num_key_value_heads"] * h // p["num_attention_heads"]
    shapes = {
        "q_proj": (h, h),
        "k_proj": (h, kv),
        "v_proj": (h, kv),
        "o_proj": (h, h),
        "gate_proj": (h, inter),
        "up_proj": (h, inter),
        "down_proj": (inter, h),
    }
    return p["num_hidden_layers"] * sum(rank * sum(shapes[t]) for t in targets)


# ---- the registry --------------------------------------------------------------------------------


def test_the_registry_holds_every_method_in_the_order_help_lists_them():
    assert list(method_spec.SPECS) == ["lora", "full", "dora", "rslora", "adalora", "ia3", "prefix", "qlora"]
    assert all(callable(spec.peft_config) for spec in method_spec.SPECS.values())


def test_the_two_methods_specs():
    assert method_spec.SPECS["lora"].artifact == "adapter" and not method_spec.SPECS["lora"].trains_base
    assert method_spec.SPECS["full"].artifact == "model" and method_spec.SPECS["full"].trains_base


def test_duplicate_method_is_refused_and_the_registry_is_unchanged():
    before = dict(method_spec.SPECS)
    with pytest.raises(ValueError, match="'lora' is already registered"):
        register(MethodSpec("lora", "another", trains_base=True, artifact="model", adapts_linears=False))
    assert method_spec.SPECS == before and method_spec.SPECS["lora"] is before["lora"]


def test_spec_with_a_bad_artifact_is_refused_and_not_added():
    before = dict(method_spec.SPECS)
    with pytest.raises(ValueError, match="artifact must be adapter or model"):
        register(MethodSpec("vera", "x", trains_base=False, artifact="weights", adapts_linears=False))
    assert method_spec.SPECS == before


def test_a_second_owner_of_a_config_section_is_refused_and_not_added():
    before = dict(method_spec.SPECS)
    with pytest.raises(ValueError, match="config section 'lora' already has an owner"):
        register(
            MethodSpec(
                "vera", "x", trains_base=False, artifact="adapter", adapts_linears=False, section=Section("lora", dict)
            )
        )
    assert method_spec.SPECS == before


@pytest.mark.parametrize("module", ["ja_adapt.methods", "ja_adapt.config"])
def test_the_registry_and_the_config_load_no_torch(module):
    """Builders and hooks import torch and peft when called, so the planner, config and report
    read the methods without loading them."""
    import subprocess
    import sys

    code = f"import {module}, sys; assert 'torch' not in sys.modules and 'peft' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- peft configs --------------------------------------------------------------------------------


def test_peft_config_is_none_for_full():
    assert peft_config(cfg_of("method=full")) is None


def test_peft_config_of_lora_follows_the_lora_keys():
    pc = peft_config(cfg_of("lora.rank=4", "lora.alpha=8", "lora.dropout=0.2", "lora.targets=qkvo"))
    assert (pc.r, pc.lora_alpha, pc.lora_dropout) == (4, 8.0, 0.2)
    assert set(pc.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert pc.bias == "none" and pc.task_type == "CAUSAL_LM"


def test_peft_config_of_an_unknown_method_names_the_key():
    cfg = cfg_of()
    cfg.method = "loha"  # set behind validation's back
    with pytest.raises(UserError, match=r"key 'method' is 'loha'"):
        peft_config(cfg)


# ---- apply_method --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "targets, names", [("qv", ["q_proj", "v_proj"]), ("qkvo", ["q_proj", "k_proj", "v_proj", "o_proj"])]
)
def test_lora_trains_exactly_the_adapter_weights(targets, names):
    model = apply_method(tiny(), cfg_of("lora.rank=8", f"lora.targets={targets}"))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all((".lora_A." in n or ".lora_B." in n) for n in trainable)
    layers = PRESETS["tiny"]["num_hidden_layers"]
    assert len(trainable) == 2 * len(names) * layers
    assert {n.split(".lora_")[0].rsplit(".", 1)[1] for n in trainable} == set(names)
    trained, total = count_trainable(model)
    assert trained == model.get_nb_trainable_parameters()[0]  # peft's own count
    assert trained == lora_param_count(8, names)  # from the shapes
    assert total == model.get_nb_trainable_parameters()[1]


def test_lora_freezes_the_base():
    model = apply_method(tiny(), cfg_of())
    assert not any(p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)


def test_full_trains_every_parameter_even_if_frozen_before():
    model = tiny()
    for p in model.parameters():
        p.requires_grad_(False)
    out = apply_method(model, cfg_of("method=full"))
    assert out is model and all(p.requires_grad for p in out.parameters())
    trained, total = count_trainable(out)
    assert trained == total == model.num_parameters()


def test_count_trainable_counts_tied_weights_once():
    model = tiny()
    assert model.config.tie_word_embeddings
    assert model.lm_head.weight is model.model.embed_tokens.weight
    h = PRESETS["tiny"]["hidden_size"]
    distinct = {id(p): p.numel() for _, p in model.named_parameters(remove_duplicate=False)}
    assert count_trainable(model)[1] == sum(distinct.values())
    by_name = sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False))
    assert by_name - count_trainable(model)[1] == VOCAB * h  # lm_head is embed_tokens
    for p in model.parameters():
        p.requires_grad_(False)
    model.model.norm.weight.requires_grad_(True)
    assert count_trainable(model) == (h, sum(distinct.values()))


# ---- build_model ---------------------------------------------------------------------------------


class _Tok:
    """Just the length of a tokenizer: build_model sizes the preset's vocabulary by it."""

    def __len__(self):
        return VOCAB


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("method", ["lora", "full"])
def test_build_model_is_deterministic_for_a_seed(method):
    a = _state(build_model(cfg_of(f"method={method}", "seed=3"), _Tok(), CPU))
    b = _state(build_model(cfg_of(f"method={method}", "seed=3"), _Tok(), CPU))
    c = _state(build_model(cfg_of(f"method={method}", "seed=4"), _Tok(), CPU))
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    differs = {k for k in a if not torch.equal(a[k], c[k])}
    base = {k for k in differs if "lora_" not in k}
    assert base  # the base weights depend on the seed
    if method == "lora":
        assert any("lora_A" in k for k in a)
        assert {k for k in differs if "lora_A" in k}  # and so does the adapter's init


def test_build_model_sets_up_the_model():
    cfg = cfg_of("lora.rank=4")
    model = build_model(cfg, _Tok(), CPU)
    assert is_adapter(model)
    assert base_model(model).config.use_cache is False
    assert base_model(model).get_input_embeddings().weight.shape[0] == VOCAB
    assert base_model(model).config._attn_implementation == cfg.model.attn_implementation
    assert count_trainable(model)[0] == lora_param_count(4, ["q_proj", "v_proj"])
    full = build_model(cfg_of("method=full"), _Tok(), CPU)
    assert not is_adapter(full) and full.config.use_cache is False
    assert count_trainable(full)[0] == count_trainable(full)[1]


def test_build_model_loads_a_saved_directory(saved_tiny_model):
    from transformers import AutoModelForCausalLM

    _, model_dir, _ = saved_tiny_model
    model = build_model(cfg_of("method=full", f"model.name_or_path={model_dir}", "seed=9"), _Tok(), CPU)
    ref = AutoModelForCausalLM.from_pretrained(model_dir)
    got, want = model.state_dict(), ref.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)  # pretrained weights, not seeded ones


# ---- base_model / is_adapter ---------------------------------------------------------------------


def test_base_model_and_is_adapter():
    plain = tiny()
    assert base_model(plain) is plain and not is_adapter(plain)
    wrapped = apply_method(tiny(), cfg_of())
    inner = base_model(wrapped)
    assert is_adapter(wrapped) and inner is not wrapped
    assert type(inner) is type(plain)
    assert dict(wrapped.named_modules())["base_model.model"] is inner


# ---- targets and rank against the model's layers ---------------------------------------------------


def test_targets_the_model_lacks_are_refused_naming_the_key_and_its_linears():
    """peft's NoMatchingPeftModuleError once surfaced as a traceback."""
    with pytest.raises(UserError, match=r"'lora.targets' is 'foo_proj'.*its linear layers: .*q_proj"):
        apply_method(tiny(), cfg_of("lora.targets=foo_proj"))


@pytest.mark.parametrize(
    "rank, targets, narrowest", [(4096, "qv", "v_proj"), (128, "qkvo", "k_proj"), (256, "q_proj", "q_proj")]
)
def test_a_rank_not_below_a_target_width_gives_a_notice(capsys, rank, targets, narrowest):
    """Rank 4096 on a hidden size of 64 was accepted silently. tiny: q/o 256x256, k/v 256->128."""
    apply_method(tiny(), cfg_of(f"lora.rank={rank}", f"lora.targets={targets}"))
    err = capsys.readouterr().err.strip()
    width = min(PRESETS["tiny"]["hidden_size"], 128 if narrowest in ("k_proj", "v_proj") else 256)
    assert len(err.splitlines()) == 1 and "lora.rank" in err
    assert f"min(in, out) = {width} of target {narrowest}" in err


def test_a_rank_below_every_target_width_says_nothing(capsys):
    apply_method(tiny(), cfg_of("lora.rank=127", "lora.targets=all-linear"))
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("ckpt", [False, True])
def test_bf16_frozen_base_keeps_trainable_weights_and_adamw_in_fp32(ckpt):
    """model.dtype=bf16: every frozen weight is bf16 (the fp32 base rounded: same seed, same
    numbers), every trainable one fp32, AdamW's state fp32 after a step, and the residual stream
    the layers see is fp32 (the embedding's output is cast), with or without checkpointing."""
    from ja_adapt.models.precision import autocast
    from ja_adapt.train.loss import training_loss
    from ja_adapt.train.step import build_optimizer

    keys = ["method=lora", "precision=bf16", f"train.activation_checkpointing={str(ckpt).lower()}"]
    cfg = cfg_of(*keys, "model.dtype=bf16")
    model = build_model(cfg, _Tok(), CPU).train()
    reference = build_model(cfg_of(*keys), _Tok(), CPU).state_dict()
    frozen = {n: p for n, p in model.named_parameters() if not p.requires_grad}
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert frozen and trainable
    assert {p.dtype for p in frozen.values()} == {torch.bfloat16}
    assert {p.dtype for p in trainable.values()} == {torch.float32}
    assert all(torch.equal(p, reference[n].to(torch.bfloat16)) for n, p in frozen.items())
    seen = []
    base_model(model).model.layers[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].dtype))
    optimizer, _ = build_optimizer(model, cfg.optim, cfg.train.max_steps)
    ids = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "position_ids": torch.arange(16).repeat(2, 1), "targets": ids.roll(-1, 1)}
    with autocast(cfg.precision, CPU, cfg.train.emulate_bf16):
        loss, _ = training_loss(model, batch, 1.0 / 32)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and seen[0] == torch.float32
    assert {t.dtype for s in optimizer.state.values() for t in s.values() if t.numel() > 1} == {torch.float32}
    assert all(p.grad is not None for p in trainable.values())
