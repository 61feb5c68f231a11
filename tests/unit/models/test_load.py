"""models.py: architecture presets, names (presets, aliases, paths, hub ids), configs, seeded and
saved weights (safetensors only), tokenizers and devices."""

from __future__ import annotations

import json
import pathlib

import pytest
import torch

from ja_adapt.config import load_config
from ja_adapt.core.errors import UserError
from ja_adapt.models import aliases as model_aliases
from ja_adapt.models import load as models
from ja_adapt.models.aliases import register_model_alias as register_alias
from ja_adapt.models.load import (
    PRESETS,
    load_model,
    load_tokenizer,
    model_config,
    preset_config,
    resolve_device,
    resolve_name,
    tokenizer_for,
)

# Public facts of the Qwen2.5 releases (their config.json), independent of models.PRESETS:
# hidden, intermediate, layers, heads, kv heads, vocab, tied embeddings.
QWEN25 = {
    "qwen2.5-0.5b": (896, 4864, 24, 14, 2, 151936, True),
    "qwen2.5-1.5b": (1536, 8960, 28, 12, 2, 151936, True),
    "qwen2.5-7b": (3584, 18944, 28, 28, 4, 152064, False),
    "qwen2.5-14b": (5120, 13824, 48, 40, 8, 152064, False),
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a couple of shared cores torch's thread pool stalls on contention
    (a tiny step takes seconds instead of milliseconds); restored after the module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def n_params(c) -> int:
    """Parameters of a Qwen2 decoder from its config (q/k/v with bias, o_proj without)."""
    h, i, kv = c.hidden_size, c.intermediate_size, c.num_key_value_heads * (c.hidden_size // c.num_attention_heads)
    layer = (h * h + h) + 2 * (h * kv + kv) + h * h + 3 * h * i + 2 * h
    head = 0 if c.tie_word_embeddings else c.vocab_size * h
    return c.vocab_size * h + c.num_hidden_layers * layer + h + head


@pytest.fixture
def no_hub(monkeypatch):
    """Fail the test if anything reaches for transformers' hub / disk loaders."""

    def refuse(*a, **k):
        raise AssertionError("a transformers loader was called")

    for cls in (models.AutoConfig, models.AutoModelForCausalLM, models.AutoTokenizer):
        monkeypatch.setattr(cls, "from_pretrained", refuse)


@pytest.fixture
def aliases(monkeypatch):
    """An empty alias registry for the test, restored afterwards."""
    monkeypatch.setattr(models, "MODEL_ALIASES", {})
    monkeypatch.setattr(model_aliases, "MODEL_ALIASES", models.MODEL_ALIASES)
    return models.MODEL_ALIASES


def ids(n: int = 12, vocab: int = 512) -> torch.Tensor:
    return torch.arange(n).remainder(vocab).view(1, n) * 7 % vocab


# ---- presets -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_config_equals_the_presets_table(name):
    cfg = preset_config(name)
    assert cfg.model_type == "qwen2"
    for key, value in PRESETS[name].items():
        assert getattr(cfg, key) == value, key


@pytest.mark.parametrize("name", list(QWEN25))
def test_qwen_presets_match_the_public_configs(name):
    c = preset_config(name)
    assert (
        c.hidden_size,
        c.intermediate_size,
        c.num_hidden_layers,
        c.num_attention_heads,
        c.num_key_value_heads,
        c.vocab_size,
        c.tie_word_embeddings,
    ) == QWEN25[name]
    assert c.rms_norm_eps == 1e-6 and c.hidden_act == "silu"


def test_qwen_0_5b_has_the_published_parameter_count():
    assert n_params(preset_config("qwen2.5-0.5b")) == 494_032_768


def test_tiny_preset_builds_the_model_its_config_describes():
    model = load_model("tiny", vocab_size=512)
    assert sum(p.numel() for p in model.parameters()) == n_params(model.config)
    assert model.config.vocab_size == 512


def test_preset_config_overrides():
    assert preset_config("tiny", vocab_size=100).vocab_size == 100
    assert preset_config("tiny").vocab_size == PRESETS["tiny"]["vocab_size"]


def test_unknown_preset_is_refused_with_a_suggestion():
    with pytest.raises(UserError, match=r"unknown model preset 'qwen2\.5-0\.5'.*did you mean 'qwen2\.5-0\.5b'"):
        preset_config("qwen2.5-0.5")


# ---- names ---------------------------------------------------------------------------------------


def test_resolve_name_passes_presets_paths_and_hub_ids(tmp_path, no_hub):
    assert resolve_name("tiny") == "tiny"
    assert resolve_name(str(tmp_path)) == str(tmp_path)
    assert resolve_name("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"
    assert resolve_name(tmp_path) == str(tmp_path)  # a Path works too


@pytest.mark.parametrize("call", [resolve_name, model_config, load_model, load_tokenizer])
def test_a_typo_is_refused_before_any_loading(no_hub, call):
    with pytest.raises(UserError) as e:
        call("tinny")
    msg = str(e.value)
    assert "model 'tinny'" in msg and "did you mean 'tiny'" in msg and "owner/name" in msg


def test_register_alias_resolves_lazily(aliases, saved_tiny_model):
    _, model_dir, _ = saved_tiny_model
    calls = []
    register_alias("my-base", lambda: calls.append(1) or model_dir)
    assert calls == []  # not resolved at registration
    assert resolve_name("my-base") == str(model_dir)
    assert calls == [1]
    assert model_config("my-base").hidden_size == PRESETS["tiny"]["hidden_size"]


def test_register_alias_again_replaces_it(aliases, tmp_path):
    register_alias("x", lambda: "/first")
    register_alias("x", lambda: str(tmp_path))
    assert resolve_name("x") == str(tmp_path)


def test_an_alias_never_shadows_a_preset(aliases):
    register_alias("tiny", lambda: "/somewhere")
    assert resolve_name("tiny") == "tiny"


# ---- configs of directories ----------------------------------------------------------------------


def test_model_config_of_a_saved_directory(saved_tiny_model, tiny_tokenizer):
    _, model_dir, _ = saved_tiny_model
    cfg = model_config(str(model_dir))
    assert cfg.model_type == "qwen2" and cfg.hidden_size == 256
    assert cfg.vocab_size == len(tiny_tokenizer)
    by_file = model_config(str(model_dir / "config.json")).to_dict()
    by_file.pop("_name_or_path")
    assert by_file == {k: v for k, v in cfg.to_dict().items() if k != "_name_or_path"}


def test_model_config_of_a_directory_without_config_json(tmp_path):
    (tmp_path / "weights.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match=rf"{tmp_path}: no config\.json here"):
        model_config(str(tmp_path))


def test_model_config_of_invalid_json_names_the_file(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "qwen2",', encoding="utf-8")
    with pytest.raises(UserError, match=rf"{tmp_path / 'config.json'}: not valid JSON"):
        model_config(str(tmp_path))


def test_model_config_of_an_unloadable_config_is_a_user_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    with pytest.raises(UserError, match="cannot load its config"):
        model_config(str(tmp_path))


# ---- weights -------------------------------------------------------------------------------------


def test_load_model_of_a_preset_is_seeded_and_sized_by_vocab():
    a = load_model("tiny", vocab_size=300, seed=1).state_dict()
    b = load_model("tiny", vocab_size=300, seed=1).state_dict()
    c = load_model("tiny", vocab_size=300, seed=2).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["model.embed_tokens.weight"], c["model.embed_tokens.weight"])
    assert a["model.embed_tokens.weight"].shape == (300, PRESETS["tiny"]["hidden_size"])
    assert a["model.embed_tokens.weight"].dtype == torch.float32


def test_load_model_dtype():
    model = load_model("tiny", vocab_size=64, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_load_model_of_a_saved_directory_reproduces_the_logits(saved_tiny_model, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    _, model_dir, _ = saved_tiny_model
    assert list(model_dir.glob("*.safetensors"))
    loaded = load_model(str(model_dir)).eval()
    reference = AutoModelForCausalLM.from_pretrained(model_dir).eval()  # plain transformers
    original = load_model("tiny", vocab_size=len(tiny_tokenizer), seed=0).eval()  # as the fixture built it
    x = ids()
    with torch.no_grad():
        logits = loaded(input_ids=x).logits
        assert torch.equal(logits, reference(input_ids=x).logits)
        assert torch.allclose(logits, original(input_ids=x).logits, atol=1e-6)


class _Trap:
    """Unpickling this touches a file: proof that a pickle was executed."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def test_a_pickled_checkpoint_is_refused_without_unpickling(tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    preset_config("tiny", vocab_size=64).save_pretrained(folder)
    marker = tmp_path / "unpickled"
    torch.save({"model.embed_tokens.weight": torch.zeros(64, 256), "trap": _Trap(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(UserError, match=r"safetensors"):
        load_model(str(folder))
    assert not marker.exists()


# ---- tokenizers ----------------------------------------------------------------------------------


def test_load_tokenizer_of_a_preset_names_model_tokenizer():
    with pytest.raises(UserError, match=r"model 'tiny'.*set model\.tokenizer"):
        load_tokenizer("tiny")


def test_load_tokenizer_of_an_empty_directory(tmp_path):
    with pytest.raises(UserError, match=rf"tokenizer '{tmp_path}': cannot load.*set model\.tokenizer"):
        load_tokenizer(str(tmp_path))


def test_load_tokenizer_of_a_model_directory_without_tokenizer_files(tmp_path):
    """transformers 5 builds an empty tokenizer (len 1) from config.json alone; training on it
    once ended in a ZeroDivisionError."""
    preset_config("tiny").save_pretrained(tmp_path)  # config.json only
    with pytest.raises(UserError, match=r"no tokenizer files.*model\.tokenizer"):
        load_tokenizer(str(tmp_path))


def test_tokenizer_for_prefers_model_tokenizer(saved_tiny_model, tiny_tokenizer, tmp_path):
    _, model_dir, _ = saved_tiny_model
    other = tmp_path / "tok"
    tiny_tokenizer.save_pretrained(other)
    bigger = load_tokenizer(str(other))
    bigger.add_tokens(["<extra-token>"])
    bigger.save_pretrained(other)
    own = tokenizer_for(load_config(None, [f"model.name_or_path={model_dir}"]))
    chosen = tokenizer_for(load_config(None, [f"model.name_or_path={model_dir}", f"model.tokenizer={other}"]))
    preset = tokenizer_for(load_config(None, ["model.name_or_path=tiny", f"model.tokenizer={other}"]))
    assert len(own) == len(tiny_tokenizer)
    assert len(chosen) == len(preset) == len(tiny_tokenizer) + 1
    with pytest.raises(UserError, match=r"model\.tokenizer"):
        tokenizer_for(load_config(None, ["model.name_or_path=tiny"]))


def test_load_tokenizer_round_trip(saved_tiny_model, tiny_tokenizer):
    _, model_dir, _ = saved_tiny_model
    tok = load_tokenizer(str(model_dir))
    text = "今日は良い天気ですね。"
    assert tok.encode(text) == tiny_tokenizer.encode(text)
    assert tok.eos_token == "<|endoftext|>"


# ---- devices -------------------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only fallback")
def test_resolve_device_auto_is_cpu_without_a_gpu():
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_resolve_device_cuda_is_refused_without_a_gpu(name):
    with pytest.raises(UserError, match=rf"key 'device' is '{name}' but no CUDA device"):
        resolve_device(name)


def test_resolve_device_cpu():
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["bogus", "gpu0", ""])
def test_resolve_device_refuses_an_unknown_name_naming_the_key(name):
    with pytest.raises(UserError, match=r"config: key 'device'.*use auto, cpu, cuda or cuda:N"):
        resolve_device(name)


# ---- names that are not there never go to the hub (issue 14, case 7) -----------------------------


@pytest.fixture
def closed_hub(monkeypatch):
    """The hub switched on but unreachable: its endpoint is a closed local port."""
    import huggingface_hub.constants

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")


@pytest.mark.parametrize("call", [resolve_name, model_config, load_model, load_tokenizer])
def test_a_missing_path_is_refused_without_a_hub_lookup(tmp_path, monkeypatch, no_hub, closed_hub, call):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "base").symlink_to(tmp_path / "gone")  # a broken symlink
    for name in ("models/base", "./models/typo", "runs/lora/model", str(tmp_path / "nope")):
        with pytest.raises(UserError, match="no such model directory"):
            call(name)


@pytest.mark.parametrize("call", [model_config, load_model, load_tokenizer])
def test_a_hub_id_fails_at_once_when_the_hub_is_off_or_unreachable(monkeypatch, no_hub, closed_hub, call):
    with pytest.raises(UserError, match="hub cannot be reached"):
        call("owner/model")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="switched off"):
        call("owner/model")
