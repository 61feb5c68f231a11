"""Next-token negative log-likelihood per position, the one loss behind training and evaluation.

A batch is a dict of three [B, T] int64 tensors:
  input_ids     token ids of packed rows
  position_ids  restart at 0 at every document start, so attention never crosses documents
                (transformers builds a block-diagonal causal mask from them when use_cache=False)
  targets       the token to predict at each position (input_ids shifted left inside a document),
                IGNORE where there is none: a document's last token, the end of a row, padding

Chunked cross-entropy: the logits of a row chunk are computed, turned into fp32 NLL and dropped;
under autograd each chunk is checkpointed so the full [B*T, vocab] fp32 logits never exist at once
(151,936 columns for Qwen2.5). Written by hand because neither transformers nor torch provides a
checkpointed chunked CE for an arbitrary HF decoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

IGNORE = -100


def _decoder_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The transformer body and lm_head of a causal LM, seen through a peft wrapper if any."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.model, base.get_output_embeddings()


def _chunk_nll(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
               targets: torch.Tensor) -> torch.Tensor:
    logits = F.linear(hidden, weight, bias).float()
    return F.cross_entropy(logits, targets, ignore_index=IGNORE, reduction="none")


def _chunk_nll_argmax(hidden, weight, bias, targets) -> tuple[torch.Tensor, torch.Tensor]:
    logits = F.linear(hidden, weight, bias).float()
    return (F.cross_entropy(logits, targets, ignore_index=IGNORE, reduction="none"),
            logits.argmax(-1))


def token_nll(model: torch.nn.Module, batch: dict[str, torch.Tensor], chunk_size: int = 0,
              return_argmax: bool = False):
    """NLL in nats of each target, [B, T] fp32; 0 where targets == IGNORE.

    chunk_size: rows of the flattened [B*T, hidden] states per logits chunk; 0 computes all at once.
    return_argmax: also return the [B, T] greedy next-token ids (evaluation; no autograd).
    """
    body, head = _decoder_and_head(model)
    hidden = body(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                  use_cache=False).last_hidden_state
    b, t, d = hidden.shape
    flat_h, flat_y = hidden.reshape(b * t, d), batch["targets"].reshape(b * t)
    step = b * t if chunk_size <= 0 else chunk_size
    nlls, argmaxes = [], []
    for start in range(0, b * t, step):
        h, y = flat_h[start:start + step], flat_y[start:start + step]
        if return_argmax:
            nll, am = _chunk_nll_argmax(h, head.weight, head.bias, y)
            argmaxes.append(am)
        elif step < b * t and torch.is_grad_enabled() and h.requires_grad:
            nll = checkpoint(_chunk_nll, h, head.weight, head.bias, y, use_reentrant=False)
        else:
            nll = _chunk_nll(h, head.weight, head.bias, y)
        nlls.append(nll)
    nll = torch.cat(nlls).view(b, t)
    return (nll, torch.cat(argmaxes).view(b, t)) if return_argmax else nll


def mean_nll(model: torch.nn.Module, batch: dict[str, torch.Tensor], chunk_size: int = 0
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean NLL over real targets, number of real targets) — the training loss."""
    nll = token_nll(model, batch, chunk_size)
    n = (batch["targets"] != IGNORE).sum()
    return nll.sum() / n.clamp(min=1), n
