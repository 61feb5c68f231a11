"""Next-token negative log-likelihood per position, the one loss behind training and evaluation.

A batch is a dict of three [B, T] int64 tensors:
  input_ids     token ids of packed rows
  position_ids  restart at 0 at every document start, so attention never crosses documents
                (transformers builds a block-diagonal causal mask from them when use_cache=False)
  targets       the token to predict at each position (input_ids shifted left inside a document),
                IGNORE where there is none: a document's last token, the end of a row, padding

The NLL of a target is the fp32 cross-entropy of its next-token logits, computed in `_head_chunk`
and nowhere else. Two entry points:
  token_nll      per-token NLL [B, T] (evaluation, validation; differentiable by plain autograd)
  training_loss  scale * sum of the targets' NLL, the scalar the training step backpropagates,
                 through the fused lm_head + cross-entropy below (and the per-token NLL, detached)

Fused lm_head + cross-entropy (training): for a summed loss, d loss / d logits = scale *
(softmax - onehot) is known in the forward pass, so each row chunk's logits are made, turned into
the gradients of the hidden states and of the lm_head weight, and dropped. The [B*T, vocab] fp32
logits (151,936 columns for Qwen2.5) never exist whole and backward runs no softmax and no GEMM of
its own (checkpointed chunks would recompute the logits). Measured in docs/bench.md. Written by
hand because neither transformers nor torch ships a fused linear cross-entropy for CPU and CUDA.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from ja_adapt.data.packing import IGNORE
from ja_adapt.models.build import base_model, prompt_prefix


def _decoder_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The transformer body and lm_head of a causal LM, seen through a peft wrapper if any."""
    base = base_model(model)
    return base.model, base.get_output_embeddings()


def _head_weights(head: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight, bias) of the lm_head. Under peft's wrappers (lora.train_embeddings,
    lora.train_token_ids) `weight` is the one in use (trained rows merged in, differentiably); the
    trainable-token wrapper has no `bias` of its own, its wrapped layer does."""
    bias = getattr(head, "bias", None)
    if bias is None and hasattr(head, "original_module"):
        bias = getattr(head.original_module, "bias", None)
    return head.weight, bias


def packed_attention_mask(position_ids: torch.Tensor) -> torch.Tensor:
    """[B, 1, T, T] bool (True = attend): causal within each document of a packed row.

    A document starts wherever the position does not go up by one, as in transformers'
    find_packed_sequence_indices. Built here, on the device, because transformers' own detection
    reads a tensor back to the host in every forward (a GPU sync); given a 4D mask it uses it as is.
    """
    first = position_ids[:, :1] - 1
    doc = (torch.diff(position_ids, prepend=first, dim=-1) != 1).cumsum(-1)
    t = position_ids.shape[-1]
    causal = torch.ones(t, t, dtype=torch.bool, device=position_ids.device).tril()
    return ((doc[:, :, None] == doc[:, None, :]) & causal)[:, None]


def _hidden(model: torch.nn.Module, batch: dict[str, torch.Tensor]):
    """The final hidden states [B*T, d], the flat targets [B*T], the lm_head, and (B, T)."""
    body, head = _decoder_and_head(model)
    sdpa = getattr(body.config, "_attn_implementation", None) == "sdpa"  # takes a bool 4D mask
    # Prefix tuning: the learned keys and values enter as the cache the batch continues, as peft's
    # own forward (and generate) passes them: every query attends to all of them, and positions
    # continue after them.
    cache, n_prefix = prompt_prefix(model, batch["input_ids"].shape[0])
    mask = None
    if sdpa:
        mask = packed_attention_mask(batch["position_ids"])
        if n_prefix:
            mask = F.pad(mask, (n_prefix, 0), value=True)
    hidden = body(
        input_ids=batch["input_ids"],
        position_ids=batch["position_ids"] + n_prefix,
        attention_mask=mask,
        cache=cache,
        use_cache=cache is not None,
    ).last_hidden_state
    b, t, d = hidden.shape
    return hidden.reshape(b * t, d), batch["targets"].reshape(b * t), head, (b, t)


def _head_chunk(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(fp32 log-probabilities [rows, vocab], NLL [rows], 0 at IGNORE): the loss's one definition
    (F.cross_entropy's own two steps, kept apart so the fused loss can reuse the log-probs)."""
    log_probs = F.log_softmax(F.linear(hidden, weight, bias).float(), dim=-1)
    return log_probs, F.nll_loss(log_probs, targets, ignore_index=IGNORE, reduction="none")


def token_nll(model: torch.nn.Module, batch: dict[str, torch.Tensor], chunk_size: int = 0, return_argmax: bool = False):
    """NLL in nats of each target, [B, T] fp32; 0 where targets == IGNORE.

    chunk_size: rows of the flattened [B*T, hidden] states per logits chunk; 0 computes all at once
    (chunks save memory without autograd; with autograd every chunk's logits are kept).
    return_argmax: also return the [B, T] greedy next-token ids (evaluation; no autograd).
    """
    flat_h, flat_y, head, (b, t) = _hidden(model, batch)
    step = b * t if chunk_size <= 0 else chunk_size
    nlls, argmaxes = [], []
    for start in range(0, b * t, step):
        log_probs, nll = _head_chunk(flat_h[start : start + step], *_head_weights(head), flat_y[start : start + step])
        nlls.append(nll)
        if return_argmax:
            argmaxes.append(log_probs.argmax(-1))
    nll = torch.cat(nlls).view(b, t)
    return (nll, torch.cat(argmaxes).view(b, t)) if return_argmax else nll


class _FusedHeadLoss(torch.autograd.Function):
    """scale * sum(NLL) with its gradients made in the forward pass, row chunk by row chunk.

    The gradient GEMMs take (softmax - onehot), whose entries lie in [-1, 1], and `scale` is applied
    in fp32 afterwards, so bf16 inputs do not underflow. They go through F.linear like the logits,
    so bf16 autocast (and precision.emulated_bf16) treat them as they treat a Linear's backward.
    Under fp16 autocast they run in fp32: the weight gradient, summed over every row before any
    loss scaling, could exceed fp16's range, and GradScaler could not bring it back.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, scale: float, chunk_size: int, grad_enabled: bool):
        rows = hidden.shape[0]
        step = rows if chunk_size <= 0 else chunk_size
        # needs_input_grad ignores torch.no_grad(), hence the caller's grad mode
        want_h, want_w, want_b = (grad_enabled and w for w in ctx.needs_input_grad[:3])
        nll = torch.empty(rows, dtype=torch.float32, device=hidden.device)
        grad_h = torch.empty(hidden.shape, dtype=torch.float32, device=hidden.device) if want_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if want_w else None
        grad_b = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device) if want_b else None
        device_type = hidden.device.type
        fp16 = torch.is_autocast_enabled(device_type) and torch.get_autocast_dtype(device_type) == torch.float16
        fp32_products = torch.autocast(device_type, enabled=False) if fp16 else contextlib.nullcontext()
        w = weight.float() if fp16 else weight
        for start in range(0, rows, step):
            h, y = hidden[start : start + step], targets[start : start + step]
            log_probs, nll[start : start + step] = _head_chunk(h, weight, bias, y)
            if not (want_h or want_w or want_b):
                continue
            real = (y != IGNORE).unsqueeze(1)
            # softmax - onehot, in place in the log-probs (rows without a target get 0)
            dlogits = log_probs.exp_().mul_(real)
            dlogits.scatter_add_(1, y.clamp(min=0).unsqueeze(1), -real.to(dlogits.dtype))
            with fp32_products:
                if want_h:
                    grad_h[start : start + step] = F.linear(dlogits, w.t()).float()
                if want_w:
                    grad_w += F.linear(dlogits.t(), (h.float() if fp16 else h).t()).float()
            if want_b:
                grad_b += dlogits.sum(0)
        ctx.scale = scale
        ctx.dtypes = hidden.dtype, weight.dtype, None if bias is None else bias.dtype
        ctx.save_for_backward(grad_h, grad_w, grad_b)
        ctx.mark_non_differentiable(nll)
        return nll.sum() * scale, nll

    @staticmethod
    def backward(ctx, grad_loss, _grad_nll):
        factor = grad_loss.float() * ctx.scale
        # in place: the buffers are ours, and an fp32 one then becomes the .grad without a copy
        grads = [None if g is None else g.mul_(factor).to(dtype) for g, dtype in zip(ctx.saved_tensors, ctx.dtypes)]
        return (*grads, None, None, None, None)


def training_loss(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], scale: float, chunk_size: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale * the sum of the targets' NLL, a differentiable scalar; the [B, T] NLL, detached).

    scale: 1 / (the global batch's target count) gives the token-weighted mean of the step.
    chunk_size: rows per logits chunk; 0 = all rows at once.
    """
    flat_h, flat_y, head, (b, t) = _hidden(model, batch)
    loss, nll = _FusedHeadLoss.apply(
        flat_h, *_head_weights(head), flat_y, float(scale), chunk_size, torch.is_grad_enabled()
    )
    return loss, nll.view(b, t)
