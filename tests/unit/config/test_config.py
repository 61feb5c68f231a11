"""ja_adapt.config (+ the methods' keys and rules, ja_adapt.methods): defaults, YAML / key=value /
flag overrides, refusals naming the key, copies, hashing, the save round trip, and every shipped YAML
(configs/, docs/accelerate/)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ja_adapt.config import (
    EvalConfig,
    ExperimentConfig,
    config_hash,
    diff_keys,
    flatten,
    from_dict,
    load_config,
    parse_override,
    read_yaml,
    save_config,
    to_dict,
    validate,
    with_overrides,
)
from ja_adapt.core.errors import UserError
from ja_adapt.methods import spec as method_spec
from ja_adapt.methods.spec import TARGET_PRESETS, resolve_targets

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = sorted((ROOT / "configs").glob("*.yaml"))
ACCELERATE = sorted((ROOT / "docs" / "accelerate").glob("*.yaml"))


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---- defaults ------------------------------------------------------------------------------------


def test_defaults_are_the_documented_values_and_valid():
    cfg = load_config()
    assert (cfg.method, cfg.precision, cfg.seed, cfg.device) == ("lora", "bf16", 0, "auto")
    assert (cfg.model.name_or_path, cfg.model.tokenizer, cfg.model.trust_remote_code) == ("tiny", None, False)
    assert (cfg.lora.rank, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.targets) == (16, 32.0, 0.1, "qv")
    assert (cfg.optim.lr, cfg.optim.warmup_steps, cfg.optim.schedule) == (3e-4, 200, "cosine")
    assert (cfg.train.max_steps, cfg.train.batch_size, cfg.train.grad_accum) == (1000, 8, 1)
    assert cfg.data.paths == [] and cfg.data.seq_len == 256 and cfg.data.require_japanese is True
    assert (cfg.eval.max_length, cfg.eval.stride, cfg.eval.forgetting_langs) == (256, 128, ["en", "zh"])
    assert (cfg.eval.buckets.long_chars, cfg.eval.buckets.min_criteria) == (40, 2)
    assert to_dict(cfg) == to_dict(ExperimentConfig())


def test_default_lists_are_not_shared_between_configs():
    a, b = ExperimentConfig(), ExperimentConfig()
    a.data.paths.append("x.jsonl")
    a.eval.forgetting_langs.append("ko")
    assert b.data.paths == [] and b.eval.forgetting_langs == ["en", "zh"]


# ---- YAML files ----------------------------------------------------------------------------------


def test_yaml_overrides_only_the_keys_it_sets(tmp_path):
    path = write(
        tmp_path,
        "method: full\nlora:\n  rank: 8\noptim:\n  lr: 1e-4\n"
        "data:\n  paths: [a.jsonl, 'corpus:ja']\neval:\n  buckets:\n    kanji_ratio: 0.5\n",
    )
    cfg = load_config(path)
    assert cfg.method == "full" and cfg.lora.rank == 8
    assert cfg.optim.lr == 1e-4 and isinstance(cfg.optim.lr, float)  # YAML 1.1 reads 1e-4 as a string
    assert cfg.data.paths == ["a.jsonl", "corpus:ja"]
    assert cfg.eval.buckets.kanji_ratio == 0.5 and cfg.eval.buckets.long_chars == 40
    assert cfg.lora.alpha == 32.0 and cfg.optim.schedule == "cosine"  # untouched defaults


def test_yaml_with_a_python_tag_is_refused_not_executed(tmp_path):
    marker = tmp_path / "executed"
    path = write(tmp_path, f'seed: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(UserError, match=re.escape(str(path))):
        load_config(path)
    assert not marker.exists()


def test_yaml_syntax_error_names_the_file_and_line(tmp_path):
    path = write(tmp_path, "seed: 1\nlora:\n  rank: [8\n")
    with pytest.raises(UserError) as e:
        read_yaml(path)
    assert re.search(re.escape(str(path)) + r":\d+: invalid YAML", str(e.value))


def test_yaml_that_is_not_a_mapping_is_refused(tmp_path):
    path = write(tmp_path, "- seed\n- 1\n")
    with pytest.raises(UserError, match="must be a mapping"):
        read_yaml(path)


def test_missing_yaml_file_is_refused_naming_it(tmp_path):
    with pytest.raises(UserError, match=r"nope\.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_empty_yaml_is_the_defaults(tmp_path):
    assert to_dict(load_config(write(tmp_path, "# nothing\n"))) == to_dict(ExperimentConfig())


def test_unknown_key_in_yaml_names_the_file_and_suggests(tmp_path):
    path = write(tmp_path, "lora:\n  rnak: 8\n")
    with pytest.raises(UserError) as e:
        load_config(path)
    assert str(path) in str(e.value) and "'lora.rnak'" in str(e.value)
    assert "did you mean 'lora.rank'" in str(e.value)


# ---- key=value overrides -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("lora.rank=16", ("lora.rank", 16)),
        ("data.paths=[a.jsonl,b/]", ("data.paths", ["a.jsonl", "b/"])),
        ("train.tensorboard=false", ("train.tensorboard", False)),
        ("model.name_or_path=a=b", ("model.name_or_path", "a=b")),  # split at the first '='
        (" seed = 3", ("seed", 3)),
        ("model.tokenizer=", ("model.tokenizer", "")),
    ],
)
def test_parse_override(text, expected):
    assert parse_override(text) == expected


def test_parse_override_without_equals_is_refused():
    with pytest.raises(UserError, match=r"override 'lora\.rank': expected key=value"):
        parse_override("lora.rank")


def test_scalar_override_of_a_list_key_becomes_a_list():
    assert load_config(None, ["data.paths=one.jsonl"]).data.paths == ["one.jsonl"]


def test_precedence_defaults_yaml_overrides_flags(tmp_path):
    path = write(tmp_path, "seed: 1\nlora:\n  rank: 8\n  alpha: 8\noptim:\n  lr: 1.0e-3\n")
    cfg = load_config(
        path, ["lora.rank=4", "seed=2", "lora.dropout=0.2"], {"seed": 3, "lora.alpha": None, "method": "full"}
    )
    assert cfg.seed == 3  # flag beats override beats YAML
    assert cfg.lora.rank == 4  # override beats YAML
    assert cfg.lora.alpha == 8.0  # a None flag does not reset the YAML value
    assert cfg.optim.lr == 1e-3  # YAML beats the default
    assert cfg.lora.dropout == 0.2 and cfg.method == "full"
    assert cfg.train.max_steps == 1000  # default


@pytest.mark.parametrize(
    "override, key, hint",
    [
        ("lora.rnak=4", "lora.rnak", "lora.rank"),
        ("sed=4", "sed", "seed"),
        ("train.zzz=1", "train.zzz", None),
        ("eval.buckets.long_char=30", "eval.buckets.long_char", "eval.buckets.long_chars"),
    ],
)
def test_unknown_key_is_refused_with_the_closest_valid_key(override, key, hint):
    with pytest.raises(UserError) as e:
        load_config(None, [override])
    msg = str(e.value)
    assert f"unknown key '{key}'" in msg
    if hint:
        assert f"did you mean '{hint}'?" in msg
    else:
        assert "did you mean" not in msg


@pytest.mark.parametrize(
    "override, key, kind",
    [
        ("lora.rank=abc", "lora.rank", "an integer"),
        ("lora.rank=2.5", "lora.rank", "an integer"),
        ("lora.rank=true", "lora.rank", "an integer"),
        ("lora.alpha=true", "lora.alpha", "a number"),
        ("optim.lr=fast", "optim.lr", "a number"),
        ("train.tensorboard=maybe", "train.tensorboard", "true or false"),
        ("train.tensorboard=1", "train.tensorboard", "true or false"),
        ("data.paths={a: 1}", "data.paths", "a list"),
        ("model.name_or_path=[a, b]", "model.name_or_path", "a string"),
    ],
)
def test_wrong_typed_value_is_refused_naming_the_key(override, key, kind):
    with pytest.raises(UserError, match=rf"key '{re.escape(key)}' must be {kind}"):
        load_config(None, [override])


def test_integral_float_is_accepted_for_an_int_key():
    assert load_config(None, ["train.max_steps=300.0"]).train.max_steps == 300


def test_section_set_to_a_scalar_is_refused():
    with pytest.raises(UserError, match=r"key 'lora' is a section; set its keys \(lora\.KEY\)"):
        load_config(None, ["lora=4"])
    with pytest.raises(UserError, match=r"key 'eval\.buckets' is a section"):
        load_config(None, ["eval.buckets=3"])


def test_sub_key_of_a_value_is_refused():
    with pytest.raises(UserError, match=r"key 'lora\.rank' has no sub-keys"):
        load_config(None, ["lora.rank.x=4"])


def test_section_set_to_a_mapping_sets_its_keys():
    cfg = load_config(None, ["lora={rank: 4, targets: qkvo}", "eval.buckets={min_commas: 3}"])
    assert (cfg.lora.rank, cfg.lora.targets, cfg.lora.alpha) == (4, "qkvo", 32.0)
    assert cfg.eval.buckets.min_commas == 3 and cfg.eval.buckets.long_chars == 40


def test_nested_eval_bucket_keys():
    cfg = load_config(
        None, ["eval.buckets.long_chars=30", "eval.buckets.kanji_ratio=0.25", "eval.buckets.min_criteria=1"]
    )
    assert (cfg.eval.buckets.long_chars, cfg.eval.buckets.kanji_ratio, cfg.eval.buckets.min_criteria) == (30, 0.25, 1)
    with pytest.raises(UserError, match=r"eval\.buckets\.kanji_ratio"):
        load_config(None, ["eval.buckets.kanji_ratio=0"])
    with pytest.raises(UserError, match=r"eval\.buckets\.min_criteria"):
        load_config(None, ["eval.buckets.min_criteria=0"])


# ---- cross-field validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["precision=fp8"], "precision"),
        (["lora.rank=0"], "lora.rank"),
        (["lora.alpha=0"], "lora.alpha"),
        (["lora.dropout=1.0"], "lora.dropout"),
        (["optim.lr=0"], "optim.lr"),
        (["optim.schedule=linear"], "optim.schedule"),
        (["optim.warmup_steps=1000"], "optim.warmup_steps"),  # not shorter than train.max_steps
        (["train.max_steps=0"], "train.max_steps"),
        (["train.batch_size=0"], "train.batch_size"),
        (["train.eval_every=-1"], "train.eval_every"),
        (["train.emulate_bf16=maybe"], "train.emulate_bf16"),
        (["train.strategy=zero3"], "train.strategy"),
        (["train.strategy=fsdp", "precision=fp16"], "train.strategy"),
        (["method=adalora", "train.strategy=fsdp"], "train.strategy"),  # its rank allocator: not in shards
        (["data.seq_len=1"], "data.seq_len"),
        (["data.val_fraction=0.5"], "data.val_fraction"),
        (["data.num_workers=0"], "data.num_workers"),
    ],
)
def test_invalid_value_is_refused_naming_the_key(overrides, key):
    with pytest.raises(UserError, match=rf"config: key '{re.escape(key)}'"):
        load_config(None, overrides)


def test_unknown_method_is_refused_naming_the_key_and_listing_the_methods():
    with pytest.raises(UserError) as e:
        load_config(None, ["method=lroa"])
    msg = str(e.value)
    assert "key 'method'" in msg and "'lroa'" in msg and "did you mean 'lora'" in msg
    assert method_spec.SPECS and all(name in msg.split("known:")[1] for name in method_spec.SPECS)


def test_every_registered_method_validates():
    for name in method_spec.SPECS:
        assert load_config(None, [f"method={name}"]).method == name


def test_lora_targets_are_checked_only_for_a_method_that_adapts_linears():
    with pytest.raises(UserError, match=r"key 'lora\.targets'"):
        load_config(None, ["method=lora", "lora.targets=q-proj"])
    assert load_config(None, ["method=full", "lora.targets=q-proj"]).lora.targets == "q-proj"


# ---- method_spec.resolve_targets -----------------------------------------------------------------


def test_resolve_targets_presets():
    assert resolve_targets("qv") == ["q_proj", "v_proj"]
    assert resolve_targets("qkvo") == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert resolve_targets("all-linear") == [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ]


def test_resolve_targets_returns_a_copy_of_the_preset():
    resolve_targets("qv").append("o_proj")
    assert TARGET_PRESETS["qv"] == ["q_proj", "v_proj"]


def test_resolve_targets_comma_list():
    assert resolve_targets("q_proj, gate_proj,") == ["q_proj", "gate_proj"]


@pytest.mark.parametrize("bad", ["", " , ", "q-proj", "q_proj;v_proj", "qv v"])
def test_resolve_targets_bad_list_is_refused_naming_the_key(bad):
    with pytest.raises(UserError, match=r"key 'lora\.targets'.*use qv, qkvo, all-linear"):
        resolve_targets(bad)


def test_resolve_targets_suggests_a_preset():
    with pytest.raises(UserError, match="did you mean 'all-linear'"):
        resolve_targets("all-linears!")


# ---- EvalConfig.check ----------------------------------------------------------------------------


def test_eval_defaults_pass_check_and_light_drops_generation():
    e = EvalConfig()
    e.check()
    light = e.likelihood_only()
    assert light.gen_prompts == 0 and e.gen_prompts == 100
    assert light.max_length == e.max_length and light.buckets == e.buckets


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"stride": 256}, "eval.stride"),  # stride == max_length: tokens unscored
        ({"stride": 300}, "eval.stride"),
        ({"stride": 0}, "eval.stride"),
        ({"max_length": 0}, "eval.max_length"),
        ({"batch_size": 0}, "eval.batch_size"),
        ({"bootstrap_resamples": 0}, "eval.bootstrap_resamples"),
        ({"chunk_size": -1}, "eval.chunk_size"),
        ({"gen_prompts": -1}, "eval.gen_prompts"),
        ({"gen_prefix_chars": 0}, "eval.gen_prefix_chars"),
        ({"gen_max_new_tokens": 0}, "gen_max_new_tokens"),
    ],
)
def test_eval_check_refuses_naming_the_key(changes, key):
    e = EvalConfig(**changes)
    with pytest.raises(UserError, match=re.escape(key)):
        e.check()


def test_eval_generation_lengths_may_be_zero_without_generation():
    EvalConfig(gen_prompts=0, gen_prefix_chars=0, gen_max_new_tokens=0).check()


def test_validate_runs_the_eval_check():
    with pytest.raises(UserError, match=r"eval\.stride"):
        load_config(None, ["eval.max_length=64", "eval.stride=64"])
    assert load_config(None, ["eval.max_length=64", "eval.stride=63"]).eval.stride == 63


# ---- copies, flatten, hash, round trip, diff -----------------------------------------------------


def test_with_overrides_returns_a_validated_copy_and_leaves_the_original():
    base = load_config(None, ["data.paths=[a.jsonl]"])
    before = to_dict(base)
    new = with_overrides(base, {"lora.rank": 8, "seed": 1, "data.paths": ["b.jsonl"]})
    assert (new.lora.rank, new.seed, new.data.paths) == (8, 1, ["b.jsonl"])
    assert to_dict(base) == before
    new.data.paths.append("c.jsonl")  # no shared lists either
    new.eval.buckets.long_chars = 1
    assert to_dict(base) == before


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"lora.rank": 0}, r"key 'lora\.rank'"),
        ({"lora.rnk": 8}, r"grid: unknown key 'lora\.rnk' \(did you mean 'lora\.rank'\?\)"),
        ({"method": "adapter"}, r"key 'method'"),
    ],
)
def test_with_overrides_refuses_an_invalid_value_naming_the_key(overrides, match):
    base = ExperimentConfig()
    before = to_dict(base)
    with pytest.raises(UserError, match=match):
        with_overrides(base, overrides)
    assert to_dict(base) == before


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": "x"}) == {"a.b": 1, "a.c.d": [1, 2], "e": "x"}
    assert flatten({}) == {}


def test_flatten_refuses_a_non_string_key():
    with pytest.raises(UserError, match="config key 1 is not a string"):
        flatten({"lora": {1: 8}})


def test_config_hash_is_equal_for_equal_configs_and_changes_with_any_key():
    a, b = ExperimentConfig(), load_config()
    assert config_hash(a) == config_hash(b)
    assert re.fullmatch(r"[0-9a-f]{16}", config_hash(a))
    hashes = {config_hash(a)}
    for change in ({"seed": 1}, {"lora.rank": 8}, {"eval.buckets.long_chars": 41}, {"data.paths": ["x.jsonl"]}):
        hashes.add(config_hash(with_overrides(a, change)))
    assert len(hashes) == 5


def test_save_config_round_trip(tmp_path):
    cfg = load_config(
        None,
        [
            "method=full",
            "precision=fp32",
            "seed=7",
            "lora.alpha=12.5",
            "optim.lr=2.5e-5",
            "optim.eps=1e-10",
            "data.paths=[日本語.jsonl,'corpus:ja']",
            "model.tokenizer=tok/dir",
            "eval.forgetting_langs=[en]",
            "eval.buckets.kanji_ratio=0.3",
            "train.compile=true",
        ],
    )
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    back = from_dict(read_yaml(path))
    validate(back)
    assert to_dict(back) == to_dict(cfg)
    assert config_hash(back) == config_hash(cfg)
    assert "日本語.jsonl" in path.read_text(encoding="utf-8")  # written as text, not escaped


def test_from_dict_refuses_unknown_keys_naming_where():
    with pytest.raises(UserError, match=r"run/config\.yaml: unknown key 'lora\.rnak'"):
        from_dict({"lora": {"rnak": 8}}, "run/config.yaml")


def test_diff_keys():
    a = ExperimentConfig()
    assert diff_keys(a, ExperimentConfig()) == []
    b = with_overrides(a, {"seed": 1, "lora.rank": 8, "eval.buckets.min_commas": 3})
    assert diff_keys(a, b) == ["seed", "lora.rank", "eval.buckets.min_commas"]


# ---- shipped YAML ---------------------------------------------------------------------------------


def test_shipped_configs_exist():
    assert {p.name for p in SHIPPED} >= {"demo.yaml", "qwen2.5-0.5b-ja.yaml", "tiny-ja.yaml"}
    assert len(ACCELERATE) >= 2


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_config_loads_and_every_key_is_applied(path):
    cfg = load_config(path)
    applied = flatten(to_dict(cfg))
    for key, value in flatten(read_yaml(path)).items():
        assert applied[key] == value, key


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_config_header_shows_the_command_that_runs_it(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("#")
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    rel = f"configs/{path.name}"
    assert any(re.search(rf"ja-adapt [a-z]+ .*--config {re.escape(rel)}(\s|$)", h) for h in header), header


@pytest.mark.parametrize("path", ACCELERATE, ids=lambda p: p.name)
def test_accelerate_configs_load_with_accelerate(path):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    cfg = load_config_from_file(str(path))
    assert cfg.distributed_type == DistributedType.MULTI_GPU
    assert cfg.mixed_precision == "no"  # a string: unquoted `no` would be YAML's false
    assert cfg.num_processes >= cfg.num_machines >= 1


FLOAT_KEYS = [k for k, v in flatten(to_dict(ExperimentConfig())).items() if isinstance(v, float)]


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "nan", "inf"])
@pytest.mark.parametrize("key", FLOAT_KEYS)
def test_every_float_key_refuses_a_non_finite_value_naming_the_key(key, value):
    """`optim.lr=.nan` once ended in a ValueError traceback and `optim.lr=.inf` trained NaN weights."""
    with pytest.raises(UserError, match=rf"'{re.escape(key)}' must be a finite number"):
        load_config(None, [f"{key}={value}"])


def test_non_finite_value_in_yaml_is_refused_naming_the_file_and_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: .inf\n")
    with pytest.raises(UserError, match=r"c\.yaml: key 'optim.lr' must be a finite number"):
        load_config(path)
