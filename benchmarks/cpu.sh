#!/usr/bin/env bash
# The CPU table of docs/bench.md: tiny preset (~5M parameters), batch 8 x 256, variable-length
# Japanese documents, LoRA and full, 3 alternating repeats, one thread per run (the machine is
# shared: check `uptime` first; load is recorded in the JSON).
#   bash benchmarks/cpu.sh            # fp32 table, then the bf16 table (slow on CPUs without bf16)
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-benchmarks/results}
uptime
$PY -m ja_adapt.bench --preset tiny --method lora,full --sides ja-adapt,trl-default,trl-best \
  --precision fp32 --batch 8 --seq 256 --steps 3 --warmup 1 --repeats 3 --threads 1 \
  --out "$OUT/cpu-tiny-fp32.json"
# bf16 (autocast): on AVX2-only CPUs every bf16 matmul takes a slow generic path (minutes per
# step); ja-adapt+emu is the same step under the proposed emulated autocast (bench.emulated_bf16).
$PY -m ja_adapt.bench --preset tiny --method lora,full --sides ja-adapt+emu,ja-adapt,trl-default,trl-best \
  --precision bf16 --batch 8 --seq 256 --steps ${BF16_STEPS:-1} --warmup 1 --repeats ${BF16_REPEATS:-1} \
  --threads 1 --out "$OUT/cpu-tiny-bf16.json"
