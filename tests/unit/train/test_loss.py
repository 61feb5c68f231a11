"""loss.py: per-token NLL and the fused lm_head + cross-entropy of the training step, against HF's
own logits and torch's cross-entropy under plain autograd (tiny models, CPU)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ja_adapt.methods.spec import resolve_targets
from ja_adapt.models.load import load_model
from ja_adapt.train.loss import IGNORE, token_nll, training_loss


def _batch(vocab: int, b: int = 2, t: int = 24, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (b, t), generator=g)
    targets = ids.roll(-1, 1)
    targets[:, -1] = IGNORE
    targets[0, 5] = IGNORE  # a document end inside the row
    pos = torch.arange(t).repeat(b, 1)
    pos[0, 6:] -= 6  # the next document restarts at 0
    return {"input_ids": ids, "position_ids": pos, "targets": targets}


def _model(method: str = "full", vocab: int = 300):
    model = load_model("tiny", vocab_size=vocab, seed=1)
    model.config.use_cache = False
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                r=8, lora_alpha=16, lora_dropout=0.0, target_modules=resolve_targets("qv"), task_type="CAUSAL_LM"
            ),
        )
    return model


def _hf_nll(model, batch) -> torch.Tensor:
    """Independent reference: the model's own forward (HF logits) and torch's cross-entropy."""
    logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits.float()
    return F.cross_entropy(
        logits.flatten(0, 1), batch["targets"].flatten(), ignore_index=IGNORE, reduction="none"
    ).view(batch["targets"].shape)


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_token_nll_equals_hf_cross_entropy_plain_and_chunked():
    model, batch = _model(), _batch(300)
    with torch.no_grad():
        ref = _hf_nll(model, batch)
        for chunk in (0, 7):  # 7 does not divide 48 rows: a short last chunk
            torch.testing.assert_close(token_nll(model, batch, chunk), ref, atol=1e-5, rtol=1e-5)
    assert (ref[batch["targets"] == IGNORE] == 0).all() and (ref[batch["targets"] != IGNORE] > 0).all()


@pytest.mark.parametrize("method", ["full", "lora"])
@pytest.mark.parametrize("chunk", [0, 7])
def test_fused_training_loss_matches_autograd_cross_entropy(method, chunk):
    """Loss, per-token NLL and every trainable gradient (for full fine-tuning the tied embedding /
    lm_head weight too) agree with the mean of HF's cross-entropy under plain autograd to 1e-5."""
    model, batch = _model(method), _batch(300)
    n = int((batch["targets"] != IGNORE).sum())
    model.zero_grad(set_to_none=True)
    ref_nll = _hf_nll(model, batch)
    (ref_nll.sum() / n).backward()
    want = _grads(model)
    model.zero_grad(set_to_none=True)
    loss, nll = training_loss(model, batch, 1.0 / n, chunk)
    (3.0 * loss).backward()  # an upstream factor (loss scaling, x world)
    got = _grads(model)
    torch.testing.assert_close(loss, ref_nll.sum().detach() / n, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(nll, ref_nll.detach(), atol=1e-5, rtol=1e-5)
    assert not nll.requires_grad and got.keys() == want.keys() and got
    if method == "full":
        assert any("embed_tokens" in k for k in got)  # the tied lm_head's gradient arrives
    for name in want:
        torch.testing.assert_close(got[name], 3.0 * want[name], atol=1e-5, rtol=1e-4)


def test_fused_training_loss_under_bf16_autocast_follows_autocast_gradients():
    """Under bf16 autocast the lm_head's gradient GEMMs run in bf16 as a Linear's backward does: the
    gradients agree with autograd's at bf16 precision, and the loss with autocast's own."""
    model, batch = _model(), _batch(300)
    n = int((batch["targets"] != IGNORE).sum())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = _hf_nll(model, batch).sum() / n
    ref.backward()
    want = _grads(model)
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = training_loss(model, batch, 1.0 / n)
    loss.backward()
    got = _grads(model)
    torch.testing.assert_close(loss, ref.detach(), atol=1e-3, rtol=1e-3)
    for name in want:
        scale = want[name].abs().max()
        assert (got[name] - want[name]).abs().max() <= 0.02 * scale, name


def test_training_loss_without_grad_builds_no_graph():
    model, batch = _model(), _batch(300)
    with torch.no_grad():
        loss, _ = training_loss(model, batch, 0.5, 7)
        ref = _hf_nll(model, batch)
    assert loss.grad_fn is None
    torch.testing.assert_close(loss, 0.5 * ref.sum(), atol=1e-5, rtol=1e-5)


def test_fused_training_loss_under_fp16_autocast_keeps_weight_gradients_finite():
    """fp16: the lm_head weight's gradient (a sum over all rows before loss scaling) is made in
    fp32, so large hidden states do not overflow it; it matches fp32 autograd at fp16 precision."""
    model, batch = _model(), _batch(300, b=4, t=64)
    batch["targets"][batch["targets"] != IGNORE] = 5  # one token's gradient row sums 250 rows
    head = model.get_output_embeddings()
    with torch.no_grad():
        head.weight.mul_(0.02)
    model.model.norm.weight.data.fill_(300.0)  # hidden states of ~300: products beyond fp16
    n = int((batch["targets"] != IGNORE).sum())
    (_hf_nll(model, batch).sum() / n).backward()
    want = head.weight.grad.clone()
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.float16):
        loss, _ = training_loss(model, batch, 1.0 / n)
    loss.backward()
    got = head.weight.grad
    assert torch.isfinite(got).all() and torch.isfinite(loss)
    assert (got - want).abs().max() <= 0.05 * want.abs().max()
