#!/usr/bin/env bash
# The reference scale on a CPU (docs/plan.md, "At the reference scale"): the qwen2.5-0.5b preset
# with its real 151,936-token vocabulary and random weights (speed and memory do not depend on the
# weight values), batch 1 x 512, LoRA r=16 (q,v and all-linear) and full fine-tuning, fp32 and a
# bf16 frozen base (model.dtype=bf16, under precision=bf16) for LoRA, with and without activation
# checkpointing; ja-adapt against TRL's SFTTrainer (default and best settings) at fp32, the
# protocol of cpu.sh. Each run is its own process; peak RSS is its VmHWM. Then every engine run
# beside `ja-adapt plan` for the same settings: peak RSS and time per step at this machine's
# measured fp32 matmul rate. Minutes: one thread per run, one warmup and 3 measured steps.
#   nice -n 10 bash benchmarks/cpu-0.5b.sh
# A rehearsal in seconds: PRESET=tiny SEQ=64 STEPS=1 OUT=/tmp/cpu05 bash benchmarks/cpu-0.5b.sh
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-benchmarks/results}
PRESET=${PRESET:-qwen2.5-0.5b} BATCH=${BATCH:-1} SEQ=${SEQ:-512} STEPS=${STEPS:-3} THREADS=${THREADS:-1}
DOCS=benchmarks/data/ja-docs.jsonl
mkdir -p "$OUT"
[ -f "$DOCS" ] || $PY -m ja_adapt.apps.bench --export-docs "$DOCS"
uptime
COMMON=(--preset "$PRESET" --batch "$BATCH" --seq "$SEQ" --steps "$STEPS" --warmup 1 --repeats 1
        --threads "$THREADS" --docs "$DOCS")
CKPT=train.activation_checkpointing=true
BF16=(--precision bf16 model.dtype=bf16)
bench() { local name=$1; shift; $PY -m ja_adapt.apps.bench "${COMMON[@]}" --out "$OUT/cpu-05b-$name.json" "$@"; }

bench fp32 --method lora,full --sides ja-adapt,trl-default,trl-best --precision fp32   # with the TRL peer
bench fp32-ckpt --method lora,full --sides ja-adapt --precision fp32 $CKPT
bench bf16base --method lora --sides ja-adapt "${BF16[@]}"
bench bf16base-ckpt --method lora --sides ja-adapt "${BF16[@]}" $CKPT
bench all-linear-fp32 --method lora --sides ja-adapt --precision fp32 lora.targets=all-linear
bench all-linear-bf16base --method lora --sides ja-adapt "${BF16[@]}" lora.targets=all-linear

OMP_NUM_THREADS=$THREADS $PY - "$OUT" "$PRESET" "$BATCH" "$SEQ" <<'PY'
import json, sys
from pathlib import Path
import torch
from ja_adapt.train import telemetry
from ja_adapt.models.arch import PRESETS
from ja_adapt.apps.bench_report import plan_table, table
out, preset, batch, seq = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
flops = telemetry.measure_matmul_flops(PRESETS[preset], rows=batch * seq)
names = ["fp32", "fp32-ckpt", "bf16base", "bf16base-ckpt", "all-linear-fp32", "all-linear-bf16base"]
results = [json.loads((out / f"cpu-05b-{n}.json").read_text()) for n in names if (out / f"cpu-05b-{n}.json").is_file()]
text, rows = plan_table(results, flops)
print(f"measured fp32 matmul rate at the model's shapes ({batch * seq} rows, "
      f"{torch.get_num_threads()} thread(s)): {flops / 1e9:.1f} GFLOP/s\n")
print(text)
print("\nja-adapt vs TRL SFTTrainer (fp32, same settings):\n")
print(table(results[0]["summary"]))
(out / "cpu-05b-plan.json").write_text(json.dumps({"matmul_flops": flops, "rows": rows}, indent=1))
PY
