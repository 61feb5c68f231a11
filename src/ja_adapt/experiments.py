"""`compare` and `sweep`: which runs, on the same data and budget, resumable; then the report.

    OUT/experiment.json          what was asked: kind, resolved base config, grid, seeds, runs
    OUT/base/eval.json           the base model's evaluation (the reference for gains and forgetting)
    OUT/runs/<name>/             one run directory per (method | grid point, seed), see train.py;
                                 plus eval.json (final weights) and checkpoints/*/eval.json
    OUT/stats.json               paired statistics (LoRA vs full, each vs base, seed-matched)
    OUT/plan.json                predicted memory of each method (ja_adapt.plan), beside the measured

Re-running the same command skips finished runs and evaluations and resumes a killed run. The
report over OUT is the report stage's (ja_adapt.report); `ja-adapt compare` / `sweep` (cli/experiments.py)
run both.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from pathlib import Path

from ja_adapt import artifacts, checkpoint
from ja_adapt.cache import cache_root
from ja_adapt.config import ExperimentConfig, parse_override, to_dict, with_overrides
from ja_adapt.data.pipeline import eval_set
from ja_adapt.data.sources import corpus_fingerprint
from ja_adapt.errors import UserError
from ja_adapt.evaluate.run import compare_models, evaluate_model, write_eval
from ja_adapt.models import model_config, resolve_name
from ja_adapt.plan import plan_memory
from ja_adapt.train import train

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


def plan_runs(cfg: ExperimentConfig, grid: dict[str, list], seeds: list[int]) -> list[dict]:
    """Every grid point × seed, each with its overrides and name; validated up front."""
    runs = []
    keys = list(grid)
    for values in itertools.product(*[grid[k] for k in keys]):
        overrides = dict(zip(keys, values))
        for seed in seeds:
            run_cfg = with_overrides(cfg, {**overrides, "seed": seed})
            runs.append({"name": run_name(overrides, seed), "method": run_cfg.method, "seed": seed,
                         "overrides": overrides, "dir": f"runs/{run_name(overrides, seed)}",
                         "config": run_cfg})
    return runs


# ---- doing them ----------------------------------------------------------------------------------

def write_manifest(out: Path, kind: str, cfg: ExperimentConfig, grid: dict, seeds: list[int],
                   runs: list[dict]) -> None:
    manifest = {"kind": kind, "config": to_dict(cfg), "grid": grid, "seeds": seeds, "base": "base",
                "runs": [{k: v for k, v in r.items() if k != "config"} for r in runs]}
    path = out / "experiment.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("config") != manifest["config"] or old.get("grid") != grid or \
                old.get("kind") != kind:
            raise UserError(f"{path}: {out} holds a different experiment; re-run it with the same "
                            "command to resume, or choose another --out")
        manifest["seeds"] = sorted(set(old.get("seeds", [])) | set(seeds))
        known = {r["name"] for r in manifest["runs"]}
        manifest["runs"] += [r for r in old.get("runs", []) if r["name"] not in known]
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=1))


def evaluate_into(path: Path, model, tokenizer, cfg: ExperimentConfig, docs, trained_domains,
                  base_results=None, light: bool = False) -> dict:
    """Evaluate once and cache the result at `path` (skipped when it exists)."""
    if path.is_file():
        return json.loads(path.read_text())
    eval_cfg = cfg.eval.light() if light else cfg.eval   # checkpoints: likelihood only, for the curves
    results = evaluate_model(model, tokenizer, docs, eval_cfg, trained_domains=trained_domains,
                             base_results=base_results)
    write_eval(path, results)
    return results


def run_all(out: Path, kind: str, cfg: ExperimentConfig, grid: dict, seeds: list[int]) -> None:
    """Train and evaluate every run (skipping finished work); then stats.json and plan.json."""
    runs = plan_runs(cfg, grid, seeds)
    write_manifest(out, kind, cfg, grid, seeds, runs)
    docs, train_domains = eval_set(cfg)
    trained = sorted({d.domain for d in docs if d.lang == "ja"} & set(train_domains))
    base = evaluate_base(out / "base" / "eval.json", cfg, docs, trained)
    for r in runs:
        run_dir = out / r["dir"]
        run_cfg = r["config"]
        summary_path = run_dir / "summary.json"
        finished = summary_path.is_file() and json.loads(summary_path.read_text())["steps"] == \
            run_cfg.train.max_steps
        if not finished:
            train(run_cfg, run_dir, resume=run_dir.exists())
        final_step = json.loads(summary_path.read_text())["steps"]
        for ckpt in checkpoint.complete(run_dir / "checkpoints"):
            # the final step's point on the learning curve is the run's own (full) evaluation
            if not (ckpt / "eval.json").is_file() and checkpoint.step_of(ckpt) != final_step:
                model, tok = artifacts.load_weights(checkpoint.weights_in(ckpt), run_cfg)
                evaluate_into(ckpt / "eval.json", model, tok, run_cfg, docs, trained, base, light=True)
        model, tok, _ = artifacts.load_run(run_dir)
        evaluate_into(run_dir / "eval.json", model, tok, run_cfg, docs, trained, base)
    write_stats(out, runs, cfg)
    write_plan(out, cfg, runs)


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


def write_stats(out: Path, runs: list[dict], cfg: ExperimentConfig) -> None:
    """Paired statistics between every pair of grid points with the same seed, and each vs base."""
    base = json.loads((out / "base" / "eval.json").read_text())
    evals = {r["name"]: json.loads((out / r["dir"] / "eval.json").read_text()) for r in runs}
    pairs = []
    for a, b in itertools.combinations(runs, 2):
        if a["seed"] == b["seed"]:
            pairs.append({"a": a["name"], "b": b["name"], "seed": a["seed"],
                          "stats": compare_models(evals[a["name"]], evals[b["name"]], cfg.eval)})
    vs_base = [{"a": r["name"], "b": "base", "seed": r["seed"],
                "stats": compare_models(evals[r["name"]], base, cfg.eval)} for r in runs]
    (out / "stats.json").write_text(json.dumps({"pairs": pairs, "vs_base": vs_base}, indent=1))


def write_plan(out: Path, cfg: ExperimentConfig, runs: list[dict]) -> None:
    """Predicted memory of each run's configuration (ja_adapt.plan), shown beside the measured."""
    plans = {}
    for r in runs:
        c = r["config"]
        summary = json.loads((out / r["dir"] / "summary.json").read_text())
        mc = model_config(c.model.name_or_path, c.model.trust_remote_code)
        mc.vocab_size = summary["vocab_size"]           # presets are resized to their tokenizer
        plans[r["name"]] = plan_memory(
            mc, method=c.method, rank=c.lora.rank, targets=c.lora.targets, precision=c.precision,
            batch=c.train.batch_size, seq=c.data.seq_len,
            activation_checkpointing=c.train.activation_checkpointing,
            loss_chunk_size=c.train.loss_chunk_size)
    (out / "plan.json").write_text(json.dumps(plans, indent=1, default=str))
