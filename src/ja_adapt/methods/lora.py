"""LoRA (method=lora): rank-r adapters on the target projections, base frozen; the `lora.*` keys.

The LoRA family shares this module's section, rules, arithmetic and builder: dora.py and
rslora.py fix one `lora.*` key each (`MethodSpec.lora_variant`), qlora.py adds a 4-bit base, and
adalora.py reads lora.rank / alpha / dropout / targets as its initial adapter. The adapter init
variants (lora.init: gaussian, pissa, olora) and the trained embedding rows are lora keys too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ja_adapt.core.errors import closest
from ja_adapt.methods.spec import MethodSpec, Section, key_error, method_spec, options, register, resolve_targets


@dataclass
class LoraConfig:
    rank: int = 16  # r: the adapter's inner dimension (reference: 16)
    alpha: float = 32.0  # scaling numerator; the update is scaled by alpha / rank
    dropout: float = 0.1  # dropout on the adapter input
    targets: str = "qv"  # qv, qkvo, all-linear, or a comma list of module names
    use_dora: bool = False  # DoRA: also learn a magnitude per output row (method=dora sets it)
    use_rslora: bool = False  # rank-stabilised: scale by alpha / sqrt(rank) (method=rslora sets it)
    # adapter init: default (peft's and the LoRA paper's: Kaiming-uniform A, B = 0), gaussian (normal
    # A, B = 0; both start at the base), pissa or olora (from the base weights' principal directions)
    init: str = "default"
    # (A, B from the weights' SVD / QR; the base keeps the residual;
    # the saved adapter is converted to plain LoRA of rank 2r)
    train_embeddings: bool = False  # also train embed_tokens and lm_head (one matrix when tied), saved
    # with the adapter: new tokens need new embeddings
    train_token_ids: list[int] = field(default_factory=list)  # or train only these embedding rows
    # (peft's trainable_token_indices; tied lm_head rows follow)


INITS = ("default", "gaussian", "pissa", "olora")  # lora.init values (peft's init_lora_weights)
# lora.init → peft's init_lora_weights (True: its default, Kaiming-uniform A and B = 0)
INIT_LORA_WEIGHTS = {"default": True, "gaussian": "gaussian", "pissa": "pissa", "olora": "olora"}


def check(cfg) -> None:
    """The lora.* keys; lora.targets only for a method that adapts them."""
    if cfg.lora.rank <= 0:
        raise key_error("lora.rank", f"must be a positive integer, got {cfg.lora.rank}")
    if cfg.lora.alpha <= 0:
        raise key_error("lora.alpha", f"must be positive, got {cfg.lora.alpha}")
    if not 0 <= cfg.lora.dropout < 1:
        raise key_error("lora.dropout", f"must be in [0, 1), got {cfg.lora.dropout}")
    if method_spec(cfg.method).adapts_linears:
        resolve_targets(cfg.lora.targets)
    lo = options(cfg).lora
    if lo.init not in INITS:
        raise key_error("lora.init", f"is '{lo.init}'{closest(lo.init, INITS)}; use {', '.join(INITS)}")
    if any(i < 0 for i in lo.train_token_ids):
        raise key_error("lora.train_token_ids", f"must be token ids >= 0, got {lo.train_token_ids}")
    if lo.train_embeddings and lo.train_token_ids:
        raise key_error(
            "lora.train_token_ids",
            "is set with lora.train_embeddings=true, which already trains every row; set one of them",
        )
    if lo.use_dora and lo.init in ("pissa", "olora"):
        raise key_error(
            "lora.init",
            f"is '{lo.init}' with DoRA; DoRA starts from the base weights' norms, so use lora.init=default or gaussian",
        )


# ---- arithmetic (shapes: arch.Arch; every count is checked against peft's own in tests) ------------


def adapted_linears(arch, options) -> list[tuple[str, int, int]]:
    """(name, in, out) of each per-layer nn.Linear that lora.targets names."""
    names = set(resolve_targets(options.lora.targets))
    return [(n, i, o) for n, i, o in arch.linears if n in names]


def adapted_entry(arch, options) -> frozenset:
    """The adapted Linears: gradients flow from their outputs in every layer."""
    return frozenset(n for n, _, _ in adapted_linears(arch, options))


def _embedding_params(arch, options) -> int:
    """Embedding rows trained beside a LoRA adapter: the whole embedding and output head
    (lora.train_embeddings; one matrix when they are tied), or the rows of lora.train_token_ids."""
    if options.lora.train_embeddings:
        return arch.embedding + arch.lm_head
    return len(set(options.lora.train_token_ids)) * arch.hidden


def _lora_params(arch, options) -> int:
    """r·(in + out) per adapted Linear (A: r×in, B: out×r), + out for DoRA's magnitude vector."""
    lo = options.lora
    per_layer = sum(lo.rank * (i + o) + (o if lo.use_dora else 0) for _, i, o in adapted_linears(arch, options))
    return arch.layers * per_layer + _embedding_params(arch, options)


def _dora_saved(arch, options, act: int, seq: int, masked: bool) -> float:
    """DoRA's output is (m/||W + BA|| - 1)·Wx + (m/||W + BA||)·s·BAx: the magnitude's gradient keeps
    both products' other factor, Wx and s·BAx ([out] each per token)."""
    return sum(2 * o * act for _, _, o in adapted_linears(arch, options)) if options.lora.use_dora else 0.0


def _dora_transient(arch, options) -> float:
    """peft's DoRA recomputes ||W + s·B·A|| per output row in every forward: B·A through an [in, in]
    identity (so B·A itself is never a parameter product FSDP could not see), then s·B·A and W + s·B·A,
    all fp32, freed before the next Linear. Bytes of the largest adapted Linear's: identity, A·I,
    three [out, in] matrices and two [out] vectors (the norm, the magnitude's ratio to it), an upper
    bound of what lives at once (tests/unit/models/test_plan.py measures the real tensors)."""
    if not options.lora.use_dora:
        return 0.0
    r = options.lora.rank
    return max(4.0 * (i * i + i * r + 3 * i * o + 2 * o) for _, i, o in adapted_linears(arch, options))


def _lora_tensors(arch, options) -> int:
    """A and B per adapted Linear, DoRA's magnitude too; the trained embedding matrices or rows."""
    lo = options.lora
    per_linear = 3 if lo.use_dora else 2
    embeddings = (1 if arch.lm_head == 0 else 2) if lo.train_embeddings else (1 if lo.train_token_ids else 0)
    return arch.layers * per_linear * len(adapted_linears(arch, options)) + embeddings


# ---- building ------------------------------------------------------------------------------------


def lora_config(cfg):
    """peft LoRA on the target projections (`lora.*` keys, with the method's variant: dora, rslora);
    the base weights are frozen, except the embeddings lora.train_embeddings / train_token_ids name."""
    from peft import LoraConfig as PeftLoraConfig  # here, not at the top: the methods layer is torch-free

    lo = options(cfg).lora
    extra = {}
    if lo.train_embeddings:  # lm_head too; a tied head stays the embedding (one trained matrix)
        extra = dict(modules_to_save=["embed_tokens", "lm_head"], ensure_weight_tying=True)
    elif lo.train_token_ids:
        extra = dict(trainable_token_indices=sorted(set(lo.train_token_ids)), ensure_weight_tying=True)
    return PeftLoraConfig(
        r=lo.rank,
        lora_alpha=lo.alpha,
        lora_dropout=lo.dropout,
        target_modules=resolve_targets(lo.targets),
        bias="none",
        use_dora=lo.use_dora,
        use_rslora=lo.use_rslora,
        init_lora_weights=INIT_LORA_WEIGHTS[lo.init],
        task_type="CAUSAL_LM",
        **extra,
    )


# What every method of the LoRA family shares (dora.py, rslora.py, qlora.py add their own part).
LORA_FAMILY = dict(
    trains_base=False,
    artifact="adapter",
    adapts_linears=True,
    trainable=_lora_params,
    grad_entry=adapted_entry,
    saved_per_token=_dora_saved,
    trainable_tensors=_lora_tensors,
    forward_transient=_dora_transient,
    merges=True,
    targets_key="lora.targets",
    peft_config=lora_config,
)

register(
    MethodSpec(
        "lora",
        "LoRA adapters on the target projections (peft); base frozen",
        section=Section("lora", LoraConfig),
        check=check,
        **LORA_FAMILY,
    )
)
