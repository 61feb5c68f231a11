"""The two sides of `ja-adapt bench`, one run per process: `python -m ja_adapt.apps.bench_workers SPEC RESULT`.

    engine    ja-adapt's own step (step.train_step, grad_accum 1) over PackedBatches, timed
    trl       TRL's SFTTrainer on the same model, texts, tokenizer and optimizer settings
`spec` is what bench.run_bench writes: the bench settings, the engine's resolved config, the
prepared documents / tokenizer / token cache, the side, method and repeat.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ja_adapt.config import from_dict
from ja_adapt.core.jsonio import write_json
from ja_adapt.data.documents import Document
from ja_adapt.data.packing import PackedBatches
from ja_adapt.data.tokens import build_token_store
from ja_adapt.models import precision
from ja_adapt.models.build import base_model, build_model, count_trainable, peft_config
from ja_adapt.models.load import load_model, load_tokenizer, resolve_device
from ja_adapt.models.plan import plan_run_memory
from ja_adapt.train import distributed, telemetry
from ja_adapt.train.step import build_optimizer, defers_sync, method_hook, train_step

ENGINES = ("ja-adapt", "ja-adapt+compile")


def _peak_rss_bytes() -> int:
    """This process's peak RSS: VmHWM (per process image, so not inherited from the parent)."""
    return telemetry.proc_status_bytes("VmHWM") or telemetry.ru_maxrss_bytes()


class _Vocab:
    """Stands in for the tokenizer in methods.build_model, which needs only len(): the model keeps the
    preset's vocabulary (the tokenizer's ids are a subset)."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n


def _summarise(
    spec: dict,
    ends: list[float],
    real: list[int],
    slots: list[int],
    device,
    model_config,
    method: str,
    trainable: int,
    extra: dict,
) -> dict:
    """One run's numbers from per-step end times (ends[0] = loop start) and token counts."""
    w = spec["bench"]["warmup"]
    dts = np.diff(ends)[w:]
    tok = sum(real[w : len(ends) - 1])
    out = {
        "side": spec["side"],
        "method": method,
        "repeat": spec["repeat"],
        "steps": len(dts),
        "tokens_per_s": tok / float(dts.sum()),
        "step_time_s": float(np.median(dts)),
        "real_tokens_per_step": tok / len(dts),
        "padding_fraction": 1 - sum(real[w:]) / max(sum(slots[w:]), 1),
        "trainable_params": trainable,
        "peak_rss_bytes": _peak_rss_bytes(),
    }
    if device.type == "cuda":
        out["peak_allocated_bytes"] = torch.cuda.max_memory_allocated(device)
        out["peak_reserved_bytes"] = torch.cuda.max_memory_reserved(device)
        peak = telemetry.peak_flops(torch.cuda.get_device_name(device))
        fpt = telemetry.flops_per_token(
            model_config, method=method, trainable_params=trainable, seq_len=spec["bench"]["seq"]
        )
        out["mfu"] = telemetry.mfu(out["tokens_per_s"], fpt, peak) if peak else None
    out.update(extra)
    return out


def _texts(spec: dict) -> list[str]:
    """The prepared documents (bench.prepare's docs.jsonl), the same texts for every side."""
    return [json.loads(line)["text"] for line in Path(spec["docs"]).read_text("utf-8").splitlines()]


def _packed_batches(spec: dict, cfg) -> PackedBatches:
    """The documents as train.train feeds them: the shared token cache, packed into rows."""
    tok = load_tokenizer(spec["tokenizer"])
    store = build_token_store([Document(t) for t in _texts(spec)], tok, Path(spec["cache"]))
    return PackedBatches(store, cfg.data.seq_len, cfg.train.batch_size, seed=cfg.seed)


def _timed_steps(data: PackedBatches, step_fn, device, memory, *, n_steps: int, warmup: int, defer: bool):
    """Run `step_fn(batch, step)` n_steps times as train.train does; (ends, real, slots, results):
    ends[0] the loop's start, then each step's end; real / slots each batch's non-padding / all tokens.

    As train.train runs: with train.defers_sync (optim.fused) the loss and grad norm stay on the
    device and the clock syncs only at the end of warmup and of the run (no per-step times then)."""
    ends, real, slots, results = [time.perf_counter()], [], [], []
    for step in range(n_steps):  # train.train's step itself
        batch = data.get(step)
        real.append(data.real_tokens(batch))
        slots.append(batch["input_ids"].numel())
        results.append(step_fn(batch, step + 1))
        if not defer or step in (warmup - 1, n_steps - 1):
            telemetry.sync(device)
        if not defer:
            results[-1][0].item(), results[-1][1].item()  # train.train reads both (log_every=1)
        memory.current_bytes()
        ends.append(time.perf_counter())
    return ends, real, slots, results


def _engine_worker(spec: dict) -> dict:
    """train.train's step (grad_accum 1), timed. Returns the run's numbers and its losses."""
    cfg = from_dict(spec["engine"])
    cfg.train.compile = cfg.train.compile or spec["side"] == "ja-adapt+compile"
    device = resolve_device(cfg.device)
    data = _packed_batches(spec, cfg)
    gc.collect()  # garbage freed later would lower RSS below the baseline (in-process callers)
    baseline_rss = telemetry.proc_status_bytes("VmRSS")  # interpreter, libraries, data: what the plan's tensors add to
    model = build_model(cfg, _Vocab(spec["model_vocab"]), device)
    optimizer, scheduler = build_optimizer(model, cfg.optim, cfg.train.max_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    torch.manual_seed(cfg.seed)
    memory = telemetry.MemoryMeter(device)
    trainable, _ = count_trainable(model)
    engine = distributed.wrap_model(model, cfg, device)  # what train.train steps
    model.train()

    def step_fn(batch, step):
        return train_step(
            engine,
            model,
            optimizer,
            scheduler,
            scaler,
            [batch],
            cfg.optim,
            cfg.train,
            cfg.precision,
            device,
            step=step,
            post_step=method_hook(cfg),
        )

    warmup, defer = spec["bench"]["warmup"], defers_sync(cfg.optim, cfg.precision)
    n_steps = warmup + spec["bench"]["steps"]
    ends, real, slots, results = _timed_steps(
        data, step_fn, device, memory, n_steps=n_steps, warmup=warmup, defer=defer
    )
    base = base_model(model)
    extra = {
        "losses": [loss.item() for loss, *_ in results],
        "compiled": cfg.train.compile,
        "sync_deferred": defer,
        "bf16_emulated": precision.emulates_bf16(cfg.precision, device, cfg.train.emulate_bf16),
        "planned_peak_allocated_bytes": plan_run_memory(base.config, cfg)["peak_allocated_bytes"],
        "baseline_rss_bytes": baseline_rss,
    }
    if defer:  # only the window's total time is synced
        extra["step_time_s"] = (ends[-1] - ends[warmup]) / spec["bench"]["steps"]
    out = _summarise(spec, ends, real, slots, device, base.config, cfg.method, trainable, extra)
    if device.type == "cpu":  # the matmul rate under this run's conditions (a shared CPU varies),
        # measured after peak RSS was read: its operands are not the run's memory
        out["matmul_flops"] = telemetry.measure_matmul_flops(
            base.config, cfg.train.batch_size * cfg.data.seq_len, device, repeats=1
        )
    return out


def _sft_config(spec: dict, cfg, device):
    """TRL's SFTConfig with the engine's settings: trl-default leaves the rest at TRL's defaults,
    trl-best adds its best documented throughput settings (bfd packing, padding-free batches) and
    the engine's gradient checkpointing."""
    import trl  # the peer's package: the optional `bench` extra

    o = cfg.optim
    settings = (
        {
            "packing": True,
            "packing_strategy": "bfd",
            "padding_free": True,
            "gradient_checkpointing": cfg.train.activation_checkpointing,
        }
        if spec["side"] == "trl-best"
        else {}
    )
    return trl.SFTConfig(
        output_dir=str(Path(spec["workdir"]) / "trl-out"),
        max_steps=spec["bench"]["warmup"] + spec["bench"]["steps"],
        per_device_train_batch_size=cfg.train.batch_size,
        max_length=cfg.data.seq_len,
        bf16=cfg.precision == "bf16",
        fp16=cfg.precision == "fp16",
        learning_rate=o.lr,
        weight_decay=o.weight_decay,
        adam_beta1=o.beta1,
        adam_beta2=o.beta2,
        adam_epsilon=o.eps,
        max_grad_norm=o.grad_clip,
        warmup_steps=o.warmup_steps,
        lr_scheduler_type="cosine",
        report_to="none",
        save_strategy="no",
        use_cpu=device.type == "cpu",
        seed=cfg.seed,
        disable_tqdm=True,
        **settings,
    )


def _instrument(trainer, device) -> tuple[list[int], list[int], list[float]]:
    """Count the tokens of every batch the trainer collates and clock its steps by callback;
    the lists (real, slots, ends) fill as trainer.train() runs, ends[0] at the first step's begin."""
    from transformers import TrainerCallback  # with the peer: the Trainer's callback API

    real, slots, ends = [], [], []
    collate = trainer.data_collator

    def counting(features):  # non-padding tokens of every batch, in order
        out = collate(features)
        mask = out.get("attention_mask")
        real.append(int(mask.sum()) if mask is not None else out["input_ids"].numel())
        slots.append(out["input_ids"].numel())
        return out

    trainer.data_collator = counting

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if not ends:
                ends.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kw):
            telemetry.sync(device)
            ends.append(time.perf_counter())

    trainer.add_callback(Clock())
    return real, slots, ends


def _trl_worker(spec: dict) -> dict:
    """TRL SFTTrainer on the same model, texts, tokenizer and optimizer settings, timed by callback."""
    import datasets  # the peer's packages: the optional `bench` extra
    import trl

    cfg = from_dict(spec["engine"])
    device = resolve_device(cfg.device)
    tok = load_tokenizer(spec["tokenizer"])
    texts = _texts(spec)
    model = load_model(cfg.model.name_or_path, vocab_size=spec["model_vocab"], seed=cfg.seed)
    model.config.use_cache = False  # as the engine: packed position_ids work
    model.set_attn_implementation(cfg.model.attn_implementation)
    trainer = trl.SFTTrainer(
        model=model,
        args=_sft_config(spec, cfg, device),
        processing_class=tok,
        peft_config=peft_config(cfg),
        train_dataset=datasets.Dataset.from_dict({"text": texts}),
    )
    real, slots, ends = _instrument(trainer, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer.train()
    trainable, _ = count_trainable(trainer.model)
    base = base_model(trainer.model)
    return _summarise(
        spec, ends, real, slots, device, base.config, cfg.method, trainable, {"trl_version": trl.__version__}
    )


def worker(spec: dict) -> dict:
    """Run one side of one repetition in this process; `spec` as written by `run_bench`."""
    return _engine_worker(spec) if spec["side"] in ENGINES else _trl_worker(spec)


if __name__ == "__main__":  # python -m ja_adapt.apps.bench_workers SPEC RESULT
    spec_path, result_path = map(Path, sys.argv[1:3])
    write_json(result_path, worker(json.loads(spec_path.read_text())), indent=None, ensure_ascii=True, strict=False)
