"""`ja-adapt bench`: ja-adapt's training engine against TRL's SFTTrainer, side by side, A/B alternated.

Every run is its own process (bench_workers.py), so peak RSS and CUDA peaks are per run and no side
inherits another's caches. Sides:
  ja-adapt     the engine: methods.build_model, step.build_optimizer, distributed.wrap_model and
               step.train_step
               (the fused loss of loss.training_loss, precision.autocast) over PackedBatches
  ja-adapt+compile  the same with train.compile=true (compiling happens in the warmup steps)
  trl-default  TRL SFTTrainer with its defaults (no packing, pad to the longest row, gradient
               checkpointing on, fused AdamW): what most users run
  trl-best     SFTTrainer with its best documented throughput settings: packing="bfd" with
               padding-free batches, gradient checkpointing as the engine has it
All sides share the model (preset, seeded random weights), the documents and tokenizer, batch, seq,
precision, LoRA config and AdamW hyper-parameters (lr, betas, eps, weight decay, clip, warmup).
Engine settings go in as `key=value` (train.compile=true, train.loss_chunk_size=512,
train.emulate_bf16=off ...).

The engine calls step.train_step itself rather than train.train, because train.train builds the
model with the tokenizer's vocabulary (the bench keeps the preset's, 151,936 for Qwen2.5) and
always re-reads the corpus and saves a checkpoint (tests/unit/apps/test_bench.py checks its losses against
train.train's).

Timing: a step is the interval between the ends of consecutive optimizer steps (data fetch, forward,
backward, clip, AdamW, bookkeeping; CUDA synchronised); the first `warmup` steps are dropped.
tokens/s counts non-padding tokens only. The summary over repeats and its Markdown tables are
bench_report.py's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ja_adapt.apps.bench_report import summarise, table
from ja_adapt.apps.bench_workers import ENGINES
from ja_adapt.config import load_config, to_dict
from ja_adapt.core.errors import EXIT_USER_ERROR, UserError
from ja_adapt.core.jsonio import write_json
from ja_adapt.data.corpora import load_sources
from ja_adapt.data.documents import Document
from ja_adapt.data.tokenizer import train_tokenizer
from ja_adapt.data.tokens import build_token_store
from ja_adapt.methods.spec import SPECS
from ja_adapt.models.load import PRESETS, resolve_device
from ja_adapt.train import telemetry

SIDES = ("ja-adapt", "ja-adapt+compile", "trl-default", "trl-best")
CORPORA = ("hg-help-ja", "hironsan-news", "chatterbot-ja")


@dataclass
class BenchConfig:
    preset: str = "tiny"  # model architecture preset (random weights, seeded)
    methods: list[str] = field(default_factory=lambda: ["lora", "full"])  # methods to benchmark
    sides: list[str] = field(default_factory=lambda: ["ja-adapt", "trl-default", "trl-best"])  # of SIDES
    precision: str = "bf16"  # fp32, bf16 or fp16 (autocast with fp32 master weights)
    batch: int = 8  # rows per step (B)
    seq: int = 256  # tokens per row (T); the peers' max_length
    steps: int = 12  # measured optimizer steps per run
    warmup: int = 3  # steps run first and not measured
    repeats: int = 3  # alternating repetitions of every side
    device: str = "auto"  # auto, cpu, cuda
    threads: int = 0  # CPU threads per run (OMP_NUM_THREADS); 0 = torch's default
    seed: int = 0  # model init, document lengths, data order
    corpora: list[str] = field(default_factory=lambda: list(CORPORA))  # Japanese package corpora
    max_chars: int | None = None  # cap per corpus (tests); None = all of it
    docs: str | None = None  # JSONL of {"text"} documents instead of the corpora
    doc_chars: float = 250.0  # median document length in characters (log-normal)
    doc_sigma: float = 1.0  # log-normal sigma of document lengths
    vocab_size: int = 8192  # tokenizer trained on the documents (capped by the model's)
    overrides: list[str] = field(default_factory=list)  # engine config overrides (key=value)

    def validate(self) -> None:
        if self.preset not in PRESETS:
            raise UserError(f"--preset '{self.preset}': use one of {', '.join(PRESETS)}")
        for m in self.methods:
            if m not in SPECS:
                raise UserError(f"--method '{m}': use a comma list of {', '.join(SPECS)}")
        for s in self.sides:
            if s not in SIDES:
                raise UserError(f"--sides '{s}': use a comma list of {', '.join(SIDES)}")
        for key in ("batch", "seq", "steps", "repeats"):
            if getattr(self, key) <= 0:
                raise UserError(f"--{key} {getattr(self, key)}: must be a positive integer")
        if self.warmup < 0:
            raise UserError(f"--warmup {self.warmup}: must be >= 0")


# ---- data ------------------------------------------------------------------------------------------


def bench_documents(cfg: BenchConfig) -> list[str]:
    """Japanese texts of log-normal length: the corpora's sentences regrouped, in corpus order.

    The package corpora come in ~500-character documents; real corpora have heavy-tailed lengths,
    which is what makes padding costly, so sentences are regrouped to lengths drawn from
    LogNormal(log(doc_chars), doc_sigma) (seeded).
    """
    if cfg.docs:  # exported by --export-docs on a machine with the corpora
        path = Path(cfg.docs)
        if not path.is_file():
            raise UserError(f"--docs {path}: no such file; write one with --export-docs {path}")
        return [json.loads(line)["text"] for line in path.read_text("utf-8").splitlines() if line]
    docs, _ = load_sources(cfg.corpora, max_chars_per_source=cfg.max_chars)
    rng = np.random.default_rng(cfg.seed)

    def draw():
        return max(8.0, rng.lognormal(np.log(cfg.doc_chars), cfg.doc_sigma))

    out, cur, target = [], "", draw()
    for doc in docs:
        for unit in re.split(r"(?<=[。！？\n])", doc.text):
            cur += unit
            if len(cur) >= target and cur.strip():
                out.append(cur.strip())
                cur, target = "", draw()
    if cur.strip():
        out.append(cur.strip())
    if not out:
        raise UserError(f"--corpora {','.join(cfg.corpora)}: no text; install the corpus packages")
    return out


def engine_config(cfg: BenchConfig, method: str):
    """The engine's ExperimentConfig: `key=value` overrides (train.compile=true ...), then the
    bench's own settings, which win."""
    flags = {
        "model.name_or_path": cfg.preset,
        "method": method,
        "precision": cfg.precision,
        "seed": cfg.seed,
        "device": cfg.device,
        "data.seq_len": cfg.seq,
        "train.batch_size": cfg.batch,
        "train.max_steps": cfg.warmup + cfg.steps + 1,
        "optim.warmup_steps": 1,
        "train.tensorboard": False,
        "train.progress": False,
    }
    return load_config(None, cfg.overrides, flags)


def prepare(cfg: BenchConfig, work: Path) -> dict:
    """Documents (JSONL), tokenizer and token cache in `work`, shared by every run."""
    texts = bench_documents(cfg)
    model_vocab = PRESETS[cfg.preset]["vocab_size"]
    tok = train_tokenizer(texts, min(cfg.vocab_size, model_vocab), out_dir=work / "tokenizer")
    (work / "docs.jsonl").write_text(
        "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8"
    )
    build_token_store([Document(t) for t in texts], tok, work / "cache")
    lengths = np.array([len(ids) + 1 for ids in tok(texts)["input_ids"]])
    return {
        "tokenizer": str(work / "tokenizer"),
        "docs": str(work / "docs.jsonl"),
        "cache": str(work / "cache"),
        "model_vocab": model_vocab,
        "n_docs": len(texts),
        "n_tokens": int(lengths.sum()),
        "doc_tokens_p10_p50_p90": [float(x) for x in np.percentile(lengths, [10, 50, 90])],
    }


# ---- orchestration ---------------------------------------------------------------------------------


def _spawn(spec: dict, work: Path, timeout: float | None) -> dict:
    """Run `worker(spec)` in a fresh interpreter; its result JSON, or {"error": ...}."""
    name = f"{spec['method']}-{spec['side']}-{spec['repeat']}"
    spec_path, result_path = work / f"{name}.spec.json", work / f"{name}.result.json"
    write_json(spec_path, spec, indent=None, ensure_ascii=True, strict=False)
    cmd = [sys.executable, "-m", "ja_adapt.apps.bench_workers", str(spec_path), str(result_path)]
    env = dict(os.environ)
    if spec["bench"]["threads"] > 0:  # the same thread count for every side
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(spec["bench"]["threads"])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        return {
            "side": spec["side"],
            "method": spec["method"],
            "repeat": spec["repeat"],
            "error": f"timed out after {timeout} s",
        }
    if proc.returncode != 0 or not result_path.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {
            "side": spec["side"],
            "method": spec["method"],
            "repeat": spec["repeat"],
            "error": f"exit {proc.returncode}: " + " | ".join(tail),
        }
    return json.loads(result_path.read_text())


def _without_missing_trl(cfg: BenchConfig, log) -> None:
    """Drop the TRL sides from `cfg.sides` when trl (the optional `bench` extra) is not installed."""
    if "trl-default" in cfg.sides or "trl-best" in cfg.sides:
        try:
            import trl  # noqa: F401  (optional: the `bench` extra)
        except ImportError:
            log("bench: trl is not installed; running ja-adapt only")
            cfg.sides = [s for s in cfg.sides if s in ENGINES]


def _alternation(cfg: BenchConfig):
    """(repeat, method, side) in run order: every repeat runs every method, each with the sides
    rotated one further (A B C, B C A, ...), so no side always holds the same place in the order."""
    for repeat in range(cfg.repeats):
        k = repeat % len(cfg.sides)
        for method in cfg.methods:
            for side in cfg.sides[k:] + cfg.sides[:k]:
                yield repeat, method, side


def _outcome(r: dict) -> str:
    return r["error"] if "error" in r else f"{r['tokens_per_s']:,.0f} tokens/s, step {r['step_time_s']:.3f} s"


def run_bench(cfg: BenchConfig, out: Path | None = None, *, timeout: float | None = 900, log=print) -> dict:
    """Prepare data once, then repeat: every method, every side in a rotating order (A B C, B C A,
    ...), each run in its own process. Returns (and writes to `out`) runs, summary and facts."""
    cfg.validate()
    _without_missing_trl(cfg, log)
    engine = {m: engine_config(cfg, m) for m in cfg.methods}  # validates overrides before any work
    result = {
        "config": asdict(cfg),
        "engine_config": to_dict(engine[cfg.methods[0]]),
        "device": telemetry.device_info(resolve_device(cfg.device)),
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="ja-adapt-bench-") as tmp:
        work = Path(tmp)
        facts = prepare(cfg, work)
        result["data"] = {k: v for k, v in facts.items() if k not in ("tokenizer", "docs", "cache")}
        log(
            f"bench: {facts['n_docs']} documents, {facts['n_tokens']:,} tokens "
            f"(p10/p50/p90 {facts['doc_tokens_p10_p50_p90']}), load {os.getloadavg()[0]:.2f}"
        )
        for repeat, method, side in _alternation(cfg):
            spec = {
                **facts,
                "side": side,
                "method": method,
                "repeat": repeat,
                "workdir": str(work),
                "bench": asdict(cfg),
                "engine": to_dict(engine[method]),
            }
            r = _spawn(spec, work, timeout)
            result["runs"].append(r)
            log(f"bench: {method} {side} #{repeat}: " + _outcome(r))
            result.update(load_average=os.getloadavg(), summary=summarise(result["runs"]))
            if out is not None:  # after every run: a killed benchmark keeps its runs
                write_json(out, result, ensure_ascii=True, strict=False)
    return result


# ---- command line ------------------------------------------------------------------------------------


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = BenchConfig()
    p.add_argument("--preset", default=d.preset, help="model preset (random weights)")
    p.add_argument("--method", default=",".join(d.methods), help=f"comma list of {', '.join(SPECS)}")
    p.add_argument("--sides", default=",".join(d.sides), help=f"comma list of {', '.join(SIDES)}")
    p.add_argument("--precision", default=d.precision, help="fp32, bf16 or fp16")
    p.add_argument("--batch", type=int, default=d.batch, help="rows per step")
    p.add_argument("--seq", type=int, default=d.seq, help="tokens per row (peers: max_length)")
    p.add_argument("--steps", type=int, default=d.steps, help="measured steps per run")
    p.add_argument("--warmup", type=int, default=d.warmup, help="unmeasured steps first")
    p.add_argument("--repeats", type=int, default=d.repeats, help="alternating repetitions")
    p.add_argument("--device", default=d.device, help="auto, cpu or cuda")
    p.add_argument("--threads", type=int, default=d.threads, help="CPU threads per run (0: default)")
    p.add_argument("--corpora", default=",".join(d.corpora), help="package corpora (data/corpora.py)")
    p.add_argument("--max-chars", type=int, default=None, help="cap each corpus (quick runs)")
    p.add_argument("--docs", default=None, help="JSONL documents instead of --corpora")
    p.add_argument(
        "--export-docs",
        type=Path,
        default=None,
        help="write the benchmark documents to this JSONL and stop (for offline machines)",
    )
    p.add_argument("--out", type=Path, default=Path("bench.json"), help="results JSON")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="engine config overrides, e.g. train.loss_chunk_size=1024 train.compile=true",
    )


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    return BenchConfig(
        preset=args.preset,
        methods=_csv(args.method),
        sides=_csv(args.sides),
        precision=args.precision,
        batch=args.batch,
        seq=args.seq,
        steps=args.steps,
        warmup=args.warmup,
        repeats=args.repeats,
        device=args.device,
        threads=args.threads,
        corpora=_csv(args.corpora),
        max_chars=args.max_chars,
        docs=args.docs,
        overrides=list(args.overrides),
    )


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.export_docs is not None:
        texts = bench_documents(cfg)
        args.export_docs.parent.mkdir(parents=True, exist_ok=True)
        args.export_docs.write_text(
            "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8"
        )
        print(f"{args.export_docs}: {len(texts)} documents")
        return 0
    result = run_bench(cfg, args.out)
    print(table(result["summary"]))
    print(f"results: {args.out}")
    errors = [r for r in result["runs"] if "error" in r]
    return 1 if errors else 0


def _main(argv: list[str] | None = None) -> int:
    """`python -m ja_adapt.apps.bench ...`: the bench command line without ja_adapt.apps.cli (whose other
    subcommands need more packages than a bare GPU machine has); the same parser and the same
    one-line error handling."""
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="ja-adapt bench", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except UserError as e:
        print(f"ja-adapt bench: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(_main())
