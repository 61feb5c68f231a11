"""`ja-adapt compare` and `ja-adapt sweep`: parse the `--grid` / `--tune` / `--arm` syntax, run the
experiment (experiments.run_compare / run_all), then its report."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from ja_adapt.apps.cli.flags import add_training_flags, config_from_args
from ja_adapt.config import parse_override
from ja_adapt.core.errors import UserError
from ja_adapt.experiments import run_all, run_compare
from ja_adapt.experiments.budget import check_budget
from ja_adapt.methods.spec import SPECS
from ja_adapt.report import build_results, executive_summary, write_report
from ja_adapt.train.rundir import locked


def parse_grid(items: list[str]) -> dict[str, list]:
    """`--grid lora.rank=4,8,16` (repeatable) → {"lora.rank": [4, 8, 16]}."""
    grid: dict[str, list] = {}
    for item in items:
        key, value = parse_override(item)
        values = value if isinstance(value, list) else [parse_override(f"{key}={v}")[1] for v in str(value).split(",")]
        if not values or key in grid:
            raise UserError(f"--grid {item}: give each key once, with comma-separated values")
        grid[key] = values
    return grid


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
        for m in [method] if method else methods:
            if m in grids:
                raise UserError(f"--tune {item}: method '{m}' already has a grid")
            grids[m] = values
    return key, grids


def parse_arms(items: list[str]) -> dict[str, dict]:
    """`--arm lora-all:method=lora --arm lora-all:lora.targets=all-linear` (repeatable; one
    NAME:KEY=VALUE each, the same NAME accumulating) → {"lora-all": {"method": "lora",
    "lora.targets": "all-linear"}}. Syntax only: experiments.compared_entries validates the keys
    and values."""
    arms: dict[str, dict] = {}
    for item in items:
        name, sep, rest = item.partition(":")
        if not sep or "=" not in rest or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise UserError(
                f"--arm {item}: expected NAME:KEY=VALUE with NAME of letters, digits, "
                "'-', '_' or '.' (e.g. --arm lora-all:lora.targets=all-linear)"
            )
        key, value = parse_override(rest)
        if key in arms.setdefault(name, {}):
            raise UserError(f"--arm {item}: arm '{name}' already sets {key}; give each key once")
        arms[name][key] = value
    return arms


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `ja-adapt compare` or `ja-adapt sweep` (told apart by the parser's program name):
    the training flags and --seeds, the experiment's own flags, then those both share. The order of
    the add_argument calls is the order of `--help`."""
    add_training_flags(parser)
    parser.add_argument("--seeds", type=int, default=1, help="training seeds per method (seed, seed+1, ...)")
    if parser.prog.split()[-1] == "sweep":
        _add_sweep_arguments(parser)
    else:
        _add_compare_arguments(parser)
    _add_execution_arguments(parser)


def _add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """`sweep` only: the grid, whether its runs are probes, and how much each run is evaluated."""
    parser.add_argument(
        "--grid",
        action="append",
        required=True,
        metavar="KEY=V1,V2",
        help="a swept key and its values (repeatable: the runs are the product)",
    )
    parser.add_argument(
        "--probe",
        action="store_true",
        help="runs too short to compare quality: the report shows their time and memory only",
    )
    parser.add_argument(
        "--likelihood-only",
        action="store_true",
        help="evaluate each run's likelihood metrics only (bits/char, per-script "
        "accuracy, forgetting): no generation, supervised or downstream tasks",
    )


def _add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    """`compare` only: the compared entries (methods and arms), the tuned key, and how much each
    entry's runs are evaluated."""
    parser.add_argument(
        "--methods",
        default="lora,full",
        help=f"the entries compared, comma-separated: registered methods ({', '.join(SPECS)}) or --arm names",
    )
    parser.add_argument(
        "--arm",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE",
        help="a compared entry NAME defined by config overrides (repeatable; the "
        "same NAME accumulates): e.g. --arm lora-all:method=lora --arm "
        "lora-all:lora.targets=all-linear with --methods lora,lora-all,full; "
        "method= is needed unless NAME is a registered method",
    )
    parser.add_argument(
        "--tune",
        action="append",
        default=[],
        metavar="[NAME:]KEY=V1,V2",
        help="tune KEY per entry on the first seed by validation loss, then train "
        "the other seeds at each entry's choice (e.g. optim.lr=3e-4,1e-3,3e-3, or "
        "lora:optim.lr=1e-3,3e-3 for one method or arm; repeatable)",
    )
    _add_search_and_budget_arguments(parser)  # here: --help lists them after --tune
    parser.add_argument(
        "--curve-seeds",
        type=int,
        default=None,
        metavar="N",
        help="evaluate the checkpoints (learning curves) of the first N seeds only (default: every seed)",
    )
    parser.add_argument(
        "--likelihood-only",
        nargs="?",
        const=True,
        default=False,
        metavar="NAMES",
        help="evaluate the runs of these methods or arms (comma-separated; alone: "
        "every entry) on likelihood metrics only (bits/char, per-script accuracy, "
        "forgetting: the methods table): no generation, supervised or downstream tasks",
    )


def _add_search_and_budget_arguments(parser: argparse.ArgumentParser) -> None:
    """`compare` only: what the entries hold equal, and how far the tuning search extends a grid."""
    parser.add_argument(
        "--budget",
        default=None,
        metavar="steps|tokens|flops",
        help="what the entries hold equal: steps (default: every entry trains train.max_steps), "
        "tokens (equal training tokens) or flops (equal training FLOPs: the costliest entry per "
        "step trains max_steps, the others more, e.g. LoRA); also budget=KIND among the overrides",
    )
    parser.add_argument(
        "--tune-extend",
        type=int,
        default=2,
        metavar="N",
        help="while an entry's choice is at an edge of its grid, add up to N points "
        "beyond it (same log spacing) to bracket the optimum (default 2; 0: the grid as given)",
    )
    parser.add_argument(
        "--tune-tolerance",
        type=float,
        default=0.002,
        metavar="REL",
        help="grid points whose validation loss is within this relative tolerance of "
        "the lowest are ties; the lowest tied value is chosen (default 0.002 = 0.2%%)",
    )


def _add_execution_arguments(parser: argparse.ArgumentParser) -> None:
    """Both: how the runs execute (workers, reuse of finished runs) and whether a report follows."""
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="runs trained and evaluated at once, in N worker processes sharing the "
        "torch threads (default 1: one after the other, in this process)",
    )
    parser.add_argument(
        "--reuse-from",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="an experiment directory whose finished runs with the very same "
        "configuration are copied instead of trained again (repeatable)",
    )
    parser.add_argument("--no-report", action="store_true", help="train and evaluate only")


def _pop_budget(args: argparse.Namespace) -> str:
    """`compare`'s budget: --budget, or `budget=KIND` among the key=value overrides (taken out of
    them before the config parses them); refused unless steps, tokens or flops."""
    given = [o for o in args.overrides if o.split("=", 1)[0] == "budget"]
    args.overrides = [o for o in args.overrides if o not in given]
    kinds = [o.split("=", 1)[1] if "=" in o else "" for o in given] + [args.budget] * (args.budget is not None)
    if len(set(kinds)) > 1:
        raise UserError(f"--budget: given twice ({' and '.join(kinds)}); give one budget")
    return check_budget(kinds[0] if kinds else "steps")


def run(args: argparse.Namespace) -> int:
    budget = _pop_budget(args) if args.command == "compare" else "steps"
    cfg = config_from_args(args)
    if args.seeds <= 0:
        raise UserError(f"--seeds must be positive, got {args.seeds}")
    if getattr(args, "curve_seeds", None) is not None and args.curve_seeds <= 0:
        raise UserError(f"--curve-seeds must be positive, got {args.curve_seeds}")
    if args.jobs <= 0:
        raise UserError(f"--jobs must be positive, got {args.jobs}")
    for d in args.reuse_from:
        if not (d / "experiment.json").is_file():
            raise UserError(f"--reuse-from {d}: not an experiment directory (no experiment.json)")
    seeds = [cfg.seed + i for i in range(args.seeds)]
    with locked(args.out):  # one process per experiment directory, as per run
        if args.command == "compare":
            if args.tune_extend < 0:
                raise UserError(f"--tune-extend must be 0 or more, got {args.tune_extend}")
            if not args.tune_tolerance >= 0:
                raise UserError(f"--tune-tolerance must be 0 or more, got {args.tune_tolerance}")
            methods = parse_grid([f"method={args.methods}"])["method"]
            key, grids = parse_tune(args.tune, methods)
            light = (
                args.likelihood_only
                if isinstance(args.likelihood_only, bool)
                else parse_grid([f"method={args.likelihood_only}"])["method"]
            )
            run_compare(
                args.out,
                cfg,
                methods,
                seeds,
                key,
                grids,
                likelihood_only=light,
                reuse_from=args.reuse_from,
                jobs=args.jobs,
                curve_seeds=args.curve_seeds,
                arms=parse_arms(args.arm),
                budget=budget,
                tune_extend=args.tune_extend,
                tune_tolerance=args.tune_tolerance,
            )
        else:
            run_all(
                args.out,
                args.command,
                cfg,
                parse_grid(args.grid),
                seeds,
                purpose="probe" if args.probe else "quality",
                likelihood_only=args.likelihood_only,
                reuse_from=args.reuse_from,
                jobs=args.jobs,
            )
    if not args.no_report:
        results = build_results([args.out])
        paths = write_report(args.out, results)
        print(executive_summary(results))
        print(f"\nreport: {paths['report.html']}")
    return 0
