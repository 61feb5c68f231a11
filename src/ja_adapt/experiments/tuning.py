"""The tuning search of a comparison (experiments.run_compare): each entry's grid is extended past an
edge while its choice sits there (bracketing the optimum), and the choice follows a stated tie rule.

Bracketing: when an entry's chosen point is at an edge of its grid, the next point beyond that edge
is added with the spacing of the two edge-most points on a log scale (rounded to 2 significant
digits), trained (seed 0, cached like every run) and the choice made again; this repeats until the
choice is inside the grid or `extend` extra points were added (`limit_reached`).

Tie rule: the finished points whose final validation loss lies within a relative `tolerance` of the
lowest are ties; among them the lowest value (the lower rate) is chosen."""

from __future__ import annotations

from collections.abc import Callable

TIE_RULE = "among the ties (final validation loss within the tolerance of the lowest), the lowest value"


def is_numeric(values: list) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def next_point(grid: list, upward: bool):
    """The next value beyond the grid's upper (or lower) edge, log-spaced like its two edge-most
    values, rounded to 2 significant digits (None where the grid cannot be extended: fewer than two
    values, non-numeric or non-positive ones, or rounding that lands on a value already there)."""
    if len(grid) < 2 or not is_numeric(grid) or min(grid) <= 0:
        return None
    a, b = (grid[-2], grid[-1]) if upward else (grid[1], grid[0])
    v = float(f"{b * (b / a):.2g}")
    if all(isinstance(x, int) for x in grid):
        v = int(round(v))
    return None if v in grid or v <= 0 else v


def choose(grid: list, losses: dict, tolerance: float) -> dict:
    """The choice over `grid` (ordered) given `losses` (value → final validation loss, None where
    training stopped): the lowest loss, its ties within the relative tolerance, and the chosen value
    by the tie rule; `at_grid_edge`: the chosen value is the grid's first or last. None: nothing
    finished."""
    finished = [v for v in grid if losses.get(v) is not None]
    if not finished:
        return None
    best = min(losses[v] for v in finished)
    ties = [v for v in finished if losses[v] - best <= tolerance * abs(best)]
    chosen = ties[0]  # grids are ordered ascending: the lowest tied value
    return {
        "best_loss": best,
        "band": [best, best + tolerance * abs(best)],
        "ties": ties,
        "chosen": chosen,
        "at_grid_edge": chosen in (grid[0], grid[-1]),
    }


def bracket(
    grids: dict[str, list],
    loss_of: Callable[[dict[str, list]], dict[str, dict]],
    extend: int,
    tolerance: float,
) -> dict[str, dict]:
    """The search over every entry at once: `loss_of({entry: values})` trains those points (seed 0,
    cached) and gives {entry: {value: loss or None}}; rounds of new edge points follow until each
    entry's choice is interior or `extend` points were added. Entry → its search: the final grid,
    the points added, losses, the choice (choose) and `limit_reached`."""
    state = {m: {"grid": list(g), "extra": [], "losses": {}} for m, g in grids.items()}
    pending = {m: list(g) for m, g in grids.items()}
    while pending:
        for m, got in loss_of(pending).items():
            state[m]["losses"].update(got)
        pending = {}
        for m, s in state.items():
            c = s["choice"] = choose(s["grid"], s["losses"], tolerance)
            s["limit_reached"] = False
            if c is None or not c["at_grid_edge"]:
                continue
            upward = c["chosen"] == s["grid"][-1] and c["chosen"] != s["grid"][0]
            v = next_point(s["grid"], upward)
            if v is None:
                continue
            if len(s["extra"]) >= extend:
                s["limit_reached"] = True
                continue
            s["extra"].append(v)
            s["grid"] = sorted([*s["grid"], v])
            pending[m] = [v]
    return state
