"""The experiment configuration's schema: one dataclass per concern, every default with a one-line
comment. `ExperimentConfig` is composed of this module's sections and the config sections the
registered methods own (each in its module, ja_adapt.methods.<name>: lora.*, qlora.*, ...)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ja_adapt.core.errors import UserError
from ja_adapt.methods import SPECS

PRECISIONS = ("fp32", "bf16", "fp16")  # fp32, or autocast to bf16 / fp16 with fp32 master weights
BASE_DTYPES = ("fp32", "bf16")  # storage of a frozen base's weights (model.dtype)


@dataclass
class ModelConfig:
    name_or_path: str = "tiny"  # a preset (tiny, qwen2.5-0.5b, ...), a local directory or a hub id
    tokenizer: str | None = None  # tokenizer directory / hub id; default: the model's own
    trust_remote_code: bool = False  # run model code shipped with a checkpoint (off: safety)
    attn_implementation: str = "sdpa"  # transformers attention backend (sdpa, eager, flash_attention_2)
    dtype: str = "fp32"  # storage of the frozen base weights: fp32, or bf16 (half the
    # memory; methods with a frozen base, under precision=bf16).
    # Trainable weights and AdamW's state stay fp32.


@dataclass
class AlpacaConfig:
    """Which fields of an Alpaca-style record (data/records.py) hold what; the prompt is the
    instruction, then a blank line and the input when there is one, then a newline."""

    instruction: str = "instruction"  # the task, in the prompt
    input: str = "input"  # optional context, appended to the prompt ('' or absent: none)
    output: str = "output"  # the answer: the completion, which carries the loss


@dataclass
class DataConfig:
    paths: list[str] = field(default_factory=list)  # training corpora: .txt, .jsonl, directories, datasets
    eval_paths: list[str] = field(default_factory=list)  # corpora only evaluated (cross-domain, forgetting)
    seen_paths: list[str] = field(default_factory=list)  # corpora the model saw before (its pretraining):
    # evaluation text overlapping them is removed, as for data.paths
    decontaminate: bool = True  # drop evaluation documents contained in a training document (data/dedup.py)
    seq_len: int = 256  # tokens per packed row
    val_fraction: float = 0.05  # share of each domain held out for validation
    test_fraction: float = 0.05  # share of each domain held out for the final test
    require_japanese: bool = True  # refuse a training corpus without Japanese characters
    cache_dir: str | None = None  # token-file cache; default: the user cache directory
    num_workers: int = 1  # tokenization worker processes
    weights: list[float] = field(default_factory=list)  # per data.paths entry: how often its training
    # documents are seen per epoch (2 = twice, 0.5 = a fixed half); [] = all 1
    completion_only_loss: bool = True  # supervised records: only completion / assistant tokens carry
    # loss (prompt, system / user turns and template scaffolding masked)
    alpaca: AlpacaConfig = field(default_factory=AlpacaConfig)  # field names of Alpaca-style records


@dataclass
class OptimConfig:
    lr: float = 3e-4  # peak learning rate (reference experiment: 3e-4)
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    beta1: float = 0.9  # AdamW first-moment decay
    beta2: float = 0.999  # AdamW second-moment decay
    eps: float = 1e-8  # AdamW epsilon
    warmup_steps: int = 200  # linear warmup from 0 to lr (reference: 200)
    schedule: str = "cosine"  # cosine (to min_lr_ratio * lr) or constant after warmup
    min_lr_ratio: float = 0.0  # final lr as a fraction of the peak
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    fused: bool = False  # torch's fused AdamW; also lets the step skip host syncs (train/step.py)


@dataclass
class TrainConfig:
    max_steps: int = 1000  # optimizer steps
    batch_size: int = 8  # packed rows per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    eval_every: int = 100  # steps between validation passes; 0 disables
    eval_batches: int = 20  # validation micro-batches per pass (0 = the whole split)
    save_every: int = 200  # steps between checkpoints; 0 saves only at the end
    keep_checkpoints: int = 0  # most recent checkpoints kept (0 = all, for per-checkpoint eval)
    early_stopping_patience: int = 0  # stop after this many validations without improvement; 0 = off
    max_nonfinite: int = 5  # consecutive non-finite losses before the run stops
    log_every: int = 1  # steps between metrics.jsonl records (with optim.fused, the
    # loss is read back from the GPU only then)
    loss_chunk_size: int = 0  # rows per chunked-cross-entropy chunk; 0 = plain cross-entropy
    activation_checkpointing: bool = False  # recompute layer activations in backward to save memory
    compile: bool = False  # torch.compile the decoder (minutes of compiling on CPU)
    emulate_bf16: str = "auto"  # bf16 on a CPU without bf16 GEMM: auto, on, off (models/precision.py)
    strategy: str = "auto"  # multi-process: auto (= ddp), ddp or fsdp (docs/scaling.md)
    tensorboard: bool = True  # also write TensorBoard event files
    progress: bool = True  # progress bar on a terminal


@dataclass
class BucketConfig:
    """The sentence-complexity rule of evaluate/buckets.py (docs/metrics.md#complexity-buckets)."""

    long_chars: int = 40  # a sentence this long (non-whitespace characters) is "long"
    min_commas: int = 2  # this many 、/， make it "clause-rich"
    kanji_ratio: float = 0.4  # this share of kanji makes it "kanji-dense"
    min_criteria: int = 2  # criteria that must hold for "complex"


@dataclass
class DownstreamConfig:
    """Downstream tasks run through lm-evaluation-harness (evaluate/downstream.py, docs/metrics.md#downstream)."""

    tasks: list[str] = field(default_factory=list)  # lm-eval task names (`ja_adapt_mc_translation` ships with
    # ja-adapt; any other needs local data below); empty = none
    data: list[str] = field(default_factory=list)  # local data: TASK=DIR (files named train*, valid*, test*
    # .json/.jsonl) or TASK=SPLIT:FILE[,SPLIT:FILE]; nothing is downloaded
    num_fewshot: int | None = None  # lm-eval's num_fewshot; None = each task's own default
    limit: int | None = None  # lm-eval's limit: the first this many items of each task; None = all
    seed: int = 0  # lm-eval's random, numpy, torch and few-shot sampler seeds
    batch_size: int = 16  # requests per forward pass (lm-eval's batch_size)

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
    max_length: int = 256  # tokens per likelihood window
    stride: int = 128  # tokens between window starts; later windows give >= max_length-stride context
    batch_size: int = 8  # windows per forward pass
    chunk_size: int = 0  # rows per fp32 logits chunk (0 = all at once); bounds [rows, vocab] memory
    gen_prompts: int = 100  # generation prompts cut from Japanese documents (0 = skip generation)
    gen_prefix_chars: int = 64  # prompt: the first this many characters of a document
    gen_ref_chars: int = 64  # reference: the next this many characters
    gen_max_new_tokens: int = 256  # cap on the decoding budget (budget: 4 tokens per reference character, the
    # most a byte-level model may need; each prompt stops at its reference's length)
    gen_batch_size: int = 16  # prompts per batched greedy decoding (left padding; results do not depend on it)
    bootstrap_resamples: int = 1000  # bootstrap resamples: every interval, paired CIs and sacrebleu's paired test
    seed: int = 0  # prompt selection and bootstrap seed (and sampling, when on)
    supervised: bool = True  # evaluate held-out supervised records (generation; likelihood_only evals skip it)
    sft_examples: int = 0  # supervised examples evaluated per model (0 = every held-out one)
    sft_max_new_tokens: int = 64  # response budget; a response also stops at EOS / end of turn
    sft_do_sample: bool = False  # supervised responses: greedy (false) or sampled, seeded by eval.seed
    sft_temperature: float = 1.0  # sampling temperature (eval.sft_do_sample only)
    sft_top_p: float = 1.0  # nucleus sampling mass (eval.sft_do_sample only)
    target_lang: str = "ja"  # the adapted language: scripts, generation, buckets
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
            raise UserError(
                f"eval.stride: must be in 1..max_length-1 (got {self.stride} with "
                f"max_length {self.max_length}); otherwise tokens would go unscored"
            )
        for key in ("chunk_size", "gen_prompts", "gen_prefix_chars", "gen_ref_chars", "gen_max_new_tokens"):
            if getattr(self, key) < 0:
                raise UserError(f"eval.{key}: must be >= 0 (got {getattr(self, key)})")
        if self.gen_prompts and min(self.gen_prefix_chars, self.gen_ref_chars, self.gen_max_new_tokens) < 1:
            raise UserError(
                "eval.gen_prefix_chars / gen_ref_chars / gen_max_new_tokens: must be >= 1 when eval.gen_prompts > 0"
            )
        if self.sft_examples < 0:
            raise UserError(f"eval.sft_examples: must be >= 0 (got {self.sft_examples})")
        if self.sft_temperature <= 0 or not 0 < self.sft_top_p <= 1:
            raise UserError(
                f"eval.sft_temperature / sft_top_p: need temperature > 0 and top_p in "
                f"(0, 1] (got {self.sft_temperature}, {self.sft_top_p})"
            )
        if not 0 < self.buckets.kanji_ratio <= 1:
            raise UserError(f"eval.buckets.kanji_ratio: must be in (0, 1] (got {self.buckets.kanji_ratio})")
        self.downstream.check()

    def likelihood_only(self) -> EvalConfig:
        """Likelihood only (no generation, no supervised responses, no downstream tasks): for
        per-checkpoint curves."""
        return dataclasses.replace(
            self, gen_prompts=0, supervised=False, downstream=dataclasses.replace(self.downstream, tasks=[])
        )


@dataclass
class VocabConfig:
    """Vocabulary extension (models/vocab.py, docs/vocabulary.md): Japanese tokens learnt on the training
    split are added to the tokenizer, and their embedding rows start from the old pieces' mean."""

    extend: int = 0  # new Japanese tokens to add (0: the tokenizer as it is)
    min_frequency: int = 2  # a new token must occur this often in the training split


_SECTIONS = [s.section for s in SPECS.values() if s.section is not None]
# config sections that configure a peft method (the planner's method settings); a section that
# configures the base's storage (qlora.*) is not one of them
METHOD_SECTIONS = tuple(s.key for s in _SECTIONS if not s.base_storage)


def _section(key: str, cls: type) -> tuple[str, type, dataclasses.Field]:
    return key, cls, field(default_factory=cls)


def _experiment_config() -> type:
    """ExperimentConfig: the run's own keys, then the sections in the order saved configs list them
    (the methods' adapter sections after `model`, a base-storage section after `eval`)."""
    fields = [
        ("method", str, field(default="lora")),  # the adaptation method: a name in ja_adapt.methods.SPECS
        ("precision", str, field(default="bf16")),  # fp32, bf16 (autocast) or fp16 (autocast + loss scaling)
        ("seed", int, field(default=0)),  # fixes initialisation, data order and dropout
        ("device", str, field(default="auto")),  # auto (cuda if available), cpu, cuda, cuda:N
        _section("model", ModelConfig),
        *(_section(s.key, s.cls) for s in _SECTIONS if not s.base_storage),
        _section("data", DataConfig),
        _section("optim", OptimConfig),
        _section("train", TrainConfig),
        _section("eval", EvalConfig),
        *(_section(s.key, s.cls) for s in _SECTIONS if s.base_storage),
        _section("vocab", VocabConfig),
    ]
    cls = dataclasses.make_dataclass("ExperimentConfig", fields)
    cls.__module__ = __name__  # make_dataclass names no module before Python 3.12 (pickling needs it)
    cls.__doc__ = "A whole run's configuration; `ja_adapt.config` reads, validates and writes it."
    return cls


ExperimentConfig = _experiment_config()
