"""The demo's orchestration: corpora, base model, the comparison, the sweeps, the report (`run_demo`)."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from ja_adapt.apps.demo.base_model import ensure_base
from ja_adapt.apps.demo.corpora import build_corpora, write_corpora
from ja_adapt.apps.demo.settings import (
    CURVE_SEEDS,
    DEFAULT_OUT,
    FULL,
    JOBS,
    LIKELIHOOD_ONLY,
    METHODS,
    QUICK,
    SWEEPS,
    TUNE_KEY,
    DemoSizes,
    demo_config,
    sweep_plan,
)
from ja_adapt.apps.progress import Stages
from ja_adapt.config import ExperimentConfig
from ja_adapt.core.errors import UserError
from ja_adapt.core.jsonio import write_json
from ja_adapt.experiments import run_all, run_compare, warm_workers
from ja_adapt.report import build_results, executive_summary, write_report


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / "corpora.json").is_file():
        raise UserError(f"{out}: exists, is not empty and is not a demo output; choose another --out")


def _stage_plan(sizes: DemoSizes, quick: bool) -> dict[str, float]:
    """Each stage's estimated seconds on 2 cores, in order (the progress bar's units)."""
    plan = {"corpora": 5 if quick else 15, "base model": 10 if quick else 300, "compare": 60 if quick else 620}
    plan.update({f"sweep {n}": (10 if quick else 60) for n in (sizes.sweeps or SWEEPS)})
    plan["report"] = 10 if quick else 30
    return plan


def _experiments(out: Path, cfg: ExperimentConfig, sizes: DemoSizes, stages: Stages) -> list[Path]:
    """The comparison, then the sweeps at LoRA's chosen rate; their directories."""
    dirs = [out / "compare"]
    seeds = [cfg.seed + i for i in range(sizes.seeds)]
    with stages.stage("compare"):
        tuning = run_compare(
            dirs[0],
            cfg,
            METHODS,
            seeds,
            TUNE_KEY,
            {**sizes.tune_grids, **sizes.method_grids},
            likelihood_only=LIKELIHOOD_ONLY,
            jobs=JOBS,
            curve_seeds=CURVE_SEEDS,
            arms=sizes.arms,
            tune_extend=sizes.tune_extend,
        )
    for name, (grid, sweep_cfg, purpose) in sweep_plan(sizes, cfg, tuning["chosen"]).items():
        dirs.append(out / f"sweep-{name}")
        with stages.stage(f"sweep {name}"):
            run_all(
                dirs[-1],
                "sweep",
                sweep_cfg,
                grid,
                [sweep_cfg.seed],
                purpose="probe" if purpose == "probe" else "quality",
                likelihood_only=purpose == "likelihood",
                reuse_from=[dirs[0]],
                jobs=1 if purpose == "probe" else JOBS,
            )  # a probe times runs alone
    return dirs


def run_demo(out: Path = DEFAULT_OUT, quick: bool = False) -> dict:
    """The whole demo into `out`; returns the merged results (results.json). Re-running it resumes."""
    out = Path(out)
    _check_out(out)
    sizes = QUICK if quick else FULL
    t0 = time.perf_counter()
    stages = Stages(_stage_plan(sizes, quick))
    try:
        with stages.stage("corpora"):
            corpora = build_corpora(sizes)
            write_corpora(out, corpora)
        warm_workers(JOBS)  # the worker processes import while the base model trains
        with stages.stage("base model"):
            base_dir = ensure_base(corpora, sizes)
        cfg = demo_config(sizes, (out / "data").resolve(), base_dir)
        dirs = _experiments(out, cfg, sizes, stages)
        with stages.stage("report"):
            for d in dirs:  # beside each experiment, where a report reader can find it
                (d / "corpora.json").write_text((out / "corpora.json").read_text(encoding="utf-8"), encoding="utf-8")
            results = build_results(dirs)
            paths = write_report(out, results)
    finally:
        stages.close()
    wall = time.perf_counter() - t0
    write_json(
        out / "demo.json",
        {
            "quick": quick,
            "base_model": str(base_dir),
            "experiments": [str(d) for d in dirs],
            "wall_time_s": wall,
            "stage_times_s": stages.times,
            "sizes": asdict(sizes),
        },
        ensure_ascii=True,
        strict=False,
        default=str,
    )
    print(executive_summary(results))
    print(f"\nreport: {paths['report.md']} (also {paths['report.html'].name}); demo took {wall / 60:.1f} min")
    return results
