"""The experiment configuration: one dataclass per concern, YAML overrides, `key=value` overrides.

A YAML file holds overrides only; every default lives here with a one-line comment. Keys are dotted
paths (`lora.rank`, `optim.lr`); unknown keys and values of the wrong type are refused as they are
set (`_set`), cross-field rules in `validate`, which every config that reaches training passes
through (load_config, from_dict + validate, with_overrides). Errors name the key and, for a
misspelling, the closest valid key. `EvalConfig.check` is the evaluation part of `validate`, also
run by stand-alone evaluation (`ja-adapt eval`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ja_adapt.core.errors import UserError, closest
from ja_adapt.methods.spec import method_spec, options, resolve_targets

QLORA_CPU_KERNELS = ("auto", "packed", "unpacked")   # bitsandbytes_gate.fit_cpu_kernels
PRECISIONS = ("fp32", "bf16", "fp16")   # fp32, or autocast to bf16 / fp16 with fp32 master weights
BASE_DTYPES = ("fp32", "bf16")          # storage of a frozen base's weights (model.dtype)

# model.name_or_path aliases: a name → a function returning a model directory, called when a config
# naming it is loaded (models.resolve_name). The command line registers `demo-base`.
MODEL_ALIASES: dict[str, Callable[[], str]] = {}


def register_model_alias(name: str, resolve: Callable[[], str]) -> None:
    """Let `name` stand for the directory `resolve()` returns. Registering a name again replaces
    its function."""
    MODEL_ALIASES[name] = resolve


@dataclass
class ModelConfig:
    name_or_path: str = "tiny"          # a preset (tiny, qwen2.5-0.5b, ...), a local directory or a hub id
    tokenizer: str | None = None        # tokenizer directory / hub id; default: the model's own
    trust_remote_code: bool = False     # run model code shipped with a checkpoint (off: safety)
    attn_implementation: str = "sdpa"   # transformers attention backend (sdpa, eager, flash_attention_2)
    dtype: str = "fp32"                 # storage of the frozen base weights: fp32, or bf16 (half the
                                        # memory; methods with a frozen base, under precision=bf16).
                                        # Trainable weights and AdamW's state stay fp32.


@dataclass
class LoraConfig:
    rank: int = 16                      # r: the adapter's inner dimension (reference: 16)
    alpha: float = 32.0                 # scaling numerator; the update is scaled by alpha / rank
    dropout: float = 0.1                # dropout on the adapter input
    targets: str = "qv"                 # qv, qkvo, all-linear, or a comma list of module names
    use_dora: bool = False              # DoRA: also learn a magnitude per output row (method=dora sets it)
    use_rslora: bool = False            # rank-stabilised: scale by alpha / sqrt(rank) (method=rslora sets it)
    # adapter init: default (peft's and the LoRA paper's: Kaiming-uniform A, B = 0), gaussian (normal
    # A, B = 0; both start at the base), pissa or olora (from the base weights' principal directions)
    init: str = "default"
                                        # (A, B from the weights' SVD / QR; the base keeps the residual;
                                        # the saved adapter is converted to plain LoRA of rank 2r)
    train_embeddings: bool = False      # also train embed_tokens and lm_head (one matrix when tied), saved
                                        # with the adapter: new tokens need new embeddings
    train_token_ids: list[int] = field(default_factory=list)  # or train only these embedding rows
                                        # (peft's trainable_token_indices; tied lm_head rows follow)


METHOD_SECTIONS = ("lora", "adalora", "ia3", "prefix")   # config sections that configure a peft method
INITS = ("default", "gaussian", "pissa", "olora")  # lora.init values (peft's init_lora_weights)


@dataclass
class AdaLoraConfig:
    """AdaLoRA (method=adalora): starts at rank lora.rank on lora.targets, prunes to target_rank."""
    target_rank: int = 8                # average rank per adapted matrix once the budget is allocated
    tinit: float = 0.1                  # share of train.max_steps trained at full rank before pruning
    tfinal: float = 0.2                 # share of train.max_steps trained at the final budget
    delta_t: int = 10                   # steps between rank reallocations
    beta1: float = 0.85                 # EMA of the sensitivity scores
    beta2: float = 0.85                 # EMA of their uncertainty


@dataclass
class Ia3Config:
    """IA3 (method=ia3): learned vectors scaling the activations of some projections."""
    targets: str = "k_proj,v_proj,down_proj"    # projections scaled (a preset or comma list)
    feedforward: str = "down_proj"      # of those, the ones scaled on their input (feed-forward), not
                                        # their output; "" = none


@dataclass
class PrefixConfig:
    """Prefix tuning (method=prefix): learned keys and values prepended in every layer."""
    virtual_tokens: int = 16            # prefix length: key/value positions per layer


@dataclass
class AlpacaConfig:
    """Which fields of an Alpaca-style record (data/records.py) hold what; the prompt is the
    instruction, then a blank line and the input when there is one, then a newline."""
    instruction: str = "instruction"    # the task, in the prompt
    input: str = "input"                # optional context, appended to the prompt ('' or absent: none)
    output: str = "output"              # the answer: the completion, which carries the loss


@dataclass
class DataConfig:
    paths: list[str] = field(default_factory=list)       # training corpora: .txt, .jsonl, directories, datasets
    eval_paths: list[str] = field(default_factory=list)  # corpora only evaluated (cross-domain, forgetting)
    seen_paths: list[str] = field(default_factory=list)  # corpora the model saw before (its pretraining):
                                        # evaluation text overlapping them is removed, as for data.paths
    decontaminate: bool = True          # drop evaluation documents contained in a training document (data/dedup.py)
    seq_len: int = 256                  # tokens per packed row
    val_fraction: float = 0.05          # share of each domain held out for validation
    test_fraction: float = 0.05         # share of each domain held out for the final test
    require_japanese: bool = True       # refuse a training corpus without Japanese characters
    cache_dir: str | None = None        # token-file cache; default: the user cache directory
    num_workers: int = 1                # tokenization worker processes
    weights: list[float] = field(default_factory=list)  # per data.paths entry: how often its training
                                        # documents are seen per epoch (2 = twice, 0.5 = a fixed half); [] = all 1
    completion_only_loss: bool = True   # supervised records: only completion / assistant tokens carry
                                        # loss (prompt, system / user turns and template scaffolding masked)
    alpaca: AlpacaConfig = field(default_factory=AlpacaConfig)  # field names of Alpaca-style records


@dataclass
class OptimConfig:
    lr: float = 3e-4                    # peak learning rate (reference experiment: 3e-4)
    weight_decay: float = 0.0           # AdamW decoupled weight decay
    beta1: float = 0.9                  # AdamW first-moment decay
    beta2: float = 0.999                # AdamW second-moment decay
    eps: float = 1e-8                   # AdamW epsilon
    warmup_steps: int = 200             # linear warmup from 0 to lr (reference: 200)
    schedule: str = "cosine"            # cosine (to min_lr_ratio * lr) or constant after warmup
    min_lr_ratio: float = 0.0           # final lr as a fraction of the peak
    grad_clip: float = 1.0              # max global gradient norm; 0 disables clipping
    fused: bool = False                 # torch's fused AdamW; also lets the step skip host syncs (train.py)


@dataclass
class TrainConfig:
    max_steps: int = 1000               # optimizer steps
    batch_size: int = 8                 # packed rows per micro-batch
    grad_accum: int = 1                 # micro-batches per optimizer step
    eval_every: int = 100               # steps between validation passes; 0 disables
    eval_batches: int = 20              # validation micro-batches per pass (0 = the whole split)
    save_every: int = 200               # steps between checkpoints; 0 saves only at the end
    keep_checkpoints: int = 0           # most recent checkpoints kept (0 = all, for per-checkpoint eval)
    early_stopping_patience: int = 0    # stop after this many validations without improvement; 0 = off
    max_nonfinite: int = 5              # consecutive non-finite losses before the run stops
    log_every: int = 1                  # steps between metrics.jsonl records (with optim.fused, the
                                        # loss is read back from the GPU only then)
    loss_chunk_size: int = 0            # rows per chunked-cross-entropy chunk; 0 = plain cross-entropy
    activation_checkpointing: bool = False  # recompute layer activations in backward to save memory
    compile: bool = False               # torch.compile the decoder (minutes of compiling on CPU)
    emulate_bf16: str = "auto"          # bf16 on a CPU without bf16 GEMM: auto, on, off (precision.py)
    strategy: str = "auto"              # multi-process: auto (= ddp), ddp or fsdp (docs/scaling.md)
    tensorboard: bool = True            # also write TensorBoard event files
    progress: bool = True               # progress bar on a terminal


@dataclass
class BucketConfig:
    """The sentence-complexity rule of evaluate/buckets.py (docs/metrics.md#complexity-buckets)."""
    long_chars: int = 40                # a sentence this long (non-whitespace characters) is "long"
    min_commas: int = 2                 # this many 、/， make it "clause-rich"
    kanji_ratio: float = 0.4            # this share of kanji makes it "kanji-dense"
    min_criteria: int = 2               # criteria that must hold for "complex"


@dataclass
class DownstreamConfig:
    """Downstream tasks run through lm-evaluation-harness (evaluate/downstream.py, docs/metrics.md#downstream)."""
    tasks: list[str] = field(default_factory=list)  # lm-eval task names (`ja_adapt_mc_translation` ships with
                                        # ja-adapt; any other needs local data below); empty = none
    data: list[str] = field(default_factory=list)   # local data: TASK=DIR (files named train*, valid*, test*
                                        # .json/.jsonl) or TASK=SPLIT:FILE[,SPLIT:FILE]; nothing is downloaded
    num_fewshot: int | None = None      # lm-eval's num_fewshot; None = each task's own default
    limit: int | None = None            # lm-eval's limit: the first this many items of each task; None = all
    seed: int = 0                       # lm-eval's random, numpy, torch and few-shot sampler seeds
    batch_size: int = 16                # requests per forward pass (lm-eval's batch_size)

    def check(self) -> None:
        """Raise UserError naming the first invalid key (task data: evaluate/downstream.py)."""
        if self.num_fewshot is not None and self.num_fewshot < 0:
            raise UserError(f"eval.downstream.num_fewshot: must be >= 0 (got {self.num_fewshot})")
        if self.limit is not None and self.limit < 1:
            raise UserError(f"eval.downstream.limit: must be >= 1 or null (got {self.limit})")
        if self.batch_size < 1:
            raise UserError(f"eval.downstream.batch_size: must be >= 1 (got {self.batch_size})")
        for t in self.tasks:
            if not t or "," in t or "=" in t:
                raise UserError(f"eval.downstream.tasks: '{t}' is not a task name")


@dataclass
class EvalConfig:
    max_length: int = 256             # tokens per likelihood window
    stride: int = 128                 # tokens between window starts; later windows give >= max_length-stride context
    batch_size: int = 8               # windows per forward pass
    chunk_size: int = 0               # rows per fp32 logits chunk (0 = all at once); bounds [rows, vocab] memory
    gen_prompts: int = 100            # generation prompts cut from Japanese documents (0 = skip generation)
    gen_prefix_chars: int = 64        # prompt: the first this many characters of a document
    gen_ref_chars: int = 64           # reference: the next this many characters
    gen_max_new_tokens: int = 256     # cap on the decoding budget (budget: 4 tokens per reference character, the
                                      # most a byte-level model may need; each prompt stops at its reference's length)
    gen_batch_size: int = 16          # prompts per batched greedy decoding (left padding; results do not depend on it)
    bootstrap_resamples: int = 1000   # bootstrap resamples: every interval, paired CIs and sacrebleu's paired test
    seed: int = 0                     # prompt selection and bootstrap seed (and sampling, when on)
    supervised: bool = True           # evaluate held-out supervised records (generation; light evals skip it)
    sft_examples: int = 0             # supervised examples evaluated per model (0 = every held-out one)
    sft_max_new_tokens: int = 64      # response budget; a response also stops at EOS / end of turn
    sft_do_sample: bool = False       # supervised responses: greedy (false) or sampled, seeded by eval.seed
    sft_temperature: float = 1.0      # sampling temperature (eval.sft_do_sample only)
    sft_top_p: float = 1.0            # nucleus sampling mass (eval.sft_do_sample only)
    target_lang: str = "ja"           # the adapted language: scripts, generation, buckets
    forgetting_langs: list[str] = field(default_factory=lambda: ["en", "zh"])  # languages for retention
    buckets: BucketConfig = field(default_factory=BucketConfig)  # sentence-complexity rule
    downstream: DownstreamConfig = field(default_factory=DownstreamConfig)  # lm-eval tasks

    def check(self) -> None:
        """Raise UserError naming the first invalid key."""
        for key in ("max_length", "batch_size", "gen_batch_size", "bootstrap_resamples", "sft_max_new_tokens"):
            if getattr(self, key) < 1:
                raise UserError(f"eval.{key}: must be >= 1 (got {getattr(self, key)})")
        if self.buckets.min_criteria < 1:
            raise UserError(f"eval.buckets.min_criteria: must be >= 1 (got {self.buckets.min_criteria})")
        if not 1 <= self.stride < self.max_length:
            raise UserError(f"eval.stride: must be in 1..max_length-1 (got {self.stride} with "
                            f"max_length {self.max_length}); otherwise tokens would go unscored")
        for key in ("chunk_size", "gen_prompts", "gen_prefix_chars", "gen_ref_chars", "gen_max_new_tokens"):
            if getattr(self, key) < 0:
                raise UserError(f"eval.{key}: must be >= 0 (got {getattr(self, key)})")
        if self.gen_prompts and min(self.gen_prefix_chars, self.gen_ref_chars, self.gen_max_new_tokens) < 1:
            raise UserError("eval.gen_prefix_chars / gen_ref_chars / gen_max_new_tokens: must be >= 1 "
                            "when eval.gen_prompts > 0")
        if self.sft_examples < 0:
            raise UserError(f"eval.sft_examples: must be >= 0 (got {self.sft_examples})")
        if self.sft_temperature <= 0 or not 0 < self.sft_top_p <= 1:
            raise UserError(f"eval.sft_temperature / sft_top_p: need temperature > 0 and top_p in "
                            f"(0, 1] (got {self.sft_temperature}, {self.sft_top_p})")
        if not 0 < self.buckets.kanji_ratio <= 1:
            raise UserError(f"eval.buckets.kanji_ratio: must be in (0, 1] (got {self.buckets.kanji_ratio})")
        self.downstream.check()

    def light(self) -> "EvalConfig":
        """Likelihood only (no generation, no supervised responses, no downstream tasks): for
        per-checkpoint curves."""
        return dataclasses.replace(self, gen_prompts=0, supervised=False,
                                   downstream=dataclasses.replace(self.downstream, tasks=[]))


@dataclass
class QLoraConfig:
    # method=qlora: LoRA (the lora.* keys) over a base whose decoder linears bitsandbytes stores as
    # 4-bit NF4 in blocks of 64 weights, each block with its absmax scale.
    double_quant: bool = True           # store the absmax scales 8-bit (QLoRA's double quantisation:
                                        # ~0.127 instead of 0.5 bits per weight); false: fp32 scales
    cpu_kernel: str = "auto"            # on CPU: auto (bitsandbytes' packed AVX512-BF16 kernel where
                                        # the CPU has it and the layer's shape fits), packed, unpacked
                                        # (the two paths round differently: pin one to compare CPUs)


@dataclass
class VocabConfig:
    """Vocabulary extension (vocab.py, docs/vocabulary.md): Japanese tokens learnt on the training
    split are added to the tokenizer, and their embedding rows start from the old pieces' mean."""
    extend: int = 0                     # new Japanese tokens to add (0: the tokenizer as it is)
    min_frequency: int = 2              # a new token must occur this often in the training split


@dataclass
class ExperimentConfig:
    method: str = "lora"                # lora, full, dora, rslora, adalora, ia3, prefix (method_spec.SPECS)
    precision: str = "bf16"             # fp32, bf16 (autocast) or fp16 (autocast + loss scaling)
    seed: int = 0                       # fixes initialisation, data order and dropout
    device: str = "auto"                # auto (cuda if available), cpu, cuda, cuda:N
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    adalora: AdaLoraConfig = field(default_factory=AdaLoraConfig)
    ia3: Ia3Config = field(default_factory=Ia3Config)
    prefix: PrefixConfig = field(default_factory=PrefixConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    qlora: QLoraConfig = field(default_factory=QLoraConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig)


# ---- reading -------------------------------------------------------------------------------------

def _fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


@functools.cache             # resolving string annotations is slow, and every override pays it
def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, hint: Any, key: str, where: str) -> Any:
    """Check / convert one value against its annotation; raise a UserError naming the key."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], key, where)
    if origin is list:
        (inner,) = typing.get_args(hint)
        if isinstance(value, (str, int, float)):
            value = [value]
        if not isinstance(value, list):
            raise UserError(f"{where}: key '{key}' must be a list, got {value!r}")
        return [_coerce(v, inner, key, where) for v in value]
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{where}: key '{key}' must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise UserError(f"{where}: key '{key}' must be an integer, got {value!r}")
    if hint is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):        # YAML 1.1 reads '1e-4' (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise UserError(f"{where}: key '{key}' must be a number, got {value!r}")
        if not math.isfinite(number):       # .nan / .inf would train to NaN weights
            raise UserError(f"{where}: key '{key}' must be a finite number, got {value!r}")
        return number
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise UserError(f"{where}: key '{key}' must be a string, got {value!r}")
    return value


def _set(cfg: Any, dotted: str, value: Any, where: str) -> None:
    """Set `a.b.c = value` on nested dataclasses, refusing unknown keys with the closest match."""
    parts = dotted.split(".")
    obj, prefix = cfg, ""
    for i, part in enumerate(parts):
        fields = _fields(type(obj))
        if part not in fields:
            valid = [prefix + name for name in fields]
            raise UserError(f"{where}: unknown key '{dotted}'{closest(prefix + part, valid)}")
        hint = _hints(type(obj))[part]
        if i == len(parts) - 1:
            if dataclasses.is_dataclass(getattr(obj, part)):
                if not isinstance(value, dict):
                    raise UserError(f"{where}: key '{dotted}' is a section; set its keys ({dotted}.KEY)")
                for k, v in value.items():
                    _set(cfg, f"{dotted}.{k}", v, where)
                return
            setattr(obj, part, _coerce(value, hint, dotted, where))
            return
        obj = getattr(obj, part)
        if not dataclasses.is_dataclass(obj):
            raise UserError(f"{where}: key '{'.'.join(parts[:i + 1])}' has no sub-keys")
        prefix += part + "."


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """{"lora": {"rank": 8}} → {"lora.rank": 8}; lists are values."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if not isinstance(k, str):
            raise UserError(f"config key {k!r} is not a string")
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def read_yaml(path: str | Path) -> dict:
    """A YAML mapping (safe loader), with the file and line named on error."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else "?"
        raise UserError(f"{path}:{line}: invalid YAML ({e.problem}); fix the syntax") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read YAML ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: a config must be a mapping of keys to values")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` → (key, YAML-parsed value): `lora.rank=16`, `data.paths=[a.jsonl,b/]`."""
    if "=" not in text:
        raise UserError(f"override '{text}': expected key=value (e.g. lora.rank=16)")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_config(path: str | Path | None = None, overrides: list[str] = (),
                flags: dict[str, Any] | None = None) -> ExperimentConfig:
    """Defaults ← YAML file ← `key=value` overrides ← command-line flags; then validate."""
    cfg = ExperimentConfig()
    if path is not None:
        for key, value in flatten(read_yaml(path)).items():
            _set(cfg, key, value, str(path))
    for text in overrides:
        key, value = parse_override(text)
        _set(cfg, key, value, "override")
    for key, value in (flags or {}).items():
        if value is not None:
            _set(cfg, key, value, "flag")
    validate(cfg)
    return cfg


def base_dtype_problem(method: str, dtype: str, precision: str, strategy: str = "auto") -> str | None:
    """Why a frozen-base storage dtype cannot train with these settings (None: it can). Shared by
    `validate` (key model.dtype) and the planner (--base-dtype), so a plan is one training accepts."""
    if dtype not in BASE_DTYPES:
        return f"is '{dtype}'; use {' or '.join(BASE_DTYPES)}"
    if dtype == "fp32":
        return None
    if method_spec(method).quantized_base:
        return (f"is bf16, but method '{method}' stores its base 4-bit (NF4) and keeps the rest fp32 "
                "(peft's prepare_model_for_kbit_training); use model.dtype=fp32")
    if method_spec(method).trains_base:
        return (f"is bf16, but method '{method}' trains every base weight, and trained weights stay "
                "fp32; use model.dtype=fp32 (or a frozen-base method such as lora)")
    if precision != "bf16":
        return (f"is bf16, which computes in bf16: set precision=bf16 (precision is '{precision}'), "
                "or use model.dtype=fp32")
    if strategy == "fsdp":
        return "is bf16, which train.strategy=fsdp does not shard (mixed dtypes); use ddp or fp32"
    return None


def validate_method_keys(cfg: ExperimentConfig) -> None:
    """The keys of the LoRA variants and of the other peft methods, checked whatever the method
    (a grid may switch methods); each error names the key."""
    def bad(key: str, why: str) -> UserError:
        return UserError(f"config: key '{key}' {why}")

    lo = options(cfg).lora
    if lo.init not in INITS:
        raise bad("lora.init", f"is '{lo.init}'{closest(lo.init, INITS)}; use {', '.join(INITS)}")
    if any(i < 0 for i in lo.train_token_ids):
        raise bad("lora.train_token_ids", f"must be token ids >= 0, got {lo.train_token_ids}")
    if lo.train_embeddings and lo.train_token_ids:
        raise bad("lora.train_token_ids", "is set with lora.train_embeddings=true, which already trains "
                  "every row; set one of them")
    if lo.use_dora and lo.init in ("pissa", "olora"):
        raise bad("lora.init", f"is '{lo.init}' with DoRA; DoRA starts from the base weights' norms, "
                  "so use lora.init=default or gaussian")
    if cfg.method == "adalora" and (lo.use_dora or lo.train_embeddings or lo.train_token_ids
                                    or lo.init != "default"):
        raise bad("method", "is adalora, which has none of the lora.use_dora / train_embeddings / "
                  "train_token_ids / init variants; leave them at their defaults")
    a = cfg.adalora
    if a.target_rank < 1 or (cfg.method == "adalora" and a.target_rank > cfg.lora.rank):
        raise bad("adalora.target_rank", f"must be in 1..lora.rank ({cfg.lora.rank}: AdaLoRA's initial "
                  f"rank), got {a.target_rank}")
    if a.tinit < 0 or a.tfinal < 0 or a.tinit + a.tfinal >= 1:
        raise bad("adalora.tinit", f"and adalora.tfinal must be >= 0 with a sum below 1 (got {a.tinit} "
                  f"+ {a.tfinal}): the budget schedule runs between them")
    if a.delta_t < 1:
        raise bad("adalora.delta_t", f"must be >= 1, got {a.delta_t}")
    for key in ("beta1", "beta2"):
        if not 0 < getattr(a, key) < 1:
            raise bad(f"adalora.{key}", f"must be in (0, 1), got {getattr(a, key)}")
    ia3 = set(resolve_targets(cfg.ia3.targets, "ia3.targets"))
    if cfg.ia3.feedforward and not set(resolve_targets(cfg.ia3.feedforward, "ia3.feedforward")) <= ia3:
        raise bad("ia3.feedforward", f"'{cfg.ia3.feedforward}' must name only modules of ia3.targets "
                  f"('{cfg.ia3.targets}')")
    if cfg.qlora.cpu_kernel not in QLORA_CPU_KERNELS:
        raise bad("qlora.cpu_kernel", f"is '{cfg.qlora.cpu_kernel}'{closest(cfg.qlora.cpu_kernel, QLORA_CPU_KERNELS)}; "
                  f"use {', '.join(QLORA_CPU_KERNELS)}")
    if cfg.prefix.virtual_tokens < 1:
        raise bad("prefix.virtual_tokens", f"must be >= 1, got {cfg.prefix.virtual_tokens}")
    validate_vocab(cfg)


def validate_vocab(cfg: ExperimentConfig) -> None:
    """vocab.extend: a count, and a method whose new embedding rows train (full fine-tuning, or a
    LoRA method through peft's trainable token rows)."""
    v = cfg.vocab
    if v.extend < 0:
        raise UserError(f"config: key 'vocab.extend' must be a positive number of new tokens (or 0: "
                        f"no extension), got {v.extend}")
    if v.min_frequency < 1:
        raise UserError(f"config: key 'vocab.min_frequency' must be >= 1, got {v.min_frequency}")
    spec = method_spec(cfg.method)
    if v.extend and not (spec.trains_base or (spec.adapts_linears and cfg.method != "adalora")):
        raise UserError(f"config: key 'vocab.extend' is {v.extend} with method '{cfg.method}', whose new "
                        "embedding rows would not train; use method full or a LoRA method (lora, dora, "
                        "rslora, qlora)")


def validate(cfg: ExperimentConfig) -> None:
    """Cross-field checks; each error names the key and what would be valid."""
    def bad(key: str, why: str) -> UserError:
        return UserError(f"config: key '{key}' {why}")

    spec = method_spec(cfg.method)
    if cfg.precision not in PRECISIONS:
        raise bad("precision", f"is '{cfg.precision}'; use one of {', '.join(PRECISIONS)}")
    if cfg.lora.rank <= 0:
        raise bad("lora.rank", f"must be a positive integer, got {cfg.lora.rank}")
    if cfg.lora.alpha <= 0:
        raise bad("lora.alpha", f"must be positive, got {cfg.lora.alpha}")
    if not 0 <= cfg.lora.dropout < 1:
        raise bad("lora.dropout", f"must be in [0, 1), got {cfg.lora.dropout}")
    if spec.adapts_linears:
        resolve_targets(cfg.lora.targets)
    validate_method_keys(cfg)
    why = base_dtype_problem(cfg.method, cfg.model.dtype, cfg.precision, cfg.train.strategy)
    if why:
        raise bad("model.dtype", why)
    if spec.quantized_base and cfg.train.strategy == "fsdp":
        raise bad("train.strategy", f"fsdp does not shard method {cfg.method}'s 4-bit base here; use ddp")
    if spec.checkpoint_state and cfg.train.strategy == "fsdp":
        raise bad("train.strategy", f"is fsdp, whose sharded checkpoints do not carry method "
                  f"{cfg.method}'s training state (a run could not resume); use ddp")
    if cfg.optim.lr <= 0:
        raise bad("optim.lr", f"must be positive, got {cfg.optim.lr}")
    if cfg.optim.schedule not in ("cosine", "constant"):
        raise bad("optim.schedule", f"is '{cfg.optim.schedule}'; use cosine or constant")
    if cfg.optim.warmup_steps < 0:
        raise bad("optim.warmup_steps", "must be ≥ 0")
    if cfg.train.max_steps <= 0:
        raise bad("train.max_steps", f"must be positive, got {cfg.train.max_steps}")
    if cfg.optim.warmup_steps >= cfg.train.max_steps:
        raise bad("optim.warmup_steps", f"({cfg.optim.warmup_steps}) is not shorter than training "
                  f"(train.max_steps={cfg.train.max_steps}); lower it or train longer")
    for key in ("batch_size", "grad_accum", "max_nonfinite", "log_every"):
        if getattr(cfg.train, key) <= 0:
            raise bad(f"train.{key}", f"must be positive, got {getattr(cfg.train, key)}")
    for key in ("eval_every", "eval_batches", "save_every", "keep_checkpoints",
                "early_stopping_patience", "loss_chunk_size"):
        if getattr(cfg.train, key) < 0:
            raise bad(f"train.{key}", f"must be ≥ 0, got {getattr(cfg.train, key)}")
    if cfg.train.emulate_bf16 not in ("auto", "on", "off"):
        raise bad("train.emulate_bf16", f"is '{cfg.train.emulate_bf16}'; use auto, on or off")
    if cfg.train.strategy not in ("auto", "ddp", "fsdp"):
        raise bad("train.strategy", f"is '{cfg.train.strategy}'; use auto, ddp or fsdp")
    if cfg.train.strategy == "fsdp" and cfg.precision == "fp16":
        raise bad("train.strategy", "fsdp does not support precision=fp16 (loss scaling of sharded "
                  "gradients); use precision=bf16 or fp32")
    if cfg.data.seq_len <= 1:
        raise bad("data.seq_len", f"must be > 1, got {cfg.data.seq_len}")
    for key in ("val_fraction", "test_fraction"):
        if not 0 <= getattr(cfg.data, key) < 0.5:
            raise bad(f"data.{key}", f"must be in [0, 0.5), got {getattr(cfg.data, key)}")
    if cfg.data.num_workers <= 0:
        raise bad("data.num_workers", "must be positive")
    if cfg.data.weights and len(cfg.data.weights) != len(cfg.data.paths):
        raise bad("data.weights", f"has {len(cfg.data.weights)} entries for {len(cfg.data.paths)} "
                  "data.paths; give one weight per path, or none")
    if any(w < 0 for w in cfg.data.weights) or (cfg.data.weights and not any(cfg.data.weights)):
        raise bad("data.weights", f"must be >= 0 and not all 0, got {cfg.data.weights}")
    cfg.eval.check()


# ---- writing -------------------------------------------------------------------------------------

def to_dict(cfg: ExperimentConfig) -> dict:
    return dataclasses.asdict(cfg)


def config_hash(cfg: ExperimentConfig) -> str:
    """sha256 of the resolved config (JSON with sorted keys), first 16 hex digits."""
    blob = json.dumps(to_dict(cfg), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def save_config(cfg: ExperimentConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True), encoding="utf-8")


def from_dict(d: dict, where: str = "config") -> ExperimentConfig:
    cfg = ExperimentConfig()
    for key, value in flatten(d).items():
        _set(cfg, key, value, where)
    return cfg


def with_overrides(cfg: ExperimentConfig, overrides: dict[str, Any], where: str = "grid") -> ExperimentConfig:
    """A validated copy of `cfg` with dotted keys set: {"lora.rank": 8, "seed": 1}."""
    new = from_dict(to_dict(cfg), where)
    for key, value in overrides.items():
        _set(new, key, value, where)
    validate(new)
    return new


def diff_keys(a: ExperimentConfig, b: ExperimentConfig) -> list[str]:
    fa, fb = flatten(to_dict(a)), flatten(to_dict(b))
    return [k for k in fa if fa.get(k) != fb.get(k)]
