"""`compare` and `sweep`: which runs, on the same data and budget, resumable.

The comparison protocol (`run_compare`): each compared entry (a method, or an arm: a named set of
config overrides, such as LoRA on every linear beside LoRA on q,v; `compared_entries`) first gets its
own value of a tuned key (the learning rate) from a grid, by final validation loss of seed-0 runs;
then every other seed trains at each entry's chosen value. The seed-0 run at the chosen value is one
of the seeds (selection used the validation split; every reported quality number is measured on the
test split and the evaluation-only corpora). A user who fixes the rate passes no grid and skips tuning.

    OUT/experiment.json          what was asked: kind, resolved base config, grid, seeds, runs (each
                                 with its arm), arms (their overrides), tuning (grid per entry,
                                 validation losses, chosen value)
    OUT/base/eval.json           the base model's evaluation (the reference for gains and forgetting)
    OUT/runs/<name>/             one run directory per (method | grid point, seed), see train/loop.py;
                                 plus eval.json (final weights) and checkpoints/*/eval.json
    OUT/stats.json               paired statistics (every two entries, each vs base, seed-matched)
    OUT/plan.json                predicted memory of each method (ja_adapt.models.plan), beside the measured
    OUT/decontamination.json     evaluation documents removed as contained in training text (data/dedup.py)

Re-running the same command skips finished runs and evaluations and resumes a killed run. With
`jobs` > 1 the runs of a phase (tuning, then the rest) train and evaluate on that many worker
processes at once, each with its share of the torch threads, with the same numbers (thread count
does not change the arithmetic here; a test checks it); docs/demo.md ("Two runs at once") has the
measured speed-up. A run's time per step is then measured beside another run (summary.json records
the threads; experiment.json the jobs). The report over OUT is the report stage's (ja_adapt.report);
`ja-adapt compare` / `sweep` (apps/cli/experiments.py) run both.

Modules: runs.py (which runs: PlannedRun, the grid, the compared entries), protocol.py (run_all,
run_compare: the tuning protocol), executor.py (RunExecutor: training and evaluation, cached),
workers.py (the process pool), outputs.py (experiment.json, stats.json, plan.json).
"""

from ja_adapt.experiments.executor import RunExecutor, cached_base_evaluation, evaluate_into
from ja_adapt.experiments.outputs import write_experiment, write_plan, write_stats
from ja_adapt.experiments.protocol import run_all, run_compare
from ja_adapt.experiments.runs import PlannedRun, compared_entries, plan_runs, planned_run, run_name
from ja_adapt.experiments.workers import run_each, warm_workers

__all__ = [
    "PlannedRun",
    "RunExecutor",
    "cached_base_evaluation",
    "compared_entries",
    "evaluate_into",
    "plan_runs",
    "planned_run",
    "run_all",
    "run_compare",
    "run_each",
    "run_name",
    "warm_workers",
    "write_experiment",
    "write_plan",
    "write_stats",
]
