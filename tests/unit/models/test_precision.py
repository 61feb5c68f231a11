"""precision.py: autocast or its bf16 emulation for CPUs without bf16 GEMM, against torch.autocast."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

from ja_adapt.models import precision
from ja_adapt.models.load import load_model
from ja_adapt.train.loss import IGNORE, training_loss

CPU = torch.device("cpu")
BF16_ULP = 2**-7  # one bf16 ulp, relative


def test_emulated_bf16_matches_autocast_linear_and_its_gradient():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 16, 32, generator=g, requires_grad=True)
    w = torch.randn(24, 32, generator=g, requires_grad=True)
    b = torch.randn(24, generator=g, requires_grad=True)
    outs = []
    for ctx in (torch.autocast("cpu", dtype=torch.bfloat16), precision.emulated_bf16()):
        with ctx:
            y = F.linear(x, w, b)
        outs.append((y, *torch.autograd.grad(y.float().square().sum(), (x, w, b))))
    (ya, gxa, gwa, gba), (ye, gxe, gwe, gbe) = outs
    assert ye.dtype == ya.dtype == torch.bfloat16 and gxe.dtype == gwe.dtype == gbe.dtype == torch.float32
    exact = F.linear(x, w, b)
    assert not torch.equal(ye.float(), exact)  # it really rounds: not fp32
    torch.testing.assert_close(ye.float(), ya.float(), atol=1e-3, rtol=BF16_ULP)
    torch.testing.assert_close(gxe, gxa, atol=1e-2, rtol=2 * BF16_ULP)
    torch.testing.assert_close(gwe, gwa, atol=1e-1, rtol=2 * BF16_ULP)
    torch.testing.assert_close(gbe, gba, atol=1e-1, rtol=2 * BF16_ULP)


def test_emulated_training_step_follows_autocast():
    """The engine's loss and gradients (fused lm_head included) under emulation stay at bf16
    distance from autocast's, and both differ from fp32: the emulation really is bf16."""
    model = load_model("tiny", vocab_size=300, seed=1)
    model.config.use_cache = False
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 300, (2, 32), generator=g)
    targets = ids.roll(-1, 1)
    targets[:, -1] = IGNORE
    batch = {"input_ids": ids, "position_ids": torch.arange(32).repeat(2, 1), "targets": targets}
    results = {}
    for name, ctx in (
        ("fp32", contextlib.nullcontext()),
        ("autocast", torch.autocast("cpu", dtype=torch.bfloat16)),
        ("emulated", precision.emulated_bf16()),
    ):
        model.zero_grad(set_to_none=True)
        with ctx:
            loss, _ = training_loss(model, batch, 1.0 / 62)
        loss.backward()
        grad = model.model.layers[0].self_attn.q_proj.weight.grad.clone()
        results[name] = (loss.item(), grad)
    (l32, g32), (la, ga), (le, ge) = results["fp32"], results["autocast"], results["emulated"]
    assert abs(le - la) < 0.02 and abs(le - l32) > 0 and abs(la - l32) > 0
    scale = ga.abs().max()
    assert (ge - ga).abs().max() < 0.05 * scale
    assert not torch.equal(ge, g32)


@pytest.mark.parametrize(
    "setting, native, expected",
    [("auto", False, True), ("auto", True, False), ("on", True, True), ("off", False, False)],
)
def test_auto_emulates_only_without_native_bf16(monkeypatch, setting, native, expected):
    monkeypatch.setattr(precision, "cpu_has_bf16_matmul", lambda: native)
    assert precision.emulates_bf16("bf16", CPU, setting) is expected
    ctx = precision.autocast("bf16", CPU, setting)
    assert isinstance(ctx, precision.emulated_bf16) is expected
    assert isinstance(ctx, torch.autocast) is not expected


def test_other_precisions_and_devices_are_never_emulated():
    assert not precision.emulates_bf16("fp16", CPU, "on")
    assert not precision.emulates_bf16("bf16", torch.device("cuda"), "on")
    assert isinstance(precision.autocast("fp32", CPU), contextlib.nullcontext)


def test_emulated_linear_saves_what_autocast_saves():
    """Activation memory: the emulation keeps the bf16 operands for backward, as autocast does."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 32, generator=g, requires_grad=True)
    w = torch.randn(24, 32, generator=g, requires_grad=True)
    b = torch.randn(24, generator=g, requires_grad=True)
    saved = {}
    for name, ctx in (
        ("autocast", torch.autocast("cpu", dtype=torch.bfloat16)),
        ("emulated", precision.emulated_bf16()),
    ):
        sizes = []

        def pack(t, sizes=sizes):
            sizes.append((t.dtype, t.numel()))
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), ctx:
            y = F.linear(x, w, bias=b)
        y.float().sum().backward()
        saved[name] = sorted(sizes, key=str)
        assert b.grad is not None and b.grad.dtype == torch.float32
        b.grad = None
    assert saved["emulated"] == saved["autocast"]
    assert all(dtype == torch.bfloat16 for dtype, _ in saved["emulated"])


def test_checkpointed_layers_are_recomputed_under_the_emulation():
    """A layer checkpointed under emulated_bf16 is recomputed under it too (checkpoint_contexts):
    the gradients equal those without checkpointing, bit for bit."""
    from ja_adapt.config import load_config
    from ja_adapt.models.build import build_model

    class Vocab:
        def __len__(self):
            return 256

    ids = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "position_ids": torch.arange(16).repeat(2, 1), "targets": ids.roll(-1, 1)}
    grads = []
    for ckpt in ("false", "true"):
        cfg = load_config(None, ["method=full", "precision=bf16", f"train.activation_checkpointing={ckpt}"])
        model = build_model(cfg, Vocab(), CPU).train()
        with precision.emulated_bf16():
            loss, _ = training_loss(model, batch, 1.0 / 32)
        loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    assert all(torch.equal(grads[0][n], grads[1][n]) for n in grads[0])
