"""`ja-adapt` command line: argument parsing only; each subcommand calls one function elsewhere.

User errors (ja_adapt.errors.UserError) are caught here, once: one line on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from pathlib import Path

from ja_adapt import __version__
from ja_adapt.errors import EXIT_USER_ERROR, UserError

# subcommand → (module with add_arguments(parser) and run(args) -> int, one-line help)
SUBCOMMANDS = {
    "train": ("ja_adapt.cli", "train LoRA or full fine-tuning into a run directory"),
    "merge": ("ja_adapt.cli", "merge a LoRA run's adapter into its base model (a full HF model dir)"),
    "eval": ("ja_adapt.evaluate.run", "evaluate a run or a model: bits/char, scripts, BLEU/chrF, forgetting"),
    "compare": ("ja_adapt.experiments", "base eval + LoRA + full on the same data and budget, with report"),
    "sweep": ("ja_adapt.experiments", "a grid of runs (rank, precision, lr, method), with report"),
    "report": ("ja_adapt.report", "(re)build report.md / report.html / results.json from results"),
    "plan": ("ja_adapt.plan", "parameter counts, memory and time model, hardware recommendations"),
    "bench": ("ja_adapt.bench", "ja-adapt's engine vs the HF Trainer/TRL peer, side by side"),
    "demo": ("ja_adapt.demo", "the embedded end-to-end experiment: offline, on a CPU"),
}


def add_training_flags(p: argparse.ArgumentParser, out_required: bool = True) -> None:
    """Flags shared by every command that trains; everything else is a `key=value` override."""
    p.add_argument("--config", help="YAML config (overrides of the defaults; see configs/)")
    p.add_argument("--model", help="model: preset, local directory or hub id (model.name_or_path)")
    p.add_argument("--data", action="append", help="training corpus (repeatable): .txt, .jsonl, "
                   "directory or saved dataset (data.paths)")
    p.add_argument("--method", help="lora or full (method)")
    p.add_argument("--max-steps", type=int, help="optimizer steps (train.max_steps)")
    p.add_argument("--out", required=out_required, type=Path, help="output directory")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, e.g. lora.rank=16 optim.lr=3e-4 precision=bf16")


def config_from_args(args: argparse.Namespace):
    from ja_adapt.config import load_config
    flags = {"model.name_or_path": args.model, "data.paths": args.data, "method": args.method,
             "train.max_steps": args.max_steps}
    return load_config(args.config, args.overrides, flags)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    name = parser.prog.split()[-1]
    if name == "train":
        add_training_flags(parser)
        parser.add_argument("--resume", action="store_true",
                            help="continue the run in --out from its last complete checkpoint")
        parser.add_argument("--nproc", type=int, default=1, metavar="N",
                            help="train with N local processes (re-launches through torchrun)")
    elif name == "merge":
        parser.add_argument("run", type=Path, help="a LoRA run directory")
        parser.add_argument("--out", type=Path, help="output directory (default RUN/merged)")


def run(args: argparse.Namespace) -> int:
    if args.command == "train" and args.nproc < 1:
        raise UserError(f"--nproc: must be >= 1, got {args.nproc}")
    if args.command == "train" and args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        import subprocess

        from ja_adapt.distributed import launch_command
        argv = [a for i, a in enumerate(args.argv) if a != "--nproc" and not a.startswith("--nproc=")
                and not (i > 0 and args.argv[i - 1] == "--nproc")]
        return subprocess.call(launch_command(args.nproc, argv))
    if args.command == "train":
        from ja_adapt.train import train
        summary = train(config_from_args(args), args.out, resume=args.resume)
        print(f"{args.out}: {summary['steps']} steps, final train loss "
              f"{summary['final_train_loss']:.4f}, {summary['tokens_per_s']:.0f} tokens/s, "
              f"trainable {summary['params_trainable']:,} / {summary['params_total']:,}")
        return 0
    if args.command == "merge":
        from ja_adapt.artifacts import merge_run
        print(merge_run(args.run, args.out))
        return 0
    raise AssertionError(args.command)


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the chosen subcommand's module is imported (start-up stays fast: the
    evaluation, report and benchmark modules pull in MeCab, matplotlib and TRL)."""
    parser = argparse.ArgumentParser(
        prog="ja-adapt", description="Adapt a causal LM to Japanese with LoRA and full fine-tuning, "
        "side by side, and write up the comparison.")
    parser.add_argument("--version", action="version", version=f"ja-adapt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        if name == chosen:
            mod = importlib.import_module(module)
            mod.add_arguments(p)
            p.set_defaults(_module=mod)
    return parser


def main(argv: list[str] | None = None) -> int:
    # peft and transformers warn each other about renamed APIs on every load: noise for a user
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(next((a for a in argv if a in SUBCOMMANDS), None))
    args = parser.parse_args(argv)
    args.argv = argv                                            # train --nproc re-launches with it
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
