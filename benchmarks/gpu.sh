#!/usr/bin/env bash
# ja-adapt vs TRL SFTTrainer on one GPU: Qwen2.5-0.5B architecture (random weights), bf16, seq 2048,
# batch 4, LoRA (bf16 frozen base, model.dtype=bf16) and full; then `ja-adapt plan`'s predicted peak
# memory against the measured one (qlora too: LoRA over bitsandbytes' 4-bit NF4 base), and the goals (full MFU >= 40%, LoRA >= 120k tokens/s on an
# H100-class GPU, peak memory at batch 4 x 2048 <= 5 GB LoRA / <= 12 GB full), each beside its
# measurement and the plan's prediction for the same settings.
#
# Needs: a CUDA build of torch, transformers, peft, accelerate (trl optional: without it the peer
# rows are skipped and the script says so). No network. Run from the repository root:
#     bash benchmarks/gpu.sh            # about 5 minutes on an H100
# Documents: the Japanese package corpora when installed, else benchmarks/data/ja-docs.jsonl
# (written on a machine that has them: ja-adapt bench --export-docs benchmarks/data/ja-docs.jsonl).
# Results: benchmarks/results/gpu-*.json (override with OUT=dir).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
T0=$(date +%s)
elapsed() { echo "[gpu.sh] $(( $(date +%s) - T0 )) s: $*"; }

# DRY=1 PRESET=tiny SEQ=64 DEVICE=cpu PRECISION=fp32 STEPS=1: a CPU rehearsal of every entry point.
PRESET=${PRESET:-qwen2.5-0.5b} SEQ=${SEQ:-2048} DEVICE=${DEVICE:-cuda} PRECISION=${PRECISION:-bf16}
STEPS=${STEPS:-6} TPUT_TIMEOUT=${TPUT_TIMEOUT:-200} MEM_TIMEOUT=${MEM_TIMEOUT:-60}   # seconds per stage
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
[ -n "${DRY:-}" ] || $PY - <<'PY' || { echo "[gpu.sh] torch has no CUDA device: stop"; exit 1; }
import torch, transformers, peft
assert torch.cuda.is_available()
print("torch", torch.__version__, "cuda", torch.version.cuda, "|", torch.cuda.get_device_name(0),
      "| transformers", transformers.__version__, "| peft", peft.__version__)
PY

SIDES=ja-adapt,trl-default,trl-best
if ! $PY -c "import trl, datasets" 2>/dev/null; then
  SIDES=ja-adapt
  echo "[gpu.sh] trl (or datasets) is not installed: the TRL peer rows are SKIPPED; ja-adapt only"
fi
DOCS=()
if ! $PY -c "import chatterbot_corpus, hironsan.corpus, mercurial" 2>/dev/null; then
  if [ -f benchmarks/data/ja-docs.jsonl ]; then DOCS=(--docs benchmarks/data/ja-docs.jsonl)
  else echo "[gpu.sh] no corpora and no benchmarks/data/ja-docs.jsonl: see the header"; exit 1; fi
fi
COMMON=(--preset "$PRESET" --precision "$PRECISION" --seq "$SEQ" --device "$DEVICE" ${DOCS[@]+"${DOCS[@]}"})
# Engine settings for speed: chunked cross-entropy (the 151,936-column logits never exist whole)
# and fused AdamW; no activation checkpointing. LoRA also keeps its frozen base in bf16
# (model.dtype: half the weight memory, no per-step casts of the weights).
FAST=(train.loss_chunk_size=2048 optim.fused=true)
LORA=(model.dtype=bf16)
[ "$PRECISION" = bf16 ] || LORA=()
# Engine settings for memory: plus activation checkpointing and smaller loss chunks.
SMALL=(train.loss_chunk_size=512 optim.fused=true train.activation_checkpointing=true)

elapsed "1/3 throughput table: $SIDES, batch 4, 2 alternating repeats; LoRA (bf16 frozen base), then full"
timeout "$TPUT_TIMEOUT" $PY -m ja_adapt.apps.bench "${COMMON[@]}" --method lora --sides "$SIDES" --batch 4 \
  --steps "$STEPS" --warmup 2 --repeats 2 --out "$OUT/gpu-throughput-lora.json" "${FAST[@]}" ${LORA[@]+"${LORA[@]}"} \
  || echo "[gpu.sh] LoRA throughput stage failed or timed out"
timeout "$TPUT_TIMEOUT" $PY -m ja_adapt.apps.bench "${COMMON[@]}" --method full --sides "$SIDES" --batch 4 \
  --steps "$STEPS" --warmup 2 --repeats 2 --out "$OUT/gpu-throughput-full.json" "${FAST[@]}" \
  || echo "[gpu.sh] full throughput stage failed or timed out"

elapsed "2/3 memory settings (activation checkpointing + loss chunks 512): batch 4 and 2; lora, full, qlora"
for B in 4 2; do
  timeout "$MEM_TIMEOUT" $PY -m ja_adapt.apps.bench "${COMMON[@]}" --method lora --sides ja-adapt --batch $B \
    --steps 2 --warmup 1 --repeats 1 --out "$OUT/gpu-memory-lora-b$B.json" "${SMALL[@]}" ${LORA[@]+"${LORA[@]}"} \
    || echo "[gpu.sh] LoRA memory stage batch $B failed or timed out"
  timeout "$MEM_TIMEOUT" $PY -m ja_adapt.apps.bench "${COMMON[@]}" --method full --sides ja-adapt --batch $B \
    --steps 2 --warmup 1 --repeats 1 --out "$OUT/gpu-memory-full-b$B.json" "${SMALL[@]}" \
    || echo "[gpu.sh] full memory stage batch $B failed or timed out"
  # qlora: LoRA over bitsandbytes' 4-bit NF4 base (its CUDA kernels; the plan's NF4 weight terms)
  timeout "$MEM_TIMEOUT" $PY -m ja_adapt.apps.bench "${COMMON[@]}" --method qlora --sides ja-adapt --batch $B \
    --steps 2 --warmup 1 --repeats 1 --out "$OUT/gpu-memory-qlora-b$B.json" "${SMALL[@]}" \
    || echo "[gpu.sh] qlora memory stage batch $B failed or timed out (is bitsandbytes installed?)"
done

elapsed "3/3 ja-adapt plan: predicted vs measured, and the goals"
$PY - "$OUT" "$PRESET" "$SEQ" "$PRECISION" <<'PY'
import json, sys
from pathlib import Path
from ja_adapt.models.arch import PRESETS
from ja_adapt.apps.bench_report import table
from ja_adapt.models.plan import plan_memory, plan_time
out, preset, seq, precision = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
GB = 1e9
loaded = {}
for f in ("gpu-throughput-lora.json", "gpu-throughput-full.json", "gpu-memory-lora-b4.json",
          "gpu-memory-full-b4.json", "gpu-memory-lora-b2.json", "gpu-memory-full-b2.json",
          "gpu-memory-qlora-b4.json", "gpu-memory-qlora-b2.json"):
    if (out / f).is_file():                    # also when a stage was cut short: its runs so far
        loaded[f] = json.loads((out / f).read_text())
for f in ("gpu-throughput-lora.json", "gpu-throughput-full.json"):
    if f in loaded:
        res = loaded[f]
        print(f"{f} ({len(res['runs'])} runs; device {res['device'].get('device_name')}):")
        print(table(res["summary"]))
        print()
print("| file | method | batch | model.dtype | act. ckpt | loss chunk | planned GiB | measured GiB | measured/planned | reserved GiB | tokens/s | MFU |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
engine_runs = {}
for f, res in loaded.items():
    eng, b = res["engine_config"], res["config"]["batch"]
    for r in res["runs"]:
        if r.get("side") != "ja-adapt" or "error" in r or r["repeat"] != 0:
            continue
        engine_runs[f] = r
        plan = r["planned_peak_allocated_bytes"]
        got = r.get("peak_allocated_bytes", float("nan"))       # CUDA only
        mfu = f"{r['mfu']:.1%}" if r.get("mfu") else "—"
        print(f"| {f} | {r['method']} | {b} | {eng['model']['dtype']} | {eng['train']['activation_checkpointing']} "
              f"| {eng['train']['loss_chunk_size']} | {plan / 2**30:.2f} | {got / 2**30:.2f} | {got / plan:.2f} | "
              f"{r.get('peak_reserved_bytes', float('nan')) / 2**30:.2f} | {r['tokens_per_s']:,.0f} | {mfu} |")

# The goals (issue 18), each beside the measurement and the plan's prediction for the same settings.
config = PRESETS[preset]
bf16 = "bf16" if precision == "bf16" else "fp32"
def planned(method, **kw):
    return plan_memory(config, method=method, rank=16, targets="qv", precision=precision, batch=4, seq=seq,
                       base_dtype=bf16 if method == "lora" else "fp32", **kw)
small = dict(activation_checkpointing=True, loss_chunk_size=512)
fast = dict(loss_chunk_size=2048)
lora_t = plan_time(config, method="lora", trainable=planned("lora")["params"]["trainable"], seq=seq,
                   tokens=1e8, gpu="h100", mfu=0.4)
def measured(f, key):
    r = engine_runs.get(f)
    return None if r is None or r.get(key) is None else r[key]
fmt = lambda v, f: "not measured" if v is None else f.format(v)
def memory_goal(method, limit_gb):
    f, plan = f"gpu-memory-{method}-b4.json", planned(method, **small)
    got = measured(f, "peak_allocated_bytes")
    return (f"{method} peak allocated, batch 4 (memory settings)", f"<= {limit_gb} GB",
            fmt(got and got / GB, "{:.2f} GB"),
            f"{plan['peak_allocated_bytes'] / GB:.2f} GB (+ CUDA context: {plan['total_bytes'] / GB:.2f} GB)",
            (got or 1e99) <= limit_gb * GB)
goals = [
    ("full fine-tuning MFU (batch 4, speed settings)", ">= 40%", fmt(measured("gpu-throughput-full.json", "mfu"), "{:.1%}"),
     "assumed 40% (the time model's input)", (measured("gpu-throughput-full.json", "mfu") or 0) >= 0.40),
    ("LoRA tokens/s on an H100-class GPU (batch 4, speed settings)", ">= 120,000",
     fmt(measured("gpu-throughput-lora.json", "tokens_per_s"), "{:,.0f}"),
     f"{lora_t['tokens_per_s']:,.0f} at 40% MFU", (measured("gpu-throughput-lora.json", "tokens_per_s") or 0) >= 120_000),
    memory_goal("lora", 5), memory_goal("full", 12),
]
print(f"\ngoals ({preset}, {precision}, batch 4 x {seq}; LoRA r=16 q,v with a {bf16} frozen base):")
print("| goal | target | measured | plan predicts | met |")
print("|---|---|---|---|---|")
for name, target, got, plan, met in goals:
    print(f"| {name} | {target} | {got} | {plan} | {'—' if got == 'not measured' else 'yes' if met else 'NO'} |")
PY
elapsed "done"
