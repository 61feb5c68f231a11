#!/usr/bin/env bash
# ja-adapt vs TRL SFTTrainer on one GPU: Qwen2.5-0.5B architecture (random weights), bf16, seq 2048,
# batch 4, LoRA and full; then `ja-adapt plan`'s predicted peak memory against the measured one.
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
STEPS=${STEPS:-6}
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
# and fused AdamW; no activation checkpointing.
FAST=(train.loss_chunk_size=2048 optim.fused=true)
# Engine settings for memory: plus activation checkpointing and smaller loss chunks.
SMALL=(train.loss_chunk_size=512 optim.fused=true train.activation_checkpointing=true)

elapsed "1/3 throughput table: $SIDES, lora+full, batch 4, 2 alternating repeats"
timeout 220 $PY -m ja_adapt.bench "${COMMON[@]}" --method lora,full --sides "$SIDES" --batch 4 \
  --steps "$STEPS" --warmup 2 --repeats 2 --out "$OUT/gpu-throughput.json" "${FAST[@]}" \
  || echo "[gpu.sh] throughput stage failed or timed out"

elapsed "2/3 memory settings (activation checkpointing + loss chunks 512): batch 4 and 2"
for B in 4 2; do
  timeout 60 $PY -m ja_adapt.bench "${COMMON[@]}" --method lora,full --sides ja-adapt --batch $B \
    --steps 2 --warmup 1 --repeats 1 --out "$OUT/gpu-memory-b$B.json" "${SMALL[@]}" \
    || echo "[gpu.sh] memory stage batch $B failed or timed out"
done

elapsed "3/3 ja-adapt plan: predicted vs measured peak allocated memory"
$PY - "$OUT" <<'PY'
import json, sys
from pathlib import Path
from ja_adapt.bench import table
out = Path(sys.argv[1])
if (out / "gpu-throughput.json").is_file():        # also when stage 1 was cut short: its runs so far
    res = json.loads((out / "gpu-throughput.json").read_text())
    print(f"throughput ({len(res['runs'])} runs; device {res['device'].get('device_name')}):")
    print(table(res["summary"]))
    print()
print("| file | method | batch | act. ckpt | loss chunk | planned GiB | measured GiB | measured/planned | reserved GiB | tokens/s | MFU |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for f in ("gpu-throughput.json", "gpu-memory-b4.json", "gpu-memory-b2.json"):
    if not (out / f).is_file():
        print(f"| {f} | missing | | | | | | | | | |"); continue
    res = json.loads((out / f).read_text())
    eng, b = res["engine_config"]["train"], res["config"]["batch"]
    for r in res["runs"]:
        if r.get("side") != "ja-adapt" or "error" in r or r["repeat"] != 0:
            continue
        plan = r["planned_peak_allocated_bytes"]
        got = r.get("peak_allocated_bytes", float("nan"))       # CUDA only
        mfu = f"{r['mfu']:.1%}" if r.get("mfu") else "—"
        print(f"| {f} | {r['method']} | {b} | {eng['activation_checkpointing']} | {eng['loss_chunk_size']} "
              f"| {plan / 2**30:.2f} | {got / 2**30:.2f} | {got / plan:.2f} | "
              f"{r.get('peak_reserved_bytes', float('nan')) / 2**30:.2f} | {r['tokens_per_s']:,.0f} | {mfu} |")
PY
elapsed "done (targets: full MFU >= 40%, LoRA >= 120,000 tokens/s on H100; at batch 4 x 2048 with the memory settings LoRA <= 5 GB, full <= 12 GB)"
