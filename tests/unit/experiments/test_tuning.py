"""The tuning search (experiments.tuning): bracketing an optimum past a grid's edge, the limit of
extra points, and the tie rule, on a fake trainer whose loss is a known convex function of the rate."""

from __future__ import annotations

import math

from ja_adapt.experiments.tuning import bracket, choose, next_point


def _convex(optimum: float):
    """A fake training: final validation loss 4 + (log10 lr − log10 optimum)², counting what it trains."""
    trained = []

    def loss_of(pending):
        trained.extend((m, v) for m, vs in pending.items() for v in vs)
        return {m: {v: 4 + (math.log10(v) - math.log10(optimum[m])) ** 2 for v in vs} for m, vs in pending.items()}

    return loss_of, trained


def test_a_grid_below_the_optimum_is_extended_until_the_choice_is_interior():
    loss_of, trained = _convex({"lora": 0.1, "full": 0.003})
    found = bracket({"lora": [0.003, 0.01, 0.03], "full": [0.0003, 0.001, 0.003, 0.01]}, loss_of, 2, 0.002)
    lora, full = found["lora"], found["full"]
    assert lora["extra"] == [0.09, 0.27] and lora["grid"] == [0.003, 0.01, 0.03, 0.09, 0.27]
    assert lora["choice"]["chosen"] == 0.09 and not lora["choice"]["at_grid_edge"]
    assert lora["limit_reached"] is False
    assert full["extra"] == [] and full["choice"]["chosen"] == 0.003  # interior from the start
    assert len(trained) == len(set(trained)) == 3 + 4 + 2  # each point trained once


def test_the_limit_stops_the_search_and_is_recorded():
    loss_of, _ = _convex({"lora": 10.0})
    found = bracket({"lora": [0.001, 0.01]}, loss_of, 2, 0.002)["lora"]
    assert found["extra"] == [0.1, 1.0]
    assert found["choice"]["chosen"] == 1.0 and found["choice"]["at_grid_edge"] is True
    assert found["limit_reached"] is True
    none = bracket({"lora": [0.001, 0.01]}, _convex({"lora": 10.0})[0], 0, 0.002)["lora"]
    assert none["extra"] == [] and none["limit_reached"] is True


def test_a_grid_above_the_optimum_is_extended_downward():
    found = bracket({"full": [0.01, 0.03, 0.1]}, _convex({"full": 0.003})[0], 2, 0.0)["full"]
    assert found["extra"] == [0.0033, 0.0011] and found["choice"]["chosen"] == 0.0033


def test_ties_within_the_tolerance_choose_the_lower_rate():
    losses = {0.001: 4.900, 0.003: 4.864, 0.01: 4.862, 0.03: 4.95}
    c = choose([0.001, 0.003, 0.01, 0.03], losses, 0.002)
    assert c["ties"] == [0.003, 0.01] and c["chosen"] == 0.003 and c["best_loss"] == 4.862
    assert c["band"] == [4.862, 4.862 * 1.002]
    strict = choose([0.001, 0.003, 0.01, 0.03], losses, 0.0)
    assert strict["ties"] == [0.01] and strict["chosen"] == 0.01


def test_a_stopped_point_is_not_chosen_and_not_extended_past():
    c = choose([0.01, 0.1, 1.0], {0.01: 5.0, 0.1: 4.5, 1.0: None}, 0.002)
    assert c["chosen"] == 0.1 and c["at_grid_edge"] is False


def test_next_point_keeps_the_log_spacing_rounded_to_two_digits():
    assert next_point([1e-4, 3e-4, 1e-3], upward=True) == 0.0033
    assert next_point([1e-4, 3e-4, 1e-3], upward=False) == 3.3e-05
    assert next_point([4, 8, 16], upward=True) == 32
    assert next_point([0.01], upward=True) is None and next_point(["a", "b"], upward=True) is None
