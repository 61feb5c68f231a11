"""`ja-adapt train` and `ja-adapt merge`."""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

from ja_adapt.apps.cli.flags import add_training_flags, config_from_args
from ja_adapt.core.errors import UserError
from ja_adapt.train.artifacts import merge_run
from ja_adapt.train.distributed import launch_command
from ja_adapt.train.loop import train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    if parser.prog.split()[-1] == "train":
        add_training_flags(parser)
        parser.add_argument(
            "--resume", action="store_true", help="continue the run in --out from its last complete checkpoint"
        )
        parser.add_argument(
            "--nproc",
            type=int,
            default=1,
            metavar="N",
            help="train with N local processes (re-launches through torchrun)",
        )
    else:
        parser.add_argument("run", type=Path, help="a LoRA run directory")
        parser.add_argument("--out", type=Path, help="output directory (default RUN/merged)")


def run(args: argparse.Namespace) -> int:
    if args.command == "merge":
        print(merge_run(args.run, args.out))
        return 0
    if args.nproc < 1:
        raise UserError(f"--nproc: must be >= 1, got {args.nproc}")
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        argv = [
            a
            for i, a in enumerate(args.argv)
            if a != "--nproc" and not a.startswith("--nproc=") and not (i > 0 and args.argv[i - 1] == "--nproc")
        ]
        return subprocess.call(launch_command(args.nproc, argv))
    summary = train(config_from_args(args), args.out, resume=args.resume)
    loss, speed = summary["final_train_loss"], summary["tokens_per_s"]  # None: no finite step
    print(
        f"{args.out}: {summary['steps']} steps, final train loss "
        f"{'n/a' if loss is None else f'{loss:.4f}'}, {'n/a' if speed is None else f'{speed:.0f}'} "
        f"tokens/s, trainable {summary['params_trainable']:,} / {summary['params_total']:,}"
    )
    return 0
