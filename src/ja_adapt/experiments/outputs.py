"""An experiment's own files: experiment.json (what was asked), stats.json, plan.json.

Each is written atomically (core.jsonio.write_json) with the bytes json.dumps has always given them
(ASCII, NaN as written by Python: `strict=False`)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from ja_adapt.config import ExperimentConfig, to_dict
from ja_adapt.core.errors import UserError
from ja_adapt.core.jsonio import write_json
from ja_adapt.evaluate.compare import compare_models
from ja_adapt.experiments.runs import PlannedRun
from ja_adapt.models.load import model_config
from ja_adapt.models.plan import plan_run_memory


def write_experiment(
    out: Path,
    kind: str,
    cfg: ExperimentConfig,
    grid: dict,
    seeds: list[int],
    runs: list[PlannedRun],
    extra: dict | None = None,
) -> None:
    """experiment.json; re-running the same experiment merges runs, a different one is refused.
    extra: more top-level keys (purpose, tuning, arms, budget); `extra["tuning"]["spec"]` (but for
    its grids, extension limit and tolerance: a wider search reuses what was trained),
    `extra["arms"]` and `extra["budget"]` must match too."""
    manifest = {
        "kind": kind,
        "config": to_dict(cfg),
        "grid": grid,
        "seeds": seeds,
        "base": "base",
        "runs": [r.record() for r in runs],
        **(extra or {}),
    }
    path = out / "experiment.json"
    if path.is_file():
        old = json.loads(path.read_text())

        def spec(m):  # a wider grid, limit or tolerance reuses the finished runs: not compared
            s = (m.get("tuning") or {}).get("spec")
            return s and {k: v for k, v in s.items() if k not in ("grids", "extend", "tolerance")}

        if (
            old.get("config") != manifest["config"]
            or old.get("grid") != grid
            or old.get("kind") != kind
            or spec(old) != spec(manifest)
            or old.get("arms") != manifest.get("arms")
            or old.get("budget") != manifest.get("budget")
        ):
            raise UserError(
                f"{path}: {out} holds a different experiment; re-run it with the same "
                "command to resume, or choose another --out"
            )
        manifest["seeds"] = sorted(set(old.get("seeds", [])) | set(seeds))
        known = {r["name"] for r in manifest["runs"]}
        manifest["runs"] += [r for r in old.get("runs", []) if r["name"] not in known]
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, manifest, ensure_ascii=True, strict=False)


def _likelihood_only(results: dict) -> dict:
    """An eval.json's content without what a likelihood-only evaluation (EvalConfig.likelihood_only)
    does not make."""
    return {k: v for k, v in results.items() if k not in ("generation", "supervised", "downstream")}


def _chosen(r: dict) -> bool:
    """A run at the settings an experiment compares: a comparison's chosen tuning point or seed, a
    sweep's fully evaluated point (a sweep's likelihood-only points are compared among themselves)."""
    return r.get("chosen", not r.get("light"))  # "light": experiment.json's likelihood_only


def write_stats(
    out: Path, runs: list[dict], cfg: ExperimentConfig, pairs: list[tuple[dict, dict]] | None = None
) -> None:
    """Paired document-level statistics (evaluate.compare.compare_models) of `pairs` (default: every
    two runs with the same seed), and of each run at its compared settings against the base model.
    runs: run records as experiment.json lists them (PlannedRun.record())."""
    base = json.loads((out / "base" / "eval.json").read_text())
    # a likelihood-only run is compared on likelihood only, also where its eval.json holds more (a
    # fully evaluated run reused from another experiment)
    evals = {
        r["name"]: _likelihood_only(json.loads((out / r["dir"] / "eval.json").read_text()))
        if r.get("light")
        else json.loads((out / r["dir"] / "eval.json").read_text())
        for r in runs
    }
    if pairs is None:
        pairs = [(a, b) for a, b in itertools.combinations(runs, 2) if a["seed"] == b["seed"]]
    entries = [
        {
            "a": a["name"],
            "b": b["name"],
            "seed": a["seed"],
            "stats": compare_models(evals[a["name"]], evals[b["name"]], cfg.eval),
        }
        for a, b in pairs
    ]
    vs_base = [
        {"a": r["name"], "b": "base", "seed": r["seed"], "stats": compare_models(evals[r["name"]], base, cfg.eval)}
        for r in runs
        if _chosen(r)
    ]
    write_json(out / "stats.json", {"pairs": entries, "vs_base": vs_base}, ensure_ascii=True, strict=False)


def write_plan(out: Path, runs: list[PlannedRun]) -> None:
    """Predicted memory of each run's configuration (ja_adapt.models.plan), shown beside the measured."""
    plans = {}
    for r in runs:
        c = r.config
        summary = json.loads((out / r.dir / "summary.json").read_text())
        mc = model_config(c.model.name_or_path, c.model.trust_remote_code)
        mc.vocab_size = summary["vocab_size"]  # presets are resized to their tokenizer
        plans[r.name] = plan_run_memory(mc, c)
    write_json(out / "plan.json", plans, ensure_ascii=True, strict=False, default=str)
