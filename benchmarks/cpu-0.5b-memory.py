"""Where the peak RSS of a LoRA step at the reference scale goes, term by term (docs/plan.md, "At
the reference scale"): the qwen2.5-0.5b preset (real vocabulary, random weights), batch 1 x 512, one
thread, fp32, LoRA r=16 with dropout 0.1 on q,v and on all linears, the engine's own step
(step.train_step). In each step, at the peak of live tensors (telemetry.LiveTensorBytes): the
tensors by kind beside plan_memory's terms, the RSS above the RSS before the model was built, and
glibc's heap (telemetry.malloc_heap_bytes). A control run repeats all-linear with glibc's dynamic
mmap threshold fixed (MALLOC_MMAP_THRESHOLD_), so freed tensors go back to the OS at once.
Each run is its own process (the environment variable is read at start). Linux and glibc only.
    PYTHONPATH=src nice -n 10 python benchmarks/cpu-0.5b-memory.py
    LAYERS=2 STEPS=2 OUT=/tmp/terms.json python benchmarks/cpu-0.5b-memory.py   # a rehearsal
"""

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

RUNS = {
    "qv": ("qv", {}),
    "all-linear": ("all-linear", {}),
    "all-linear, mmap threshold 128 KiB": ("all-linear", {"MALLOC_MMAP_THRESHOLD_": "131072"}),
}
MIB = 2**20


def _rss() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise OSError("no VmRSS in /proc/self/status")


class _CountingTemporaries:
    """Adds to telemetry.LiveTensorBytes the bytes made and freed again within the decoder layers'
    forward: the holes a layer leaves between the tensors it keeps."""

    temporaries = 0

    def _freed(self, address: int) -> None:
        nbytes, label, _ = self.live[address]
        if label == self.label == "decoder layers":
            self.temporaries += nbytes
        super()._freed(address)


def one_run(targets: str, layers: int, steps: int, seq: int) -> dict:
    """One process's steps: per step the peak of live tensors, by kind, and RSS / heap there."""
    import torch

    torch.set_num_threads(1)
    from ja_adapt.models import arch
    from ja_adapt.train import distributed, telemetry

    arch.PRESETS["qwen2.5-0.5b"]["num_hidden_layers"] = layers  # before anything builds the config
    from ja_adapt.config import load_config
    from ja_adapt.models.build import base_model, build_model
    from ja_adapt.models.plan import plan_run_memory
    from ja_adapt.train.step import build_optimizer, method_hook, train_step

    cfg = load_config(
        None,
        [
            "method=lora",
            "precision=fp32",
            f"lora.targets={targets}",
            "lora.dropout=0.1",
            f"data.seq_len={seq}",
            "train.batch_size=1",
        ],
        {"model.name_or_path": "qwen2.5-0.5b"},
    )
    vocab = arch.PRESETS["qwen2.5-0.5b"]["vocab_size"]
    gen = torch.Generator().manual_seed(0)
    docs = torch.tensor([97, 31, 200, 184]) * seq // 512  # packed rows of four documents
    docs[-1] += seq - int(docs.sum())
    position_ids = torch.cat([torch.arange(int(n)) for n in docs])[None]
    batches = []
    for _ in range(steps):
        ids = torch.randint(0, vocab, (1, seq), generator=gen)
        batches.append({"input_ids": ids, "position_ids": position_ids, "targets": ids.roll(-1, 1)})

    class Vocab:
        def __len__(self):
            return vocab

    gc.collect()
    baseline = _rss()
    device = torch.device("cpu")
    model = build_model(cfg, Vocab(), device)
    optimizer, scheduler = build_optimizer(model, cfg.optim, cfg.train.max_steps)
    engine = distributed.wrap_model(model, cfg, device)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    saved, at_peak = set(), {}

    def on_peak(live):
        at_peak.update(rss=_rss(), heap=telemetry.malloc_heap_bytes(), saved=set(saved))

    live = type("Live", (_CountingTemporaries, telemetry.LiveTensorBytes), {})(snapshot=True, on_peak=on_peak)

    def pack(t):  # what autograd saves for backward
        saved.add(t.untyped_storage().data_ptr())
        return t

    def unpack(t):  # backward has begun
        live.label = "backward"
        return t

    for layer in base_model(model).model.layers:
        layer.register_forward_pre_hook(lambda *a: setattr(live, "label", "decoder layers"))
    # the final norm, then the fused lm_head + loss (loss.py), which makes no module call
    base_model(model).model.norm.register_forward_pre_hook(lambda *a: setattr(live, "label", "loss"))
    optimizer.register_step_pre_hook(lambda *a: setattr(live, "label", "optimizer"))
    records = []
    with live, torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        for step, batch in enumerate(batches):
            live.reset_peak()
            saved.clear()
            live.temporaries = 0
            loss, *_ = train_step(
                engine,
                model,
                optimizer,
                scheduler,
                torch.amp.GradScaler("cpu", enabled=False),
                [batch],
                cfg.optim,
                cfg.train,
                cfg.precision,
                device,
                step=step + 1,
                post_step=method_hook(cfg),
            )
            terms: dict[str, int] = {}
            for address, (nbytes, label, _) in live.at_peak.items():
                kind = (
                    "saved for backward"
                    if address in at_peak["saved"]
                    else "optimizer state"
                    if label == "optimizer"
                    else "loss working set"
                    if label == "loss"
                    else f"other ({label or 'before'})"
                )
                terms[kind] = terms.get(kind, 0) + nbytes
            records.append(
                {
                    "loss": float(loss),
                    "peak_tensor_bytes": weights + live.peak,
                    "tensors_at_peak": {"weights": weights, **terms},
                    "rss_at_peak_minus_baseline": at_peak["rss"] - baseline,
                    "heap_at_peak": at_peak["heap"],
                    "forward_temporaries_per_layer_bytes": live.temporaries / layers,
                }
            )
    plan = plan_run_memory(base_model(model).config, cfg)
    return {
        "targets": targets,
        "layers": layers,
        "seq": seq,
        "baseline_rss_bytes": baseline,
        "planned_peak_allocated_bytes": plan["peak_allocated_bytes"],
        "planned_saved_for_backward_bytes": plan["saved_for_backward_bytes"],
        "plan_terms": {k: v for k, v in plan["bytes"].items() if k != "overhead"},
        "steps": records,
    }


def main() -> None:
    layers, steps = int(os.environ.get("LAYERS", 24)), int(os.environ.get("STEPS", 4))
    seq = int(os.environ.get("SEQ", 512))
    out = Path(os.environ.get("OUT", "benchmarks/results/cpu-05b-memory-terms.json"))
    results = {}
    for name, (targets, env) in RUNS.items():
        done = subprocess.run(
            [sys.executable, __file__, "--one", targets, str(layers), str(steps), str(seq)],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
            text=True,
        )
        results[name] = {**json.loads(done.stdout.splitlines()[-1]), "environment": env}
        last = results[name]["steps"][-1]
        rss, tensors = last["rss_at_peak_minus_baseline"], last["peak_tensor_bytes"]
        print(
            f"{name}: at the last step's peak, tensors {tensors / MIB:.0f} MiB (plan "
            f"{results[name]['planned_peak_allocated_bytes'] / MIB:.0f}), RSS above baseline "
            f"{rss / MIB:.0f} MiB, glibc heap kept free {last['heap_at_peak']['free'] / MIB:.0f} MiB, "
            f"rest {(rss - tensors - last['heap_at_peak']['free']) / MIB:.0f} MiB; a layer's forward "
            f"made and freed {last['forward_temporaries_per_layer_bytes'] / MIB:.0f} MiB"
        )
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(one_run(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))))
    else:
        main()
