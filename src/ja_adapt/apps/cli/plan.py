"""`ja-adapt plan`: parameter counts, memory and time of a training step, and what fits which GPU."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ja_adapt.config import parse_override
from ja_adapt.core.errors import UserError
from ja_adapt.methods.spec import SPECS
from ja_adapt.models.arch import REQUIRED_KEYS, local_config
from ja_adapt.models.plan import GIB, plan_memory, plan_time
from ja_adapt.models.recommend import RECOMMEND_GB, recommend


def _model_config(model: str):
    """The config to plan: a preset's or a local config.json's as a dict when arch.py knows the
    architecture (no torch: the answer takes milliseconds), else transformers' config."""
    config = local_config(model)
    if config is None:
        from ja_adapt.models.load import model_config  # heavy (torch, transformers): hub ids, other architectures

        config = model_config(model)  # refuses a typo before any hub lookup
    _check_config(model, config)
    return config


def _check_config(model: str, config) -> None:
    """A local config.json must state the shapes: defaults would plan a model that is not there."""
    path = Path(model)
    cfg_file = (path.parent if path.suffix == ".json" else path) / "config.json"
    if path.exists() and cfg_file.is_file():
        raw = json.loads(cfg_file.read_text(encoding="utf-8"))
        missing = [k for k in REQUIRED_KEYS if k not in raw]
        if missing:
            raise UserError(
                f"{cfg_file}: missing {', '.join(missing)}; the planner needs the "
                "model's shapes (copy the model's full config.json)"
            )
    get = config.get if isinstance(config, dict) else lambda k: getattr(config, k, None)
    for key in REQUIRED_KEYS:
        if not isinstance(get(key), int):
            raise UserError(
                f"model '{model}': config has no integer '{key}'; the planner supports "
                "decoder configs with " + ", ".join(REQUIRED_KEYS)
            )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="preset (e.g. qwen2.5-0.5b), model directory or hub id")
    p.add_argument("--method", default="lora", help=f"one of {', '.join(SPECS)}")
    p.add_argument("--rank", type=int, default=16, help="LoRA rank r")
    p.add_argument("--targets", default="qv", help="qv, qkvo, all-linear or a comma list of modules")
    p.add_argument("--lora-dropout", type=float, default=0.1, help="LoRA dropout (its mask costs memory)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a method's config key, repeatable: lora.use_dora=true, lora.train_embeddings=true, "
        "adalora.target_rank=8, ia3.targets=..., prefix.virtual_tokens=32",
    )
    p.add_argument("--precision", default="bf16", help="fp32, bf16 or fp16 (autocast, fp32 weights)")
    p.add_argument("--base-dtype", default="fp32", help="model.dtype: frozen base weights in fp32 or bf16")
    p.add_argument("--batch", type=int, default=8, help="packed rows per micro-batch")
    p.add_argument("--seq", type=int, default=None, help="tokens per packed row (256; recommend: 2048)")
    p.add_argument("--activation-checkpointing", action="store_true", help="recompute layers in backward")
    p.add_argument("--loss-chunk-size", type=int, default=0, help="rows per cross-entropy chunk (0: plain)")
    p.add_argument("--no-packing", action="store_true", help="rows hold one document (no attention mask)")
    p.add_argument("--gpu-memory", type=float, default=None, help="GPU memory (GiB) to check")
    p.add_argument("--recommend", action="store_true", help="what fits (16/24/40/80 GiB by default)")
    p.add_argument("--margin", type=float, default=0.10, help="safety margin kept free when recommending")
    p.add_argument("--gpu", default="h100", help="h100, h200 or a100 for the time model")
    p.add_argument("--mfu", type=float, default=0.4, help="assumed utilisation of the peak FLOP/s")
    p.add_argument(
        "--peak-flops",
        type=float,
        default=None,
        help="peak FLOP/s for the time model instead of --gpu's (e.g. a measured CPU matmul rate)",
    )
    p.add_argument("--tokens", type=float, default=1e8, help="token budget for the time model")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")


def build(args: argparse.Namespace) -> dict:
    """Everything `ja-adapt plan` prints, as one JSON-ready dict."""
    config = _model_config(args.model)
    settings = dict(parse_override(text) for text in args.set)
    mem = plan_memory(
        config,
        method=args.method,
        rank=args.rank,
        targets=args.targets,
        precision=args.precision,
        batch=args.batch,
        seq=args.seq or 256,
        activation_checkpointing=args.activation_checkpointing,
        loss_chunk_size=args.loss_chunk_size,
        lora_dropout=args.lora_dropout,
        packed=not args.no_packing,
        base_dtype=args.base_dtype,
        settings=settings,
    )
    out = {
        "model": args.model,
        "memory": mem,
        "time": plan_time(
            config,
            method=args.method,
            trainable=mem["params"]["trainable"],
            seq=args.seq or 256,
            tokens=args.tokens,
            gpu=args.gpu,
            mfu=args.mfu,
            activation_checkpointing=args.activation_checkpointing,
            peak=args.peak_flops,
        ),
    }
    if args.gpu_memory is not None:
        if args.gpu_memory <= 0:
            raise UserError(f"--gpu-memory {args.gpu_memory}: must be a positive number of GB")
        out["fits"] = mem["total_bytes"] <= args.gpu_memory * GIB * (1 - args.margin)
    if args.recommend:
        sizes = [args.gpu_memory] if args.gpu_memory else list(RECOMMEND_GB)
        out["recommendations"] = [
            r
            for gb in sizes
            for r in recommend(
                config,
                gpu_gb=gb,
                margin=args.margin,
                rank=args.rank,
                targets=args.targets,
                precision=args.precision,
                seq=args.seq or 2048,
            )
        ]
    return out


def _table(out: dict) -> str:
    mem, p, t = out["memory"], out["memory"]["params"], out["time"]
    su = mem["setup"]
    lines = [
        f"model {out['model']}: {p['total']:,} parameters ({p['embedding']:,} embedding, "
        f"{p['lm_head_untied']:,} untied lm_head, {p['non_embedding']:,} non-embedding)",
        f"trainable ({su['method']}"
        + (f", r={su['rank']} on {su['targets']}" if su["rank"] else "")
        + "".join(f", {k}={v}" for k, v in su["settings"].items())
        + f"): {p['trainable']:,}",
        f"memory, {su['precision']}, batch {su['batch']} x seq {su['seq']}, checkpointing "
        f"{'on' if su['activation_checkpointing'] else 'off'}, loss chunk {su['loss_chunk_size']}:",
        f"  {'component':<24}{'GiB':>10}",
    ]
    lines += [f"  {k:<24}{b / GIB:>10.3f}" for k, b in mem["bytes"].items()]
    lines += [
        f"  {'peak allocated':<24}{mem['peak_allocated_bytes'] / GIB:>10.3f}",
        f"  {'total':<24}{mem['total_bytes'] / GIB:>10.3f}",
    ]
    if "fits" in out:
        lines.append(f"fits in the given GPU memory with the safety margin: {'yes' if out['fits'] else 'NO'}")
    recompute = t["hardware_flops_per_token"] - t["flops_per_token"]
    lines.append(
        f"time: {t['flops_per_token']:.3e} FLOPs/token"
        + (f" (+{recompute:.3e} recomputed by checkpointing)" if recompute else "")
        + f"; {t['tokens']:,.0f} tokens at {t['utilisation']:.2f} of the peak "
        f"{t['peak_flops']:.3g} FLOP/s ({t['gpu']}) = {t['seconds'] / 3600:.2f} h "
        f"({t['tokens_per_s']:,.0f} tokens/s, MFU {t['mfu']:.2f})"
    )
    for r in out.get("recommendations", []):
        how = (
            f"batch {r['batch']} x seq {r['seq']}, checkpointing "
            f"{'on' if r['activation_checkpointing'] else 'off'}"
            f", loss chunk {r['loss_chunk_size']}"
        )
        rank = ""
        if r["rank"] is not None:
            rank = f" r={r['rank']}" + (f" (max r={r['max_rank']})" if r["fits"] else "")
            rank += f", {r['base_dtype']} frozen base"
        verdict = "fits" if r["fits"] else "does NOT fit even at"
        lines.append(
            f"{r['gpu_gb']:g} GiB: {r['method']}{rank} {verdict} {how}: {r['total_gb']:.2f} GiB "
            f"of {r['budget_gb']:.2f} usable"
        )
        if r["fits"]:
            lines.append(
                "    ja-adapt train ... "
                + " ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in r["overrides"].items())
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    out = build(args)
    print(json.dumps(out, indent=2) if args.json else _table(out))
    return 0
