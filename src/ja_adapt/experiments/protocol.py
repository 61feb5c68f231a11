"""The two experiments: a sweep (`run_all`: a grid × seeds) and a comparison (`run_compare`: each
entry's tuned value chosen on seed 0, then every seed at the choice; the package docstring)."""

from __future__ import annotations

import itertools
from pathlib import Path

from ja_adapt.config import ExperimentConfig, with_overrides
from ja_adapt.core.errors import UserError
from ja_adapt.experiments.budget import budget_overrides
from ja_adapt.experiments.executor import RunExecutor
from ja_adapt.experiments.outputs import write_experiment, write_plan, write_stats
from ja_adapt.experiments.runs import PlannedRun, compared_entries, config_value, plan_runs, planned_run
from ja_adapt.experiments.tuning import TIE_RULE, bracket
from ja_adapt.experiments.workers import raise_first_stop, run_each, warm_workers
from ja_adapt.train.loop import TrainingStopped


def run_all(
    out: Path,
    kind: str,
    cfg: ExperimentConfig,
    grid: dict,
    seeds: list[int],
    purpose: str = "quality",
    reuse_from: list[Path] = (),
    likelihood_only: bool = False,
    jobs: int = 1,
) -> None:
    """Train and evaluate every run (skipping finished work); then stats.json and plan.json.
    purpose: "quality" (runs long enough to compare quality) or "probe" (speed and memory only;
    the report shows no quality for it). reuse_from: experiment directories whose finished run
    with the very same configuration is copied instead of trained again. likelihood_only: each
    run's final weights get the likelihood metrics only (bits/char, per-script accuracy,
    forgetting: what a sweep's table compares), no generation, supervised or downstream tasks,
    and no checkpoint evaluations. jobs: runs at once (package docstring)."""
    runs = plan_runs(cfg, grid, seeds, likelihood_only=likelihood_only)
    write_experiment(
        out,
        kind,
        cfg,
        grid,
        seeds,
        runs,
        {"purpose": purpose, "evaluation": "likelihood" if likelihood_only else "full", "jobs": jobs},
    )
    probe = purpose == "probe"  # time and memory only: nothing to evaluate
    warm_workers(jobs)
    ex = RunExecutor(out, cfg, reuse_from, evaluate=not probe)
    raise_first_stop(run_each(ex.train if probe else ex.train_and_evaluate, runs, jobs, f"{kind} runs", out))
    if not probe:
        write_stats(out, [r.record() for r in runs], cfg)
    write_plan(out, runs)


def run_compare(
    out: Path,
    cfg: ExperimentConfig,
    methods: list[str],
    seeds: list[int],
    tune_key: str | None = None,
    tune_grids: dict[str, list] | None = None,
    likelihood_only: bool | list[str] = False,
    reuse_from: list[Path] = (),
    jobs: int = 1,
    curve_seeds: int | None = None,
    arms: dict[str, dict] | None = None,
    budget: str = "steps",
    tune_extend: int = 2,
    tune_tolerance: float = 0.002,
) -> dict:
    """The comparison protocol (package docstring). methods: the compared entries, each a registered
    method or a name of `arms` (name → config overrides, "method" among them unless the name is a
    registered method: `{"lora-all": {"method": "lora", "lora.targets": "all-linear"}}`; see
    compared_entries). tune_grids: entry → values of `tune_key`; an entry without a grid trains
    every seed at the configured value. likelihood_only: True, or the entries whose runs get the
    likelihood metrics only (what the methods table compares: bits/char, per-script accuracy,
    forgetting); reuse_from, jobs: as run_all's. With jobs > 1 the base model is evaluated on a
    worker beside the tuning runs. curve_seeds: the first this many seeds get their checkpoints
    evaluated (held-out and forgetting learning curves; None: every seed). budget: what the entries
    hold equal, steps, tokens or flops (experiments.budget: each entry's train.max_steps).
    tune_extend, tune_tolerance: the search's limit of extra points per entry and its relative tie
    tolerance (experiments.tuning). Returns the tuning record (keyed by entry)."""
    entries = compared_entries(cfg, methods, arms, tune_key)
    added, budget_record = budget_overrides(cfg, entries, budget, tune_key=tune_key)
    likelihood_only_entries = _likelihood_only_entries(likelihood_only, methods)
    grids = {m: _ordered([_coerced(cfg, tune_key, x) for x in v]) for m, v in (tune_grids or {}).items() if v}
    spec = _tuning_spec(tune_key, grids, seeds[0], tune_extend, tune_tolerance)
    extra = _manifest_extra(spec, methods, likelihood_only_entries, jobs, entries, arms, budget_record)
    entries = {m: {**over, **added[m]} for m, over in entries.items()}
    grid = {"method": list(methods)}
    warm_workers(jobs)
    ex = RunExecutor(out, cfg, reuse_from, base_now=jobs <= 1)
    # two plans: the tuning runs first (experiment.json lists them while they train), then, once
    # each value is chosen, every run of the comparison
    tuning_runs = _tuning_runs(cfg, entries, grids, tune_key, seeds[0], likelihood_only_entries)
    write_experiment(out, "compare", cfg, grid, seeds, [r for rs in tuning_runs.values() for r in rs], extra)
    plan = {"cfg": cfg, "entries": entries, "tune_key": tune_key, "seed": seeds[0], "runs": tuning_runs}
    plan["likelihood_only_entries"] = likelihood_only_entries
    search = {"extend": tune_extend, "tolerance": tune_tolerance}
    record = {"spec": spec, **_tune(ex, plan, search, jobs)}
    runs = _runs_at_choice(cfg, entries, methods, tuning_runs, record, tune_key, seeds, likelihood_only_entries)
    extra["tuning"] = record if grids else {"spec": None}
    write_experiment(out, "compare", cfg, grid, seeds, runs, extra)
    for r in runs:
        r.curve = curve_seeds is None or r.seed in seeds[:curve_seeds]
    raise_first_stop(_each_with_base(ex, ex.train_and_evaluate, runs, jobs, "compare runs"))
    records = [r.record() for r in runs]
    write_stats(out, records, cfg, pairs=_compare_pairs(records, tune_key))
    write_plan(out, [r for r in runs if r.chosen])
    return record


def _manifest_extra(spec, methods, likelihood_only_entries, jobs, entries, arms, budget_record) -> dict:
    """experiment.json's comparison keys beside the runs (key order kept: the file's bytes follow it)."""
    return {
        "purpose": "quality",
        "tuning": {"spec": spec},
        "evaluation": {m: "likelihood" if m in likelihood_only_entries else "full" for m in methods},
        "jobs": jobs,
        **({"arms": {a: entries[a] for a in arms}} if arms else {}),
        **({"budget": budget_record} if budget_record else {}),
    }


def _likelihood_only_entries(likelihood_only: bool | list[str], methods: list[str]) -> set:
    """run_compare's `likelihood_only` as the set of entries it names (True: every entry), refused
    when it names an entry not compared."""
    entries = set(methods) if likelihood_only is True else set(likelihood_only or ())
    if unknown := entries - set(methods):
        raise UserError(f"--likelihood-only {','.join(sorted(unknown))}: not compared; compared: {', '.join(methods)}")
    return entries


def _tuning_spec(tune_key: str | None, grids: dict[str, list], seed: int, extend: int, tolerance: float) -> dict | None:
    """What the tuning record says was tuned, over which starting values, how extended and how
    chosen (None: no grid)."""
    if not grids:
        return None
    return {
        "key": tune_key,
        "grids": grids,
        "selection": f"lowest final validation loss of the seed-{seed} runs",
        "seed": seed,
        "extend": extend,
        "tolerance": tolerance,
        "tie_rule": TIE_RULE,
    }


def _tuning_runs(
    cfg: ExperimentConfig, entries: dict, grids: dict[str, list], tune_key: str, seed: int, likelihood_only_entries: set
) -> dict[str, list[PlannedRun]]:
    """Entry → its tuning runs: the first seed at each value of its grid (entries without a grid
    have none)."""
    return {
        m: [planned_run(cfg, {**overrides, tune_key: v}, seed, m in likelihood_only_entries, arm=m) for v in grids[m]]
        for m, overrides in entries.items()
        if m in grids
    }


def _runs_at_choice(
    cfg: ExperimentConfig,
    entries: dict,
    methods: list[str],
    tuning_runs: dict[str, list[PlannedRun]],
    record: dict,
    tune_key: str,
    seeds: list[int],
    likelihood_only_entries: set,
) -> list[PlannedRun]:
    """Every run of the comparison, entry by entry: its finished tuning runs (the first seed's chosen
    run among them), then the other seeds at the chosen value; an entry without a grid, every seed
    at its configured value."""
    runs = []
    for m in methods:
        tuned = m in tuning_runs
        fixed = {**entries[m], tune_key: record["chosen"][m]} if tuned else entries[m]
        runs += [r for r in tuning_runs.get(m, []) if r.name not in record["stopped"]]
        runs += [
            planned_run(cfg, fixed, s, m in likelihood_only_entries, arm=m, chosen=True)
            for s in seeds
            if not tuned or s != seeds[0]
        ]
    return runs


def _each_with_base(ex: RunExecutor, task, runs: list[PlannedRun], jobs: int, desc: str) -> list:
    """run_each, with the base model's evaluation beside the runs while it is still missing."""
    return run_each(task, runs, jobs, desc, ex.out, beside=ex.evaluate_base if ex.needs_base() else None)


def _tune(ex: RunExecutor, plan: dict, search: dict, jobs: int) -> dict:
    """Train the tuning runs round by round (tuning.bracket: each grid extended past an edge while
    its choice sits there), then mark each entry's runs chosen or not (and likelihood-only unless
    chosen); the runs are evaluated later, once the choice is known. plan: cfg, entries, tune_key,
    seed, likelihood_only_entries, runs (entry → its tuning runs, extended here). A grid point
    whose training stopped (non-finite losses) is recorded, not fatal. The tuning record."""
    key, runs, stopped = plan["tune_key"], plan["runs"], {}

    def loss_of(pending: dict[str, list]) -> dict[str, dict]:
        new = {m: [_tuning_run(plan, m, v) for v in vs] for m, vs in pending.items()}
        todo = [r for rs in new.values() for r in rs]
        trained = _each_with_base(ex, ex.train, todo, jobs, "tuning runs")
        stopped.update({r.name: str(t) for r, t in zip(todo, trained) if isinstance(t, TrainingStopped)})
        for m, rs in new.items():
            known = {r.name for r in runs[m]}
            runs[m] = sorted(runs[m] + [r for r in rs if r.name not in known], key=lambda r: r.overrides[key])
        return {
            m: {r.overrides[key]: None if r.name in stopped else ex.val_loss(r) for r in rs} for m, rs in new.items()
        }

    found = bracket({m: [r.overrides[key] for r in rs] for m, rs in runs.items()}, loss_of, **search)
    return _record(ex, plan, found, stopped)


def _tuning_run(plan: dict, m: str, v) -> PlannedRun:
    """Entry m's tuning run at value v of the tuned key (the tuning seed)."""
    overrides = {**plan["entries"][m], plan["tune_key"]: v}
    return planned_run(plan["cfg"], overrides, plan["seed"], m in plan["likelihood_only_entries"], arm=m)


def _record(ex: RunExecutor, plan: dict, found: dict, stopped: dict) -> dict:
    """The tuning record from the search (tuning.bracket), each entry's runs marked chosen or not."""
    key = plan["tune_key"]
    record = {k: {} for k in ("val_loss", "chosen", "at_grid_edge", "grid", "extended", "limit_reached")}
    record |= {"ties": {}, "band": {}, "stopped": stopped}
    for m, s in found.items():
        c = s["choice"]
        if c is None:
            raise UserError(
                f"{ex.out}: every {key} in {m}'s grid stopped on non-finite losses; lower the grid's values"
            )
        record["val_loss"][m] = {str(v): s["losses"].get(v) for v in s["grid"]}
        record["grid"][m], record["extended"][m], record["limit_reached"][m] = s["grid"], s["extra"], s["limit_reached"]
        record["chosen"][m], record["at_grid_edge"][m] = c["chosen"], c["at_grid_edge"]
        record["ties"][m], record["band"][m] = c["ties"], c["band"]
        for r in plan["runs"][m]:
            r.chosen = r.overrides[key] == c["chosen"]
            r.likelihood_only = m in plan["likelihood_only_entries"] or not r.chosen
    return record


def _coerced(cfg: ExperimentConfig, key: str, value):
    """`value` as the config stores it for `key` (e.g. "1e-3" → 0.001), refused with the key named
    when invalid."""
    return config_value(with_overrides(cfg, {key: value}), key)


def _ordered(values: list) -> list:
    """Numeric grids ascending (so "at the grid's edge" means the smallest or largest value)."""
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    return sorted(set(values)) if numeric else list(dict.fromkeys(values))


def _compare_pairs(runs: list[dict], tune_key: str | None) -> list[tuple[dict, dict]]:
    """The pairs a comparison tests: the entries (arms) at their chosen settings, seed by seed, and
    (from the tuning runs) the entries at each shared value of the tuned key. Two arms of one
    method (LoRA on q,v and on every linear) are a pair like two methods. runs: their records."""
    pairs = []
    for a, b in itertools.combinations(runs, 2):
        if a["seed"] != b["seed"] or a.get("arm", a["method"]) == b.get("arm", b["method"]):
            continue
        chosen = a["chosen"] and b["chosen"]
        shared = (
            tune_key is not None
            and tune_key in a["overrides"]
            and a["overrides"].get(tune_key) == b["overrides"].get(tune_key)
        )
        if chosen or shared:
            pairs.append((a, b))
    return pairs
