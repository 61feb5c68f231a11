"""`ja-adapt` command line: argument parsing only; each subcommand calls one function elsewhere.

Each subcommand lives in a module with `add_arguments(parser)` and `run(args) -> int`: cli/train.py
(train, merge), cli/evaluate.py, cli/fertility.py, cli/experiments.py (compare, sweep), cli/report.py, cli/plan.py,
cli/demo.py, and the app bench.py. User errors (ja_adapt.core.errors.UserError) are caught here, once:
one line on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from ja_adapt import __version__
from ja_adapt.core.errors import EXIT_USER_ERROR, UserError
from ja_adapt.models.aliases import register_model_alias

# subcommand → (module with add_arguments(parser) and run(args) -> int, one-line help)
SUBCOMMANDS = {
    "train": ("ja_adapt.apps.cli.train", "train LoRA or full fine-tuning into a run directory"),
    "merge": (
        "ja_adapt.apps.cli.train",
        "merge a run's adapter (LoRA, DoRA, AdaLoRA, IA3, ...) into its base model (a full HF model dir)",
    ),
    "eval": ("ja_adapt.apps.cli.evaluate", "evaluate a run or a model: bits/char, scripts, BLEU/chrF, forgetting"),
    "fertility": (
        "ja_adapt.apps.cli.fertility",
        "characters and bytes per token of a tokenizer, per language and script",
    ),
    "compare": ("ja_adapt.apps.cli.experiments", "base eval + LoRA + full on the same data and budget, with report"),
    "sweep": ("ja_adapt.apps.cli.experiments", "a grid of runs (rank, precision, lr, method), with report"),
    "report": ("ja_adapt.apps.cli.report", "(re)build report.md / report.html / results.json from results"),
    "plan": ("ja_adapt.apps.cli.plan", "parameter counts, memory and time model, hardware recommendations"),
    "bench": ("ja_adapt.apps.bench", "ja-adapt's engine vs the HF Trainer/TRL peer, side by side"),
    "demo": ("ja_adapt.apps.cli.demo", "the embedded end-to-end experiment: offline, on a CPU"),
}


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the chosen subcommand's module is imported (start-up stays fast: the
    evaluation, report and benchmark modules pull in MeCab, matplotlib and TRL)."""
    parser = argparse.ArgumentParser(
        prog="ja-adapt",
        description="Adapt a causal LM to Japanese with LoRA and full fine-tuning, "
        "side by side, and write up the comparison.",
    )
    parser.add_argument("--version", action="version", version=f"ja-adapt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(
            name, help=help_text, description=help_text, formatter_class=argparse.ArgumentDefaultsHelpFormatter
        )
        if name == chosen:
            mod = importlib.import_module(module)
            mod.add_arguments(p)
            p.set_defaults(_module=mod, command=name)
            parser.set_defaults(_chosen_parser=p)
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    """The arguments of `argv`. The subcommand's own arguments are parsed intermixed, so `key=value`
    overrides may stand anywhere among its flags (`train --method lora lora.rank=8 --model M
    optim.lr=1e-3`), as users write them; argparse's subparsers cannot parse intermixed themselves."""
    chosen = next((a for a in argv if a in SUBCOMMANDS), None)
    parser = build_parser(chosen)
    if chosen is None or argv.index(chosen) > 0:  # --help / --version / a usage error
        return parser.parse_args(argv)
    return parser.get_default("_chosen_parser").parse_intermixed_args(argv[1:])


def _demo_base() -> str:
    from ja_adapt.apps.demo import ensure_base_model  # start-up time: only when a config names demo-base

    return str(ensure_base_model())


def main(argv: list[str] | None = None) -> int:
    # peft and transformers warn each other about renamed APIs on every load: noise for a user
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    register_model_alias("demo-base", _demo_base)  # configs/demo.yaml names the demo's base model
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    args.argv = argv  # train --nproc re-launches with it
    try:
        return args._module.run(args)
    except UserError as e:
        print(f"ja-adapt {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"ja-adapt {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
