"""`compare` and `sweep`: which runs, on the same data and budget, resumable.

The comparison protocol (`run_compare`): each compared entry (a method, or an arm: a named set of
config overrides, such as LoRA on every linear beside LoRA on q,v; `compared_entries`) first gets its
own value of a tuned key (the learning rate) from a grid, by final validation loss of seed-0 runs;
then every other seed trains at each entry's chosen value. The seed-0 run at the chosen value is one of the seeds (selection
used the validation split; every reported quality number is measured on the test split and the
evaluation-only corpora). A user who fixes the rate passes no grid and skips tuning.

    OUT/experiment.json          what was asked: kind, resolved base config, grid, seeds, runs (each
                                 with its arm), arms (their overrides), tuning (grid per entry,
                                 validation losses, chosen value)
    OUT/base/eval.json           the base model's evaluation (the reference for gains and forgetting)
    OUT/runs/<name>/             one run directory per (method | grid point, seed), see train.py;
                                 plus eval.json (final weights) and checkpoints/*/eval.json
    OUT/stats.json               paired statistics (every two entries, each vs base, seed-matched)
    OUT/plan.json                predicted memory of each method (ja_adapt.models.plan), beside the measured
    OUT/decontamination.json     evaluation documents removed as contained in training text (data/dedup.py)

Re-running the same command skips finished runs and evaluations and resumes a killed run. With
`jobs` > 1 the runs of a phase (tuning, then the rest) train and evaluate on that many worker
processes at once, each with its share of the torch threads: on a small CPU model two 1-thread runs
side by side finish ~1.3x sooner than one after the other at 2 threads, with the same numbers
(thread count does not change the arithmetic here; a test checks it); its time per step is then
measured beside another run (summary.json records the threads; experiment.json the jobs). The
report over OUT is the report stage's (ja_adapt.report); `ja-adapt compare` / `sweep` (cli/experiments.py)
run both.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import os
import re
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ja_adapt.train import artifacts
from ja_adapt.train import checkpoint
from ja_adapt.core.cache import cache_root
from ja_adapt.config import ExperimentConfig, config_hash, flatten, parse_override, to_dict, with_overrides
from ja_adapt.data.pipeline import eval_set
from ja_adapt.data.sources import corpus_fingerprint
from ja_adapt.core.errors import UserError
from ja_adapt.evaluate.compare import compare_models
from ja_adapt.evaluate.run import evaluate_model, write_eval
from ja_adapt.core.jsonio import write_json
from ja_adapt.methods.spec import SPECS
from ja_adapt.models.load import model_config, resolve_name
from ja_adapt.models.plan import plan_run_memory
from ja_adapt.train.loop import TrainingStopped, train

# ---- which runs ----------------------------------------------------------------------------------

def run_name(overrides: dict, seed: int) -> str:
    """A filesystem-safe, readable name: `method-lora__lora.rank-8__s0`."""
    parts = [f"{k}-{v}" for k, v in overrides.items()]
    return "__".join(parts + [f"s{seed}"]).replace("/", "_")


def parse_grid(items: list[str]) -> dict[str, list]:
    """`--grid lora.rank=4,8,16` (repeatable) → {"lora.rank": [4, 8, 16]}."""
    grid: dict[str, list] = {}
    for item in items:
        key, value = parse_override(item)
        values = value if isinstance(value, list) else [parse_override(f"{key}={v}")[1]
                                                         for v in str(value).split(",")]
        if not values or key in grid:
            raise UserError(f"--grid {item}: give each key once, with comma-separated values")
        grid[key] = values
    return grid


def planned_run(cfg: ExperimentConfig, overrides: dict, seed: int, light: bool = False,
                arm: str | None = None) -> dict:
    """One run: its name, overrides, validated config; `light` runs get a likelihood-only
    evaluation (tuning points that were not chosen). arm: the compared entry it belongs to
    (`compare`; a sweep's runs have none)."""
    run_cfg = with_overrides(cfg, {**overrides, "seed": seed})
    name = run_name(overrides, seed)
    return {"name": name, **({"arm": arm} if arm else {}), "method": run_cfg.method, "seed": seed,
            "overrides": overrides, "dir": f"runs/{name}", "light": light, "config": run_cfg}


def plan_runs(cfg: ExperimentConfig, grid: dict[str, list], seeds: list[int],
              light: bool = False) -> list[dict]:
    """Every grid point × seed, each with its overrides and name; validated up front."""
    keys = list(grid)
    return [planned_run(cfg, dict(zip(keys, values)), seed, light)
            for values in itertools.product(*[grid[k] for k in keys]) for seed in seeds]


# ---- doing them ----------------------------------------------------------------------------------

def write_manifest(out: Path, kind: str, cfg: ExperimentConfig, grid: dict, seeds: list[int],
                   runs: list[dict], extra: dict | None = None) -> None:
    """experiment.json; re-running the same experiment merges runs, a different one is refused.
    extra: more top-level keys (purpose, tuning, arms); `extra["tuning"]["spec"]` and
    `extra["arms"]` must match too."""
    manifest = {"kind": kind, "config": to_dict(cfg), "grid": grid, "seeds": seeds, "base": "base",
                "runs": [{k: v for k, v in r.items() if k != "config"} for r in runs], **(extra or {})}
    path = out / "experiment.json"
    if path.is_file():
        old = json.loads(path.read_text())
        spec = lambda m: (m.get("tuning") or {}).get("spec")
        if old.get("config") != manifest["config"] or old.get("grid") != grid or \
                old.get("kind") != kind or spec(old) != spec(manifest) or old.get("arms") != manifest.get("arms"):
            raise UserError(f"{path}: {out} holds a different experiment; re-run it with the same "
                            "command to resume, or choose another --out")
        manifest["seeds"] = sorted(set(old.get("seeds", [])) | set(seeds))
        known = {r["name"] for r in manifest["runs"]}
        manifest["runs"] += [r for r in old.get("runs", []) if r["name"] not in known]
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=1))


def evaluate_into(path: Path, model, tokenizer, cfg: ExperimentConfig, docs, trained,
                  base_results=None, light: bool = False) -> dict:
    """Evaluate once and cache the result at `path` (skipped when it exists); trained: the
    (lang, domain) pairs of the training split (evaluate_model)."""
    if path.is_file():
        return json.loads(path.read_text())
    eval_cfg = cfg.eval.light() if light else cfg.eval   # checkpoints: likelihood only, for the curves
    results = evaluate_model(model, tokenizer, docs, eval_cfg,
                             trained=trained,
                             base_results=base_results)
    write_eval(path, results)
    return results


def run_all(out: Path, kind: str, cfg: ExperimentConfig, grid: dict, seeds: list[int],
            purpose: str = "quality", reuse_from: list[Path] = (), likelihood_only: bool = False,
            jobs: int = 1) -> None:
    """Train and evaluate every run (skipping finished work); then stats.json and plan.json.
    purpose: "quality" (runs long enough to compare quality) or "probe" (speed and memory only;
    the report shows no quality for it). reuse_from: experiment directories whose finished run
    with the very same configuration is copied instead of trained again. likelihood_only: each
    run's final weights get the likelihood metrics only (bits/char, per-script accuracy,
    forgetting: what a sweep's table compares), no generation, supervised or downstream tasks,
    and no checkpoint evaluations. jobs: runs at once (module docstring)."""
    runs = plan_runs(cfg, grid, seeds, light=likelihood_only)
    write_manifest(out, kind, cfg, grid, seeds, runs,
                   {"purpose": purpose, "evaluation": "likelihood" if likelihood_only else "full",
                    "jobs": jobs})
    probe = purpose == "probe"              # time and memory only: nothing to evaluate
    warm_workers(jobs)
    ev = _Evaluation(out, cfg, reuse_from, evaluate=not probe)
    _raise_first(_each(ev, "train" if probe else "train_and_evaluate", runs, jobs, f"{kind} runs"))
    if not probe:
        write_stats(out, runs, cfg)
    write_plan(out, cfg, runs)


def run_compare(out: Path, cfg: ExperimentConfig, methods: list[str], seeds: list[int],
                tune_key: str | None = None, tune_grids: dict[str, list] | None = None,
                likelihood_only: bool | list[str] = False, reuse_from: list[Path] = (), jobs: int = 1,
                curve_seeds: int | None = None, arms: dict[str, dict] | None = None) -> dict:
    """The comparison protocol (module docstring). methods: the compared entries, each a registered
    method or a name of `arms` (name → config overrides, "method" among them unless the name is a
    registered method: `{"lora-all": {"method": "lora", "lora.targets": "all-linear"}}`; see
    compared_entries). tune_grids: entry → values of `tune_key`; an entry without a grid trains
    every seed at the configured value. likelihood_only: True, or the entries whose runs get the
    likelihood metrics only (what the methods table compares: bits/char, per-script accuracy,
    forgetting); reuse_from, jobs: as run_all's. With jobs > 1 the base model is evaluated on a
    worker beside the tuning runs. curve_seeds: the first this many seeds get their checkpoints
    evaluated (held-out and forgetting learning curves; None: every seed). Returns the tuning
    record (keyed by entry)."""
    entries = compared_entries(cfg, methods, arms, tune_key)
    light = set(methods) if likelihood_only is True else set(likelihood_only or ())
    if unknown := light - set(methods):
        raise UserError(f"--likelihood-only {','.join(sorted(unknown))}: not compared; compared: {', '.join(methods)}")
    grids = {m: _ordered([_coerced(cfg, tune_key, x) for x in v]) for m, v in (tune_grids or {}).items() if v}
    spec = {"key": tune_key, "grids": grids, "selection": "lowest final validation loss of the "
            f"seed-{seeds[0]} runs", "seed": seeds[0]} if grids else None
    extra = {"purpose": "quality", "tuning": {"spec": spec},
             "evaluation": {m: "likelihood" if m in light else "full" for m in methods}, "jobs": jobs,
             **({"arms": {a: entries[a] for a in arms}} if arms else {})}
    grid = {"method": list(methods)}
    warm_workers(jobs)
    ev = _Evaluation(out, cfg, reuse_from, base_now=jobs <= 1)
    tuning_runs = {m: [planned_run(cfg, {**entries[m], tune_key: v}, seeds[0], m in light, arm=m)
                       for v in grids[m]] for m in methods if m in grids}
    all_tuning = [r for rs in tuning_runs.values() for r in rs]
    write_manifest(out, "compare", cfg, grid, seeds, all_tuning, extra)
    # trained first, evaluated once the choice is known; a grid point whose training stopped
    # (non-finite losses) is recorded, not fatal
    trained = _each(ev, "train", all_tuning, jobs, "tuning runs", with_base=True)
    stopped = {r["name"]: str(t) for r, t in zip(all_tuning, trained) if isinstance(t, TrainingStopped)}
    record = {"spec": spec, **_choose(ev, tuning_runs, tune_key, stopped, light)}
    runs = []
    for m in methods:
        fixed = {**entries[m], tune_key: record["chosen"][m]} if m in grids else entries[m]
        runs += [r for r in tuning_runs.get(m, []) if r["name"] not in stopped]
        runs += [dict(planned_run(cfg, fixed, s, m in light, arm=m), chosen=True)
                 for s in seeds if m not in grids or s != seeds[0]]
    extra["tuning"] = record if grids else {"spec": None}
    write_manifest(out, "compare", cfg, grid, seeds, runs, extra)
    for r in runs:
        r["curve"] = curve_seeds is None or r["seed"] in seeds[:curve_seeds]
    _raise_first(_each(ev, "train_and_evaluate", runs, jobs, "compare runs", with_base=True))
    headline = [r for r in runs if r["chosen"]]
    write_stats(out, runs, cfg, pairs=_compare_pairs(runs, tune_key))
    write_plan(out, cfg, headline)
    return record


def _choose(ev: "_Evaluation", tuning_runs: dict[str, list[dict]], tune_key: str, stopped: dict,
            light: set) -> dict:
    """Each entry's value of the tuned key: its finished seed-0 run with the lowest final validation
    loss; marks every tuning run chosen or not (and light unless chosen). The tuning record."""
    record = {"val_loss": {}, "chosen": {}, "at_grid_edge": {}, "stopped": stopped}
    for m, rs in tuning_runs.items():
        losses = {str(r["overrides"][tune_key]): None if r["name"] in stopped else ev.val_loss(r) for r in rs}
        finished = [r for r in rs if r["name"] not in stopped]
        if not finished:
            raise UserError(f"{ev.out}: every {tune_key} in {m}'s grid stopped on non-finite losses; "
                            "lower the grid's values")
        best = min(finished, key=lambda r: ev.val_loss(r))
        record["val_loss"][m] = losses
        record["chosen"][m] = best["overrides"][tune_key]
        record["at_grid_edge"][m] = best is rs[0] or best is rs[-1]   # grids are given in order
        for r in rs:
            r["chosen"] = r is best
            r["light"] = m in light or r is not best
    return record


# Keys an arm may not set: the experiment owns them (its seeds; the data its evaluation documents,
# decontamination and base evaluation come from).
_NOT_ARM_KEYS = ("seed", "data")


def parse_arms(items: list[str]) -> dict[str, dict]:
    """`--arm lora-all:method=lora --arm lora-all:lora.targets=all-linear` (repeatable; one
    NAME:KEY=VALUE each, the same NAME accumulating) → {"lora-all": {"method": "lora",
    "lora.targets": "all-linear"}}. Syntax only: compared_entries validates the keys and values."""
    arms: dict[str, dict] = {}
    for item in items:
        name, sep, rest = item.partition(":")
        if not sep or "=" not in rest or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise UserError(f"--arm {item}: expected NAME:KEY=VALUE with NAME of letters, digits, "
                            "'-', '_' or '.' (e.g. --arm lora-all:lora.targets=all-linear)")
        key, value = parse_override(rest)
        if key in arms.setdefault(name, {}):
            raise UserError(f"--arm {item}: arm '{name}' already sets {key}; give each key once")
        arms[name][key] = value
    return arms


def compared_entries(cfg: ExperimentConfig, names: list[str], arms: dict[str, dict] | None = None,
                     tune_key: str | None = None) -> dict[str, dict]:
    """Each compared entry (`--methods`) → its config overrides, "method" first: a registered
    method's {"method": NAME}; an arm's own overrides, its method defaulting to NAME when NAME is a
    registered method. Refused (naming the flag): an arm not in `names`, an entry that is neither a
    method nor an arm with a method, an invalid key or value, an arm setting the tuned key, the seed
    or the data, two entries of the same configuration."""
    arms = arms or {}
    if twice := sorted({n for n in names if names.count(n) > 1}):
        raise UserError(f"--methods: '{twice[0]}' given twice; name each compared entry once")
    if unused := [a for a in arms if a not in names]:
        raise UserError(f"--arm {unused[0]}: not compared; add '{unused[0]}' to --methods "
                        f"(now {','.join(names)}) or drop the --arm")
    entries, hashes = {}, {}
    for name in names:
        over = flatten(arms.get(name, {}))           # a section's keys ({"lora": {...}}) one by one
        method = over.pop("method", name if name in SPECS else None)
        if method is None:
            flag = f"--arm {name}" if name in arms else f"--methods {name}"
            raise UserError(f"{flag}: not a registered method ({', '.join(SPECS)}); define the arm's "
                            f"method with --arm {name}:method=METHOD")
        if bad := [k for k in over if k == tune_key or k.split(".", 1)[0] in _NOT_ARM_KEYS]:
            why = (f"is the tuned key; give the arm its own grid with --tune {name}:{bad[0]}=V1,V2"
                   if bad[0] == tune_key else "is the whole comparison's, not an arm's; set it once "
                   "for all (seeds: --seeds)")
            raise UserError(f"--arm {name}:{bad[0]}=...: {bad[0]} {why}")
        try:
            run_cfg = with_overrides(cfg, {"method": method, **over}, where=f"--arm {name}")
        except UserError as e:
            raise UserError(str(e) if str(e).startswith("--arm") else f"--arm {name}: {e}") from None
        entries[name] = {"method": method, **{k: _read(run_cfg, k) for k in over}}
        if (h := config_hash(run_cfg)) in hashes:
            raise UserError(f"--arm {name}: the same configuration as '{hashes[h]}'; set a key that "
                            "differs, or compare one of them")
        hashes[h] = name
    return entries


def _read(cfg: ExperimentConfig, key: str):
    """The value of dotted `key` in `cfg`."""
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _coerced(cfg: ExperimentConfig, key: str, value):
    """`value` as the config stores it for `key` (e.g. "1e-3" → 0.001), refused with the key named
    when invalid."""
    return _read(with_overrides(cfg, {key: value}), key)


def _ordered(values: list) -> list:
    """Numeric grids ascending (so "at the grid's edge" means the smallest or largest value)."""
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    return sorted(set(values)) if numeric else list(dict.fromkeys(values))


def parse_tune(items: list[str], methods: list[str]) -> tuple[str | None, dict[str, list]]:
    """`--tune optim.lr=1e-4,3e-4` (every entry) or `--tune lora:optim.lr=1e-3,3e-3` (one entry: a
    method or an arm), repeatable → (key, {entry: values}). One tuned key per comparison."""
    key, grids = None, {}
    for item in items:
        method, _, rest = item.rpartition(":") if ":" in item.split("=", 1)[0] else ("", "", item)
        if method and method not in methods:
            raise UserError(f"--tune {item}: method '{method}' is not compared; compared: {', '.join(methods)}")
        ((k, values),) = parse_grid([rest]).items()
        if key not in (None, k):
            raise UserError(f"--tune {item}: one tuned key per comparison (already tuning '{key}')")
        key = k
        for m in ([method] if method else methods):
            if m in grids:
                raise UserError(f"--tune {item}: method '{m}' already has a grid")
            grids[m] = values
    return key, grids


def _compare_pairs(runs: list[dict], tune_key: str | None) -> list[tuple[dict, dict]]:
    """The pairs a comparison tests: the entries (arms) at their chosen settings, seed by seed, and
    (from the tuning runs) the entries at each shared value of the tuned key. Two arms of one
    method (LoRA on q,v and on every linear) are a pair like two methods."""
    pairs = []
    for a, b in itertools.combinations(runs, 2):
        if a["seed"] != b["seed"] or a.get("arm", a["method"]) == b.get("arm", b["method"]):
            continue
        chosen = a["chosen"] and b["chosen"]
        shared = tune_key is not None and tune_key in a["overrides"] and \
            a["overrides"].get(tune_key) == b["overrides"].get(tune_key)
        if chosen or shared:
            pairs.append((a, b))
    return pairs


# ---- where runs execute: here, or on worker processes ---------------------------------------------

_POOLS: dict[tuple[int, int], ProcessPoolExecutor] = {}


# What the fork server imports once, so that a worker forked from it starts in milliseconds
# (lm-eval: the downstream tasks' harness, imported lazily by evaluate/downstream.py).
_PRELOAD = [__name__, "lm_eval", "lm_eval.tasks", "lm_eval.models.huggingface"]


def _pool(jobs: int, threads: int) -> ProcessPoolExecutor:
    """`jobs` worker processes of `threads` torch threads each, kept for the life of this process
    (the demo's later experiments reuse them). forkserver: workers fork from a clean server that
    imported ja-adapt once, never from this process, whose OpenMP threads a fork would copy in an
    unusable state. (One fresh process per run, for peak memories free of earlier runs, measured
    slower on 2 cores: each run re-warms its heap and lazy imports.) Methods or model aliases
    registered at run time in this process are unknown there: register them in an imported module."""
    key = (jobs, threads)
    if key not in _POOLS:
        forkserver = "forkserver" in multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("forkserver" if forkserver else "spawn")
        if forkserver:
            ctx.set_forkserver_preload(_PRELOAD)       # modules that fail to import are skipped
        _POOLS[key] = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_start_worker,
                                          initargs=(threads,))
    return _POOLS[key]


def _threads(jobs: int) -> int:
    return max(1, torch.get_num_threads() // jobs)


def warm_workers(jobs: int) -> None:
    """Start the fork server and the first workers now (its imports take seconds), while this
    process does other work (the base model's evaluation); a no-op for jobs <= 1."""
    if jobs > 1:
        _pool(jobs, _threads(jobs)).submit(int)


def _start_worker(threads: int) -> None:
    from transformers.utils import logging as hf_logging
    torch.set_num_threads(threads)
    os.environ["TQDM_DISABLE"] = "1"            # one bar, the caller's, instead of interleaved ones
    hf_logging.disable_progress_bar()           # (weight loading's too)


def _in_worker(ev: "_Evaluation", action: str, r: dict, env: dict):
    os.environ.update(env)                      # the caller's now (cache dir), not the server's at start
    os.environ["TQDM_DISABLE"] = "1"
    return getattr(ev, action)(r)


def _each(ev: "_Evaluation", action: str, runs: list[dict], jobs: int, desc: str,
          with_base: bool = False) -> list:
    """`ev.<action>(r)` for every run, in this process (jobs = 1, in order) or on `jobs` worker
    processes; the results in run order, a run's TrainingStopped in its place (the caller decides).
    Any other error is raised: at once here, or once the other runs are done on workers (their
    work is kept either way). with_base: the base model's evaluation too, when still missing (on a
    worker, beside the runs)."""
    base = with_base and ev.needs_base()
    if jobs <= 1 or len(runs) <= 1:
        if base:
            ev.evaluate_base()
        results = []
        for r in runs:
            try:
                results.append(getattr(ev, action)(r))
            except TrainingStopped as e:
                results.append(e)
        return results
    threads = _threads(jobs)
    try:
        pool = _pool(jobs, threads)
        extra = [pool.submit(_in_worker, ev, "evaluate_base", None, dict(os.environ))] if base else []
        futures = [pool.submit(_in_worker, ev, action, r, dict(os.environ)) for r in runs]
        with tqdm(total=len(runs) + len(extra), desc=f"{desc} ({jobs} at once)", unit="run",
                  dynamic_ncols=True) as bar:
            for _ in as_completed(futures + extra):
                bar.update(1)
    except BrokenProcessPool:
        _POOLS.pop((jobs, threads), None)
        raise UserError(f"{ev.out}: a worker process died (out of memory, or killed); the finished runs "
                        "are kept: re-run the same command to resume, with fewer --jobs if memory is short") from None
    errors = [f.exception() for f in futures + extra]
    if first := next((e for e in errors if e is not None and not isinstance(e, TrainingStopped)), None):
        raise first
    if base:
        ev.evaluate_base()                          # read back what the worker wrote
    errors = errors[:len(futures)]
    return [e if e is not None else f.result() for f, e in zip(futures, errors)]


def _raise_first(results: list) -> None:
    """The first TrainingStopped _each returned, raised (where a stopped run is an error)."""
    for x in results:
        if isinstance(x, TrainingStopped):
            raise x


class _Evaluation:
    """Training and evaluating runs of one experiment against its evaluation documents and base."""

    def __init__(self, out: Path, cfg: ExperimentConfig, reuse_from: list[Path] = (),
                 evaluate: bool = True, base_now: bool = True):
        """base_now: evaluate the base model here and now; else evaluate_base() when needed."""
        self.out, self.reuse_from, self.cfg, self.base = out, list(reuse_from), cfg, None
        out.mkdir(parents=True, exist_ok=True)
        if not evaluate:                                # a probe: training only
            return
        evs = eval_set(cfg)
        docs, trained = evs.docs, evs.trained                 # (lang, domain) pairs of the train split
        self.docs, self.trained = docs, trained         # what was removed, for the report
        write_json(out / "decontamination.json", evs.decontamination or {"status": "off (data.decontaminate)"})
        if base_now:
            self.evaluate_base()

    def needs_base(self) -> bool:
        return hasattr(self, "docs") and self.base is None

    def evaluate_base(self, _r=None) -> None:
        """The base model's evaluation (cached: computed once, then read)."""
        self.base = evaluate_base(self.out / "base" / "eval.json", self.cfg, self.docs, self.trained)

    def train(self, r: dict) -> dict:
        """Train run `r` unless finished; its summary."""
        run_dir, run_cfg = self.out / r["dir"], r["config"]
        summary_path = run_dir / "summary.json"
        finished = self.trained_already(r)
        if not finished and not run_dir.exists() and (same := self._finished_elsewhere(run_cfg)):
            shutil.copytree(same, run_dir)
        elif not finished:
            train(run_cfg, run_dir, resume=run_dir.exists())
        return json.loads(summary_path.read_text())

    def trained_already(self, r: dict) -> bool:
        summary = self.out / r["dir"] / "summary.json"
        return summary.is_file() and json.loads(summary.read_text())["steps"] == r["config"].train.max_steps

    def _finished_elsewhere(self, run_cfg: ExperimentConfig) -> Path | None:
        """A finished run directory of `reuse_from` trained with exactly this configuration."""
        want = config_hash(run_cfg)
        for d in self.reuse_from:
            for summary in sorted(Path(d).glob("runs/*/summary.json")):
                s = json.loads(summary.read_text())
                if s.get("config_hash") == want and s.get("steps") == run_cfg.train.max_steps:
                    return summary.parent
        return None

    def val_loss(self, r: dict) -> float:
        loss = self.train(r)["final_val_loss"]
        if loss is None:
            raise UserError(f"{self.out / r['dir']}: no validation loss to tune on; set "
                            "data.val_fraction > 0 so the corpus has a validation split")
        return loss

    def train_and_evaluate(self, r: dict) -> None:
        """Train `r`, evaluate its checkpoints (likelihood only, for the curves) and its final
        weights (everything, or likelihood only for a light run)."""
        docs, trained, base = self.docs, self.trained, self.base
        run_dir, run_cfg = self.out / r["dir"], r["config"]
        final_step = self.train(r)["steps"]
        for ckpt in [] if r["light"] or not r.get("curve", True) else checkpoint.complete(run_dir / "checkpoints"):
            # the final step's point on the learning curve is the run's own (full) evaluation;
            # tuning points that were not chosen get no learning curve
            if not (ckpt / "eval.json").is_file() and checkpoint.step_of(ckpt) != final_step:
                model, tok = artifacts.load_weights(checkpoint.weights_in(ckpt), run_cfg)
                evaluate_into(ckpt / "eval.json", model, tok, run_cfg, docs, trained, base, light=True)
        if not (run_dir / "eval.json").is_file():
            model, tok, _ = artifacts.load_run(run_dir)
            evaluate_into(run_dir / "eval.json", model, tok, run_cfg, docs, trained, base, light=r["light"])


def evaluate_base(path: Path, cfg: ExperimentConfig, docs, trained) -> dict:
    """The base model's evaluation, shared between experiments through the user cache: the same
    base weights, tokenizer, documents and eval settings give the same (deterministic) result."""
    if path.is_file():
        return json.loads(path.read_text())
    model = resolve_name(cfg.model.name_or_path)
    weights = sorted((str(f), f.stat().st_size, f.stat().st_mtime_ns)
                     for f in Path(model).glob("*.safetensors")) if Path(model).is_dir() else []
    key = hashlib.sha256(json.dumps([model, weights, cfg.model.tokenizer, cfg.seed, corpus_fingerprint(docs),
                                     to_dict(cfg)["eval"], trained], default=str).encode()).hexdigest()[:24]
    cached = cache_root() / "evals" / f"base-{key}.json"
    if cached.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, path)
        return json.loads(path.read_text())
    base_model, tokenizer = artifacts.load_base(cfg)
    results = evaluate_into(path, base_model, tokenizer, cfg, docs, trained)
    cached.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, cached)
    return results


def _likelihood_only(results: dict) -> dict:
    """An eval.json's content without what a light evaluation (EvalConfig.light) does not make."""
    return {k: v for k, v in results.items() if k not in ("generation", "supervised", "downstream")}


def _chosen(r: dict) -> bool:
    """A run at the settings an experiment compares: a comparison's chosen tuning point or seed, a
    sweep's fully evaluated point (a sweep's likelihood-only points are compared among themselves)."""
    return r.get("chosen", not r.get("light"))


def write_stats(out: Path, runs: list[dict], cfg: ExperimentConfig,
                pairs: list[tuple[dict, dict]] | None = None) -> None:
    """Paired document-level statistics (evaluate.run.compare_models) of `pairs` (default: every
    two runs with the same seed), and of each run at its compared settings against the base model."""
    base = json.loads((out / "base" / "eval.json").read_text())
    # a likelihood-only run is compared on likelihood only, also where its eval.json holds more (a
    # fully evaluated run reused from another experiment)
    evals = {r["name"]: _likelihood_only(json.loads((out / r["dir"] / "eval.json").read_text()))
             if r.get("light") else json.loads((out / r["dir"] / "eval.json").read_text()) for r in runs}
    if pairs is None:
        pairs = [(a, b) for a, b in itertools.combinations(runs, 2) if a["seed"] == b["seed"]]
    entries = [{"a": a["name"], "b": b["name"], "seed": a["seed"],
                "stats": compare_models(evals[a["name"]], evals[b["name"]], cfg.eval)} for a, b in pairs]
    vs_base = [{"a": r["name"], "b": "base", "seed": r["seed"],
                "stats": compare_models(evals[r["name"]], base, cfg.eval)} for r in runs if _chosen(r)]
    (out / "stats.json").write_text(json.dumps({"pairs": entries, "vs_base": vs_base}, indent=1))


def write_plan(out: Path, cfg: ExperimentConfig, runs: list[dict]) -> None:
    """Predicted memory of each run's configuration (ja_adapt.models.plan), shown beside the measured."""
    plans = {}
    for r in runs:
        c = r["config"]
        summary = json.loads((out / r["dir"] / "summary.json").read_text())
        mc = model_config(c.model.name_or_path, c.model.trust_remote_code)
        mc.vocab_size = summary["vocab_size"]           # presets are resized to their tokenizer
        plans[r["name"]] = plan_run_memory(mc, c)
    (out / "plan.json").write_text(json.dumps(plans, indent=1, default=str))
