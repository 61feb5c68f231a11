"""analysis: each definition on synthetic curves with a known answer."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from ja_adapt.report import analysis as an


def test_smooth_is_centred_and_keeps_constants():
    assert np.allclose(an.smooth([3.0] * 10, 4), 3.0)
    v = [abs(s - 50) for s in range(101)]  # V with its minimum at index 50
    assert int(np.argmin(an.smooth(v, 5))) == 50  # a centred average does not move the minimum
    assert an.smooth([1.0, 2.0, 3.0], 3)[1] == pytest.approx(2.0)


def test_convergence_step_of_a_known_curve():
    # loss falls linearly from 2 to 1 over steps 0..100 then stays at 1: within 2.5% of 1 from step 98
    steps = list(range(201))
    loss = [2 - s / 100 if s <= 100 else 1.0 for s in steps]
    assert an.convergence_step(steps, loss, 0.025) == 98
    assert an.convergence_step(steps, loss, 0.105) == 90
    # a blip outside the band later moves convergence after the blip
    loss[150] = 1.5
    assert an.convergence_step(steps, loss, 0.025) == 151


def test_fraction_reached_95_percent_of_the_reduction():
    steps = list(range(0, 201))
    loss = [3 - 2 * min(s, 100) / 100 for s in steps]  # 3 at step 0 → 1 by step 100
    k = an.fraction_reached(loss, 0.95, window=1)
    assert steps[k] == 95  # 3 - 0.95 * 2 = 1.1, reached at step 95
    assert an.fraction_reached([1.0] * 200, 0.95, 1) is None  # no reduction: undefined


def test_initial_loss_drop():
    loss = [5.0] + [2.0] * 99
    cfg = an.AnalysisConfig(smooth_window=1, initial_drop_fraction=0.1)
    assert an.initial_loss_drop(loss, cfg) == pytest.approx(3.0)


def _v_curve(onset: int, steps: int = 300, every: int = 10):
    vsteps = list(range(every, steps + 1, every))
    val = [2.0 + abs(s - onset) / 100 for s in vsteps]
    tsteps = list(range(1, steps + 1))
    train = [3.0 - s / steps for s in tsteps]  # falling throughout
    return vsteps, val, tsteps, train


def test_overfitting_onset_is_the_validation_minimum():
    vs, val, ts, tr = _v_curve(onset=120)
    o = an.overfitting(vs, val, ts, tr)
    assert o["detected"] and o["onset_step"] == 120


def test_no_overfitting_when_validation_keeps_falling_or_training_rises():
    vs, _, ts, tr = _v_curve(onset=120)
    falling = [3.0 - s / 1000 for s in vs]
    assert not an.overfitting(vs, falling, ts, tr)["detected"]
    vs, val, ts, _ = _v_curve(onset=120)
    rising_train = [2.0 + s / 1000 for s in ts]  # both rise: divergence, not overfitting
    assert not an.overfitting(vs, val, ts, rising_train)["detected"]


def test_stability_score_formula():
    rng = np.random.default_rng(0)
    loss = list(2 + 0.1 * rng.standard_normal(100))
    grad = list(1 + 0.2 * rng.random(100))
    s = an.stability(loss, grad, skipped=5, steps=100)
    w = s["window"]
    assert w == 10
    cv_l = statistics.stdev(loss[-w:]) / statistics.mean(loss[-w:])
    cv_g = statistics.stdev(grad[-w:]) / statistics.mean(grad[-w:])
    assert s["loss_variance"] == pytest.approx(statistics.variance(loss[-w:]))
    assert s["grad_norm_variance"] == pytest.approx(statistics.variance(grad[-w:]))
    assert s["stability_score"] == pytest.approx(1 / (1 + cv_l + cv_g + 0.05))
    assert an.stability([2.0] * 50, [1.0] * 50, 0, 50)["stability_score"] == 1.0


def test_curve_analysis_on_records():
    vs, val, ts, tr = _v_curve(onset=150)
    train = [
        {
            "kind": "train",
            "step": s,
            "loss": loss,
            "grad_norm": 1.0,
            "elapsed_s": s * 0.5,
            "tokens_total": 100 * s,
            "skipped": False,
        }
        for s, loss in zip(ts, tr)
    ]
    val_recs = [{"kind": "val", "step": s, "val_loss": v} for s, v in zip(vs, val)]
    out = an.curve_analysis(train, val_recs, {"steps": 300, "final_val_loss": 3.5, "final_train_loss_window_mean": 2.0})
    assert out["overfitting"]["onset_step"] == 150
    assert out["generalization_gap"] == pytest.approx(1.5)
    k = out["step_to_target"]
    assert out["time_to_target_s"] == pytest.approx(k * 0.5) and out["tokens_to_target"] == 100 * k


def test_aggregate_matches_statistics_module():
    a = an.aggregate({0: 1.0, 1: 2.0, 2: 4.0, 3: None})
    assert a["mean"] == pytest.approx(statistics.mean([1, 2, 4]))
    assert a["sd"] == pytest.approx(statistics.stdev([1, 2, 4]))
    assert a["n"] == 3 and a["by_seed"] == {"0": 1.0, "1": 2.0, "2": 4.0}
    assert an.aggregate({0: 5.0})["sd"] is None


def test_ratios_and_retention():
    assert an.reduction_pct(25.0, 100.0) == pytest.approx(75.0)
    assert an.increase_pct(150.0, 100.0) == pytest.approx(50.0)
    assert an.retention(2.2, 2.0, lower_is_better=True) == pytest.approx(2.0 / 2.2)
    assert an.retention(0.8, 0.9, lower_is_better=False) == pytest.approx(0.8 / 0.9)
    assert an.gain_retention(3.0, 2.2, 2.0) == pytest.approx(0.8)
    assert an.gain_retention(3.0, 2.2, 3.1) is None  # full did not improve
    assert an.efficiency_score(0.8, 4.0, 1.0) == pytest.approx(1.6)


def test_diminishing_returns_rank():
    pts = [(4, 2.10), (8, 2.05), (16, 2.02), (32, 2.01), (64, 2.00)]
    assert an.diminishing_returns(pts, 0.01) == 16  # 2.02 <= 2.00 * 1.01, 2.05 is not
    assert an.diminishing_returns(pts, 0.03) == 8


def test_lr_sensitivity_definition():
    pts = [(1e-4, 2.2), (3e-4, 2.0), (1e-3, 2.03), (3e-3, 3.0)]
    s = an.lr_sensitivity(pts, 0.02)
    assert s["best_lr"] == 3e-4 and s["range"] == [3e-4, 1e-3]
    slopes = [0.2 / 2.0 / math.log10(3), 0.03 / 2.0 / math.log10(1e-3 / 3e-4), 0.97 / 2.0 / math.log10(3)]
    assert s["sensitivity_coefficient"] == pytest.approx(sum(slopes) / 3)
    assert an.lr_sensitivity([(1e-3, None)], 0.02) == {"best_lr": None}


def test_definitions_state_the_thresholds():
    d = an.definitions(an.AnalysisConfig(convergence_tolerance=0.05))
    assert "5%" in d["convergence_step"] and "stability = 1 / (1 + cv_loss" in d["stability_score"]
