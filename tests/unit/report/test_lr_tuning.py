"""The learning-rate section (report.sections.lr_tuning) from a tuning record with an extended grid,
ties and a stopped search: the band, the ties, the limit and the rate ratio are stated."""

from __future__ import annotations

from types import SimpleNamespace

from ja_adapt.experiments.tuning import TIE_RULE
from ja_adapt.report.sections.lr_tuning import blocks, lr_tuning


def _run(arm, lr, loss, seed=0):
    summary = {"final_val_loss": loss}
    return SimpleNamespace(
        arm=arm, seed=seed, config={"optim.lr": lr}, eval=None, name=f"{arm}-{lr}-{seed}", summary=summary
    )


def _experiment():
    tuning = {
        "spec": {
            "key": "optim.lr",
            "grids": {"lora": [0.003, 0.01, 0.03], "full": [0.001, 0.003, 0.01]},
            "selection": "lowest final validation loss of the seed-0 runs",
            "seed": 0,
            "extend": 1,
            "tolerance": 0.002,
            "tie_rule": TIE_RULE,
        },
        "val_loss": {
            "lora": {"0.003": 4.9, "0.01": 4.864, "0.03": 4.862, "0.09": 4.861},
            "full": {"0.001": 4.0, "0.003": 3.9, "0.01": 3.95},
        },
        "grid": {"lora": [0.003, 0.01, 0.03, 0.09], "full": [0.001, 0.003, 0.01]},
        "extended": {"lora": [0.09], "full": []},
        "chosen": {"lora": 0.03, "full": 0.003},
        "ties": {"lora": [0.03, 0.09], "full": [0.003]},
        "band": {"lora": [4.861, 4.861 * 1.002], "full": [3.9, 3.9 * 1.002]},
        "at_grid_edge": {"lora": False, "full": False},
        "limit_reached": {"lora": True, "full": False},
        "stopped": {},
    }
    runs = [_run(m, v, tuning["val_loss"][m][str(v)]) for m, g in tuning["grid"].items() for v in g]
    runs.append(_run("lora", 0.03, 4.870, seed=1))  # the seeds at LoRA's choice differ by 0.008
    return SimpleNamespace(manifest={"tuning": tuning}, runs=runs)


def test_the_section_states_the_band_the_ties_the_limit_and_the_rate_ratio():
    t = lr_tuning([_experiment()], {})
    assert t["grids"]["lora"] == [0.003, 0.01, 0.03, 0.09]  # the final grid
    assert [p["value"] for p in t["points"]["lora"]] == [0.003, 0.01, 0.03, 0.09]
    assert t["ties"]["lora"] == [0.03, 0.09] and t["limit_reached"] == {"lora": True, "full": False}
    assert abs(t["rate_ratio"]["ratio"] - 10) < 1e-9 and t["rate_ratio"]["reference"] == 10
    text = "\n".join(str(b) for b in blocks({"lr_tuning": t}, {}))
    assert "0.2% of the lowest final validation loss are ties" in text and TIE_RULE in text
    assert "stopped by the limit of extra points" in text and "choice inside the grid" in text
    assert "÷ full fine-tuning's = 10×" in text and "≈10×" in text and "Biderman" in text
    assert "4.861" in text and "0.03, 0.09" in text


def test_the_seed_spread_at_the_choice_is_measured_beside_the_tolerance():
    """LoRA's two seeds at 0.03 end 0.008 apart: wider than the 0.2% band, so 0.01 (0.003 above the
    lowest) is within it; full fine-tuning has one seed, so no spread is claimed."""
    t = lr_tuning([_experiment()], {})
    sp = t["seed_spread"]["lora"]
    assert (
        sp["n"] == 2
        and (sp["low"], sp["high"]) == (4.862, 4.870)
        and abs(sp["spread"] - 0.008) < 1e-12
        and abs(sp["relative"] - 0.008 / 4.862) < 1e-12
    )
    assert sp["ties"] == [0.01, 0.03, 0.09] and t["ties"]["lora"] == [0.03, 0.09]
    assert t["seed_spread"]["full"] is None
    text = "\n".join(str(b) for b in blocks({"lr_tuning": t}, {}))
    assert "0.008 (0.1645%, 2 seeds)" in text and "0.01, 0.03, 0.09" in text


def test_no_rate_ratio_without_full_or_off_the_learning_rate():
    exp = _experiment()
    exp.manifest["tuning"]["spec"]["grids"].pop("full")
    exp.manifest["tuning"]["chosen"].pop("full")
    t = lr_tuning([exp], {})
    assert t["rate_ratio"] is None
    assert "Rate ratio" not in "\n".join(str(b) for b in blocks({"lr_tuning": t}, {}))
