"""Parameter counts, a memory model and a time model of a training step, before any GPU is rented.

Parameters are exact: arch.py counts them from the config by arithmetic (no torch; the meta-device
model for architectures it does not write out), and LoRA's trainable parameters are r·(in + out)
for each targeted nn.Linear, the same count peft reports. Memory and time are models; docs/plan.md
states every formula and assumption. The memory model enumerates the tensors a Llama-style decoder
(RMSNorm, rotary, SDPA attention, gated SiLU MLP; Qwen2 among them) saves for backward under
ja-adapt's training step (per layer: layer_memory.py): fp32 weights, autocast to bf16/fp16, a frozen
base in fp32 or bf16 (model.dtype), AdamW, the loss of train/loss.py, transformers' non-reentrant
checkpointing. What a method trains comes from its MethodSpec (ja_adapt.methods). What fits a
GPU of a given size, searched over these models, is recommend.py; the `ja-adapt plan` command
line over both is apps/cli/plan.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ja_adapt.config import (
    METHOD_SECTIONS,
    PRECISIONS,
    ExperimentConfig,
    base_dtype_problem,
    flatten,
    to_dict,
    with_overrides,
)
from ja_adapt.core.errors import UserError, closest
from ja_adapt.methods import SPECS, options, resolve_targets
from ja_adapt.models.arch import Arch, architecture, flops_per_token, peak_flops, recompute_flops_per_token
from ja_adapt.models.layer_memory import F32, LayerSetup, layer_bytes

GIB = 1024**3
GPU_PEAK = {"h100": "H100", "h200": "H200", "a100": "A100"}  # --gpu name -> arch's peak table key
CUDA_CONTEXT_BYTES = GIB // 2  # CUDA context + library workspaces, outside torch's allocator
ALLOCATOR_SHARE = 0.05  # caching-allocator rounding / fragmentation, share of tensors
NF4_BLOCK = 64  # weights per NF4 block, each with one absmax (bitsandbytes' default)
NF4_SCALE_BLOCK = 256  # double quantisation: 8-bit absmaxes, one fp32 scale per 256 blocks


def _targets(arch: Arch, method: str, rank: int, targets: str) -> set[str]:
    """The per-layer nn.Linear names a method puts rank-r adapters on (none for other methods)."""
    if method not in SPECS:
        raise UserError(f"--method '{method}'{closest(method, SPECS)}; use {' or '.join(SPECS)}")
    if not SPECS[method].adapts_linears:
        return set()
    if rank <= 0:
        raise UserError(f"--rank {rank}: the LoRA rank must be a positive integer (e.g. 16)")
    names = set(resolve_targets(targets))
    if not names & {n for n, _, _ in arch.linears}:
        raise UserError(
            f"--targets '{targets}' matches no nn.Linear in a layer; the layer has "
            + ", ".join(n for n, _, _ in arch.linears)
        )
    return names


def method_options(method: str, rank: int = 16, targets: str = "qv", settings: dict | None = None):
    """The method's view of a config (method_spec.options) with these settings: rank and targets
    as lora.rank / lora.targets, `settings` as further config keys ({"lora.use_dora": True,
    "prefix.virtual_tokens": 32}), validated as training validates them."""
    keys = {"method": method, "lora.rank": rank, "lora.targets": targets, **(settings or {})}
    cache_key = json.dumps(keys, sort_keys=True)
    if cache_key not in _OPTIONS:  # the recommender plans hundreds of settings of one method
        _OPTIONS[cache_key] = options(with_overrides(ExperimentConfig(), keys, where="plan"))
    return _OPTIONS[cache_key]


_OPTIONS: dict[str, ExperimentConfig] = {}


def method_settings(cfg: ExperimentConfig) -> dict:
    """A run config's method keys (lora.*, adalora.*, ia3.*, prefix.*), as plan_memory's settings."""
    return {k: v for k, v in flatten(to_dict(cfg)).items() if k.split(".")[0] in METHOD_SECTIONS}


def plan_run_memory(config, cfg: ExperimentConfig) -> dict:
    """plan_memory for the settings a run config trains with (the experiments' plan.json and the
    bench's planned peak), so both plan exactly what `train` builds."""
    return plan_memory(
        config,
        method=cfg.method,
        rank=cfg.lora.rank,
        targets=cfg.lora.targets,
        precision=cfg.precision,
        batch=cfg.train.batch_size,
        seq=cfg.data.seq_len,
        activation_checkpointing=cfg.train.activation_checkpointing,
        loss_chunk_size=cfg.train.loss_chunk_size,
        lora_dropout=cfg.lora.dropout,
        base_dtype=cfg.model.dtype,
        double_quant=cfg.qlora.double_quant,
        settings=method_settings(cfg),
    )


def train_overrides(setup: dict) -> dict:
    """The config keys (`ja-adapt train KEY=VALUE`) that train a plan's setup (plan_memory's
    "setup", or a recommend row): the planner's settings as training names them."""
    keys = {
        "method": setup["method"],
        "precision": setup["precision"],
        "model.dtype": setup["base_dtype"],
        "train.batch_size": setup["batch"],
        "data.seq_len": setup["seq"],
        "train.activation_checkpointing": setup["activation_checkpointing"],
        "train.loss_chunk_size": setup["loss_chunk_size"],
    }
    if setup.get("rank") is not None:
        keys.update(
            {"lora.rank": setup["rank"], "lora.targets": setup["targets"], "lora.dropout": setup["lora_dropout"]}
        )
    if "double_quant" in setup:
        keys["qlora.double_quant"] = setup["double_quant"]
    keys.update(setup.get("settings") or {})
    return keys


def count_parameters(
    config, *, method: str = "lora", rank: int = 16, targets: str = "qv", settings: dict | None = None
) -> dict:
    """Exact parameter counts: total, embedding, non-embedding, trainable (every weight, or the
    method's own: method_spec's `trainable` arithmetic, checked against peft in tests). `settings`:
    further config keys of the method (method_options)."""
    arch = architecture(config)
    _targets(arch, method, rank, targets)
    spec = SPECS[method]
    adapter = 0 if spec.trainable is None else spec.trainable(arch, method_options(method, rank, targets, settings))
    return {
        "total": arch.total,
        "embedding": arch.embedding,
        "lm_head_untied": arch.lm_head,
        "non_embedding": arch.total - arch.embedding - arch.lm_head,
        "matmul": arch.matmul,
        "adapter": adapter,
        "trainable": arch.total if spec.trains_base else adapter,
    }


# ---- memory --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepInputs:
    """The training step plan_memory plans, by its keyword arguments: the method (with lora.rank
    and lora.targets as `rank` and `targets`), precision, batch rows of `seq` tokens (`packed`: rows
    of several documents, so attention gets an explicit mask), checkpointing, the loss's chunk,
    lora.dropout, the frozen base's storage (model.dtype) and qlora.double_quant, and `settings`:
    the method's further config keys (method_options), e.g. {"lora.use_dora": True}."""

    method: str = "lora"
    rank: int = 16
    targets: str = "qv"
    precision: str = "bf16"
    batch: int = 8
    seq: int = 256
    activation_checkpointing: bool = False
    loss_chunk_size: int = 0
    lora_dropout: float = 0.1
    packed: bool = True
    base_dtype: str = "fp32"
    double_quant: bool = True
    settings: dict | None = None


def _check_step(config, st: StepInputs) -> None:
    """Refuse a step training would refuse, naming the planner's flag."""
    if st.precision not in PRECISIONS:
        raise UserError(
            f"--precision '{st.precision}'{closest(st.precision, PRECISIONS)}; use " + ", ".join(PRECISIONS)
        )
    _targets(architecture(config), st.method, st.rank, st.targets)  # names a bad method / rank first
    why = base_dtype_problem(st.method, st.base_dtype, st.precision)
    if why:
        raise UserError(f"--base-dtype (model.dtype) {why}")
    for key, value in (("batch", st.batch), ("seq", st.seq)):
        if value <= 0:
            raise UserError(f"--{key} {value}: must be a positive integer")
    if st.loss_chunk_size < 0:
        raise UserError(f"--loss-chunk-size {st.loss_chunk_size}: use 0 (plain) or a positive row count")


def _layer_setup(arch: Arch, st: StepInputs, spec, opts) -> LayerSetup:
    """What layer_bytes needs to know of the step and its method."""
    autocast = st.precision != "fp32"
    act = 2 if autocast else F32
    masked = st.packed or spec.masks_attention  # attention gets an explicit mask
    adapted = frozenset(_targets(arch, st.method, st.rank, st.targets))
    return LayerSetup(
        full=spec.trains_base,
        adapted=adapted,
        entry=adapted | spec.grad_entry(arch, opts),
        extra=spec.saved_per_token(arch, opts, act, st.seq, masked),
        product=spec.adapter_product,
        reruns_base=spec.adapts_linears and opts.lora.use_dora and st.lora_dropout > 0,
        rank=st.rank,
        dropout=st.lora_dropout,
        act=2 if autocast else F32,
        autocast=autocast,
        masked=masked,
        seq=st.seq,
        copy_frozen=st.base_dtype == "fp32" and not spec.quantized_base,
    )


def _activation_bytes(arch: Arch, st: StepInputs, spec, opts) -> dict:
    """The step's activation side: what every layer saves for backward (or, with checkpointing,
    its input and one layer's re-run), the autocast weight copies and adapter products kept, and
    the loss's working set."""
    s = _layer_setup(arch, st, spec, opts)
    full, autocast, masked, seq = s.full, s.autocast, s.masked, st.seq
    tokens, d, v = st.batch * seq, arch.hidden, arch.vocab
    first, first_copies, first_products = layer_bytes(arch, s, first=True)
    rest, rest_copies, rest_products = layer_bytes(arch, s, first=False)
    chunk = st.loss_chunk_size if 0 < st.loss_chunk_size < tokens else tokens
    # Tensors alive once per step, per token: rotary cos/sin; the embedding's input ids (when it
    # trains); the final norm; the hidden states' gradient the fused loss made in the forward
    # (loss.training_loss keeps neither the lm_head input nor the targets).
    embeddings_train = full or opts.lora.train_embeddings and spec.adapts_linears
    shared = (
        2 * F32 * arch.head_dim + (8 if embeddings_train else 0) + F32 * (d + 1) + (F32 * d if full else 0) + F32 * d
    )
    # the lm_head weight's gradient, made in the forward (full, or a LoRA that trains the head)
    head_grad = F32 * v * d if embeddings_train else 0
    head_copy = 2 * d * v if autocast and (full or st.base_dtype == "fp32") else 0
    if st.activation_checkpointing:  # transformers' non-reentrant checkpoint: each layer keeps its input
        stored = arch.layers * F32 * d + shared + (1 if masked else 0) * seq
        recompute = tokens * rest + rest_copies + rest_products  # one layer re-run during backward
        copies_stored = products_stored = 0.0
    else:
        stored = first + (arch.layers - 1) * rest + shared
        recompute = 0.0
        copies_stored = first_copies + (arch.layers - 1) * rest_copies
        products_stored = first_products + (arch.layers - 1) * rest_products
    # Loss working set: one chunk's fp32 logits and log-probabilities (the latter become
    # softmax - onehot in place), the lm_head weight's gradient and, under autocast, its 2-byte
    # copy (not saved for backward: the fused loss keeps only gradients).
    logits = chunk * v * 2 * F32 + head_grad + head_copy
    return dict(
        tokens=tokens,
        stored=stored,
        recompute=recompute,
        copies_stored=copies_stored,
        products_stored=products_stored,
        head_grad=head_grad,
        logits=logits,
    )


def _base_weight_bytes(arch: Arch, st: StepInputs, spec) -> float:
    """The base's weights as stored: NF4 decoder linears for a quantized method (embeddings, norms,
    biases and an untied head fp32), else every weight in fp32 or model.dtype for a frozen base."""
    if spec.quantized_base:
        linear_weights = arch.layers * sum(i * o for _, i, o in arch.linears)
        return (
            arch.layers * sum(nf4_bytes(i * o, st.double_quant) for _, i, o in arch.linears)
            + (arch.total - linear_weights) * F32
        )
    base_bytes = 2 if st.base_dtype == "bf16" else F32
    return arch.total * (F32 if spec.trains_base else base_bytes)


def _setup_record(st: StepInputs, spec) -> dict:
    """plan_memory's "setup": its inputs (rank and targets only for a method that adapts them,
    double_quant only for a quantized one)."""
    return dict(
        method=st.method,
        rank=st.rank if spec.adapts_linears else None,
        targets=st.targets if spec.adapts_linears else None,
        precision=st.precision,
        batch=st.batch,
        seq=st.seq,
        packed=st.packed,
        activation_checkpointing=st.activation_checkpointing,
        loss_chunk_size=st.loss_chunk_size,
        lora_dropout=st.lora_dropout,
        base_dtype=st.base_dtype,
        settings=dict(st.settings or {}),
        **({"double_quant": st.double_quant} if spec.quantized_base else {}),
    )


def plan_memory(config, **step) -> dict:
    """Predicted peak memory of one training step, in bytes, with its breakdown. `step`: the
    keyword arguments of StepInputs (method, rank, targets, precision, batch, seq, ...).

    A quantized method (qlora) stores each decoder linear's weight as NF4 (`nf4_bytes`, with
    `double_quant` its 8-bit block scales) and every other base weight in fp32, as peft's
    prepare_model_for_kbit_training leaves them; its matmuls save no weight copy for backward.

    Returns {"bytes": {component: bytes}, "peak_allocated_bytes" (tensors: compare with
    torch.cuda.max_memory_allocated), "total_bytes" (plus CUDA context and allocator overhead),
    "saved_for_backward_bytes" (what saved_tensors_hooks would see, plus tensors checkpointing
    keeps alive), "params": count_parameters(...), "setup": the inputs}.
    """
    st = StepInputs(**step)
    _check_step(config, st)
    arch = architecture(config)
    counts = count_parameters(config, method=st.method, rank=st.rank, targets=st.targets, settings=st.settings)
    spec, opts = SPECS[st.method], method_options(st.method, st.rank, st.targets, st.settings)
    acts = _activation_bytes(arch, st, spec, opts)
    trainable = counts["trainable"]
    # AdamW's step counters, 4 bytes per trainable tensor (the method's count, spec.trainable_tensors)
    n_trainable_tensors = arch.n_tensors if spec.trains_base else spec.trainable_tensors(arch, opts)
    parts = {
        "weights": _base_weight_bytes(arch, st, spec) + (counts["adapter"] + spec.frozen_added(arch, opts)) * F32,
        "gradients": trainable * F32,
        "optimizer": trainable * 2 * F32 + n_trainable_tensors * F32,  # AdamW m, v (+ step counters)
        "method_state": spec.state_copies * trainable * F32,  # e.g. AdaLoRA's sensitivities
        "activations": acts["tokens"] * acts["stored"] + acts["products_stored"] + acts["recompute"],
        "autocast_weight_copies": acts["copies_stored"],
        "logits": acts["logits"],
        # made and freed inside one layer's forward (DoRA's weight norm): it raises the step's peak
        # only where it outgrows the loss's working set, which exists only after the forward
        "forward_transient": max(0.0, spec.forward_transient(arch, opts) - acts["logits"]),
    }
    peak = sum(parts.values())
    parts["overhead"] = CUDA_CONTEXT_BYTES + ALLOCATOR_SHARE * peak
    saved = acts["tokens"] * acts["stored"] + acts["products_stored"] + acts["copies_stored"] + acts["head_grad"]
    return {
        "bytes": parts,
        "peak_allocated_bytes": peak,
        "total_bytes": peak + parts["overhead"],
        "saved_for_backward_bytes": saved,
        "params": counts,
        "setup": _setup_record(st, spec),
    }


def nf4_bytes(weights: int, double_quant: bool = True) -> int:
    """Bytes of one weight matrix of `weights` elements stored as bitsandbytes' NF4: two 4-bit codes
    per byte, one absmax per 64-weight block, either fp32 or (double quantisation) 8-bit with one
    fp32 scale per 256 blocks plus one fp32 offset per matrix. The code tables are shared."""
    blocks = -(-weights // NF4_BLOCK)
    scales = blocks + F32 * (-(-blocks // NF4_SCALE_BLOCK) + 1) if double_quant else F32 * blocks
    return -(-weights // 2) + scales


# ---- time ----------------------------------------------------------------------------------------


def plan_time(
    config,
    *,
    method: str,
    trainable: int,
    seq: int,
    tokens: float,
    gpu: str,
    mfu: float,
    activation_checkpointing: bool = False,
    peak: float | None = None,
) -> dict:
    """Seconds to train on `tokens` tokens at a given utilisation of a named GPU's peak (arch's
    table), or of `peak` FLOP/s when given (e.g. a CPU's measured matmul throughput).

    `mfu` is the share of the peak spent on the model's FLOPs plus checkpointing's recompute (the
    hardware's work); without checkpointing the two are the same. The returned "mfu" is the model
    FLOPs utilisation that results (recompute is not model FLOPs).
    """
    if peak is None and gpu not in GPU_PEAK:
        raise UserError(f"--gpu '{gpu}'{closest(gpu, GPU_PEAK)}; use {', '.join(GPU_PEAK)}")
    if peak is not None and peak <= 0:
        raise UserError(f"--peak-flops {peak}: must be a positive FLOP/s figure, e.g. 1e11")
    if not 0 < mfu <= 1:
        raise UserError(f"--mfu {mfu}: must be in (0, 1], e.g. 0.4")
    fpt = flops_per_token(config, method=method, trainable_params=trainable, seq_len=seq)
    hardware = fpt + (recompute_flops_per_token(config, seq_len=seq) if activation_checkpointing else 0.0)
    device = gpu if peak is None else "given peak"
    peak = peak if peak is not None else peak_flops(GPU_PEAK[gpu])
    return {
        "flops_per_token": fpt,
        "hardware_flops_per_token": hardware,
        "tokens": tokens,
        "gpu": device,
        "peak_flops": peak,
        "utilisation": mfu,
        "mfu": mfu * fpt / hardware,
        "tokens_per_s": mfu * peak / hardware,
        "seconds": tokens * hardware / (mfu * peak),
    }
