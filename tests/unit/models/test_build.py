"""The peft methods beyond LoRA (dora, rslora, adalora, ia3, prefix) and LoRA's variants (lora.init,
lora.train_embeddings, lora.train_token_ids): the plan's exact counts against peft's own on
Qwen2.5-0.5B (meta device), two training steps on the tiny model that reload with
PeftModel.from_pretrained to the logged validation loss, merge (or its refusal), the post-step hook,
prefix tuning's loss path against peft's own forward, and the keys' validation."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from ja_adapt.apps import cli
from ja_adapt.config import load_config
from ja_adapt.core.errors import UserError
from ja_adapt.methods.spec import SPECS, resolve_targets
from ja_adapt.models import build as methods
from ja_adapt.models.plan import count_parameters, plan_memory

# (method, further config keys): every method and variant whose count, training and artifact are
# checked below
VARIANTS = [
    ("lora", {}),
    ("dora", {}),
    ("rslora", {}),
    ("lora", {"lora.init": "gaussian"}),
    ("lora", {"lora.init": "pissa"}),
    ("lora", {"lora.init": "olora"}),
    ("lora", {"lora.train_embeddings": True}),
    ("lora", {"lora.train_token_ids": [3, 5, 7]}),
    ("adalora", {"adalora.target_rank": 2, "optim.warmup_steps": 0}),  # step 1 moves Λ from 0
    ("ia3", {}),
    ("prefix", {"prefix.virtual_tokens": 4}),
]
IDS = [m + "".join(f"-{k.split('.')[-1]}={v}" for k, v in s.items()) for m, s in VARIANTS]


pytestmark = pytest.mark.usefixtures("one_thread")


def overrides(settings: dict) -> list[str]:
    return [f"{k}={json.dumps(v) if isinstance(v, (bool, list)) else v}" for k, v in settings.items()]


# ---- exact counts: the plan's arithmetic against peft on Qwen2.5-0.5B --------------------------------


@pytest.mark.parametrize(
    "method, settings",
    [v for v in VARIANTS if "lora.init" not in v[1]]
    + [
        ("dora", {"lora.targets": "all-linear", "lora.rank": 8}),
        ("adalora", {"lora.targets": "qkvo"}),
        ("ia3", {"ia3.targets": "all-linear", "ia3.feedforward": "gate_proj,up_proj,down_proj"}),
        ("ia3", {"ia3.targets": "qv", "ia3.feedforward": ""}),
    ],
    ids=lambda v: v if isinstance(v, str) else ",".join(f"{k}={x}" for k, x in v.items()),
)
def test_plan_counts_equal_peft_on_qwen25_05b_on_the_meta_device(method, settings):
    """PiSSA / OLoRA initialise from the weights (no SVD of meta tensors); their parameters are
    LoRA's, checked on real weights in the training test below."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from ja_adapt.models.arch import PRESETS
    from ja_adapt.models.load import preset_config

    config = preset_config("qwen2.5-0.5b")
    cfg = load_config(None, [f"method={method}", *overrides(settings)])
    with torch.device("meta"):
        model = get_peft_model(AutoModelForCausalLM.from_config(config), methods.peft_config(cfg))
    trainable, total = model.get_nb_trainable_parameters()
    counts = count_parameters(
        PRESETS["qwen2.5-0.5b"], method=method, rank=cfg.lora.rank, targets=cfg.lora.targets, settings=settings
    )
    assert counts["trainable"] == trainable > 0
    # peft's total includes what it adds; AdaLoRA adds a frozen rank counter per adapted Linear too
    counters = config.num_hidden_layers * len(resolve_targets(cfg.lora.targets))
    assert total - counts["total"] - counts["trainable"] == (counters if method == "adalora" else 0)


def test_the_variants_count_what_they_add():
    """Against the shapes: DoRA adds one magnitude per output row of each adapted Linear; tied
    embeddings train one matrix; token rows are hidden-wide; AdaLoRA adds r per adapted matrix."""
    from ja_adapt.models.arch import PRESETS

    c = PRESETS["qwen2.5-0.5b"]
    d, layers, vocab = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"]
    kv = c["num_key_value_heads"] * d // c["num_attention_heads"]
    lora = count_parameters(c, method="lora")["trainable"]
    assert lora == layers * 16 * (d + d + d + kv)
    assert count_parameters(c, method="dora")["trainable"] == lora + layers * (d + kv)
    assert count_parameters(c, method="lora", settings={"lora.train_embeddings": True})["trainable"] == lora + vocab * d
    assert count_parameters(c, method="lora", settings={"lora.train_token_ids": [1, 2, 2]})["trainable"] == lora + 2 * d
    assert count_parameters(c, method="adalora")["trainable"] == lora + layers * 2 * 16
    assert count_parameters(c, method="prefix")["trainable"] == 16 * layers * 2 * kv


# ---- two training steps, reload, merge ---------------------------------------------------------------

FAST = [
    "precision=fp32",
    "data.seq_len=32",
    "train.batch_size=2",
    "optim.warmup_steps=1",
    "optim.lr=3e-3",
    "train.eval_every=2",
    "train.eval_batches=1",
    "train.tensorboard=false",
    "train.progress=false",
    "data.val_fraction=0.1",
    "data.test_fraction=0.1",
    "lora.rank=4",
    "train.max_steps=2",
]


@pytest.mark.parametrize("method, settings", VARIANTS, ids=IDS)
def test_two_steps_save_an_adapter_that_reloads_to_the_logged_loss_and_merges(
    saved_tiny_model, tmp_path, method, settings
):
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM

    from ja_adapt.data.pipeline import prepare_data
    from ja_adapt.models.load import load_tokenizer
    from ja_adapt.train.artifacts import merge_run
    from ja_adapt.train.loop import train
    from ja_adapt.train.step import validation_loss

    _, model_dir, corpus = saved_tiny_model
    cfg = load_config(
        None,
        FAST + [f"method={method}", *overrides(settings)],
        {"model.name_or_path": str(model_dir), "data.paths": [str(corpus)]},
    )
    run = tmp_path / "run"
    summary = train(cfg, run)
    assert summary["steps"] == 2 and (run / "adapter" / "adapter_model.safetensors").is_file()
    # the plan's count of this very model (the tiny config as saved)
    planned = count_parameters(
        AutoConfig.from_pretrained(model_dir), method=method, rank=4, targets=cfg.lora.targets, settings=settings
    )
    assert summary["params_trainable"] == planned["trainable"]
    # the artifact: plain peft on the saved base reproduces the validation loss logged in training
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), run / "adapter")
    data = prepare_data(cfg, load_tokenizer(run / "adapter"))
    val, _ = validation_loss(
        model.eval(), data.val, cfg.train.eval_batches, cfg.train, cfg.precision, torch.device("cpu")
    )
    assert val == pytest.approx(summary["final_val_loss"], abs=1e-5)
    base = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    x = torch.randint(0, 300, (1, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        adapted = model(input_ids=x).logits
        assert not torch.equal(adapted, base(input_ids=x).logits)  # it trained (AdaLoRA: barely)
    if SPECS[method].merges:
        merged = AutoModelForCausalLM.from_pretrained(merge_run(run)).eval()
        with torch.no_grad():
            assert torch.allclose(merged(input_ids=x).logits, adapted, atol=1e-4)
    else:
        with pytest.raises(UserError, match=rf"method '{method}' .* peft cannot merge it"):
            merge_run(run)
        assert not (run / "merged").exists()


def test_merge_of_prefix_tuning_is_one_line_exit_2(saved_tiny_model, tmp_path, capsys):
    _, model_dir, _ = saved_tiny_model
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(f"method: prefix\nmodel:\n  name_or_path: {model_dir}\n")
    assert cli.main(["merge", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "method 'prefix'" in err and "Traceback" not in err
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]


# ---- the post-step hook ------------------------------------------------------------------------------


def test_the_loop_calls_the_methods_post_step_hook_after_each_step_with_the_gradients(
    saved_tiny_model, tmp_path, monkeypatch
):
    """Every method gets its hook from the registry (no method name in the loop); it sees the step
    number and this step's gradients, before they are cleared."""
    from ja_adapt.train.loop import train

    _, model_dir, corpus = saved_tiny_model
    seen = []

    def hook(model, step):
        seen.append((step, all(p.grad is not None for p in model.parameters() if p.requires_grad)))

    monkeypatch.setitem(SPECS, "ia3", dataclasses.replace(SPECS["ia3"], post_step=hook))
    cfg = load_config(
        None,
        FAST + ["method=ia3", "train.max_steps=3", "train.eval_every=0"],
        {"model.name_or_path": str(model_dir), "data.paths": [str(corpus)]},
    )
    train(cfg, tmp_path / "run")
    assert seen == [(1, True), (2, True), (3, True)]


def test_adalora_reallocates_its_rank_budget_through_the_hook(saved_tiny_model, tmp_path):
    """After the budget phase, AdaLoRA keeps adalora.target_rank singular values per matrix on
    average: the saved adapter records the pattern, and the masked values are zero."""
    from ja_adapt.train.loop import train

    _, model_dir, corpus = saved_tiny_model
    cfg = load_config(
        None,
        FAST
        + ["method=adalora", "adalora.target_rank=2", "train.max_steps=4", "train.eval_every=0", "adalora.delta_t=1"],
        {"model.name_or_path": str(model_dir), "data.paths": [str(corpus)]},
    )
    train(cfg, tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "adapter" / "adapter_config.json").read_text())
    pattern = saved["rank_pattern"]
    assert pattern and all(len(kept) == 4 for kept in pattern.values())  # lora.rank entries each
    kept = sum(sum(map(bool, k)) for k in pattern.values())
    assert kept == 2 * len(pattern)  # the target budget
    assert kept < 4 * len(pattern)


# ---- prefix tuning's loss path -----------------------------------------------------------------------


def test_prefix_loss_equals_peft_forward_and_trains_the_prefix():
    """loss.py calls the decoder body, not the model's forward: the learned keys and values must
    reach it as peft's own forward passes them (else the prefix would be silently ignored)."""
    import torch.nn.functional as F

    from ja_adapt.models.build import build_model
    from ja_adapt.train.loss import token_nll, training_loss

    class Tok:
        def __len__(self):
            return 512

    cfg = load_config(None, ["precision=fp32", "method=prefix", "prefix.virtual_tokens=4"])
    model = build_model(cfg, Tok(), torch.device("cpu"))
    with torch.no_grad():
        model.prompt_encoder["default"].embedding.weight.mul_(20)  # a prefix that matters
    ids = torch.randint(0, 512, (2, 12), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "position_ids": torch.arange(12).repeat(2, 1), "targets": ids.roll(-1, 1)}
    batch["targets"][:, -1] = -100
    ours = token_nll(model.eval(), batch)
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    theirs = F.cross_entropy(logits.transpose(1, 2), batch["targets"], reduction="none", ignore_index=-100)
    assert torch.allclose(ours, theirs, atol=1e-4)
    with torch.no_grad():
        plain = methods.base_model(model)(input_ids=ids).logits
    assert not torch.allclose(logits, plain, atol=1e-3)  # the prefix counts
    loss, _ = training_loss(model.train(), batch, 1.0 / 22)
    loss.backward()
    assert model.prompt_encoder["default"].embedding.weight.grad.abs().sum() > 0


# ---- plan ---------------------------------------------------------------------------------------------


def test_the_plan_has_each_methods_memory_terms():
    from ja_adapt.models.arch import PRESETS

    c = PRESETS["qwen2.5-0.5b"]
    kw = dict(precision="bf16", batch=4, seq=2048, base_dtype="bf16")
    plans = {
        m: plan_memory(c, method=m, **kw) for m in SPECS if not SPECS[m].trains_base and not SPECS[m].quantized_base
    }  # qlora: tests/unit/models/test_qlora.py
    for _m, p in plans.items():
        n = p["params"]["trainable"]
        assert p["bytes"]["gradients"] == 4 * n and p["bytes"]["optimizer"] >= 8 * n
    assert plans["adalora"]["bytes"]["method_state"] == 3 * 4 * plans["adalora"]["params"]["trainable"]
    assert plans["lora"]["bytes"]["method_state"] == 0
    # DoRA keeps each adapted output for its magnitude; IA3 and prefix train no adapter matrices but
    # still need gradients through every layer from the first
    assert plans["dora"]["bytes"]["activations"] > plans["lora"]["bytes"]["activations"]
    assert plans["ia3"]["bytes"]["activations"] > 0 and plans["prefix"]["bytes"]["activations"] > 0
    emb = plan_memory(c, method="lora", settings={"lora.train_embeddings": True}, **kw)
    assert emb["bytes"]["logits"] - plans["lora"]["bytes"]["logits"] == 4 * c["vocab_size"] * c["hidden_size"]


def test_plan_cli_takes_method_keys_and_names_a_bad_one(capsys):
    assert cli.main(["plan", "--model", "qwen2.5-0.5b", "--method", "lora", "--set", "lora.use_dora=true"]) == 0
    out = capsys.readouterr().out
    assert "lora.use_dora=True): 1,105,920" in out
    assert cli.main(["plan", "--model", "qwen2.5-0.5b", "--method", "ia3", "--set", "ia3.targets=nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ia3.targets" in err


# ---- validation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "keys, message",
    [
        (["lora.init=svd"], r"key 'lora.init' is 'svd'.*default, gaussian, pissa, olora"),
        (["lora.train_token_ids=[-1]"], r"key 'lora.train_token_ids' must be token ids >= 0"),
        (["lora.train_embeddings=true", "lora.train_token_ids=[1]"], r"key 'lora.train_token_ids' is set with"),
        (["method=dora", "lora.init=pissa"], r"key 'lora.init' is 'pissa' with DoRA"),
        (
            ["method=adalora", "lora.rank=4", "adalora.target_rank=8"],
            r"key 'adalora.target_rank' must be in 1..lora.rank \(4",
        ),
        (["method=adalora", "lora.use_dora=true"], r"key 'method' is adalora"),
        (["adalora.tinit=0.5", "adalora.tfinal=0.5"], r"key 'adalora.tinit'"),
        (["adalora.delta_t=0"], r"key 'adalora.delta_t' must be >= 1"),
        (["adalora.beta1=1"], r"key 'adalora.beta1' must be in \(0, 1\)"),
        (["ia3.targets=q_proj", "ia3.feedforward=down_proj"], r"key 'ia3.feedforward'"),
        (["ia3.targets=q-proj"], r"key 'ia3.targets' is 'q-proj'"),
        (["prefix.virtual_tokens=0"], r"key 'prefix.virtual_tokens' must be >= 1"),
    ],
)
def test_bad_method_keys_are_refused_naming_the_key(keys, message):
    with pytest.raises(UserError, match=message):
        load_config(None, keys)


def test_token_ids_beyond_the_vocabulary_are_refused_naming_the_key():
    from ja_adapt.models.load import load_model

    cfg = load_config(None, ["precision=fp32", "lora.train_token_ids=[1,512]"])
    with pytest.raises(UserError, match=r"'lora.train_token_ids' has id 512, but the embedding has 512 rows"):
        methods.apply_method(load_model("tiny", vocab_size=512), cfg)


def test_a_bad_method_key_on_the_command_line_is_one_line_exit_2(saved_tiny_model, tmp_path, capsys):
    _, model_dir, corpus = saved_tiny_model
    rc = cli.main(
        [
            "train",
            "--model",
            str(model_dir),
            "--data",
            str(corpus),
            "--out",
            str(tmp_path / "r"),
            "--method",
            "dora",
            "lora.init=pissa",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "lora.init" in err
    assert not (tmp_path / "r").exists()


def test_lora_starts_from_peft_s_default_init_unless_told():
    """lora.init's default is peft's own (Kaiming-uniform A, B = 0), the init every LoRA run had
    before the key existed; gaussian is opt-in."""
    from ja_adapt.config import ExperimentConfig, with_overrides
    from ja_adapt.models.build import peft_config

    assert peft_config(ExperimentConfig()).init_lora_weights is True
    assert peft_config(with_overrides(ExperimentConfig(), {"lora.init": "gaussian"})).init_lora_weights == "gaussian"
