#!/usr/bin/env bash
# The CPU tables of docs/bench.md: tiny preset (~5M parameters), batch 8 x 256, variable-length
# Japanese documents, LoRA and full, the engine (plain and compiled) against TRL's SFTTrainer
# (defaults and best settings), 3 alternating repeats, one thread per run (the machine is shared:
# check `uptime` first; the load is recorded in the JSON).
#   bash benchmarks/cpu.sh            # fp32 table, then the bf16 table
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-benchmarks/results}
DOCS=benchmarks/data/ja-docs.jsonl
[ -f "$DOCS" ] || $PY -m ja_adapt.apps.bench --export-docs "$DOCS"
uptime
$PY -m ja_adapt.apps.bench --preset tiny --method full,lora --sides ja-adapt,ja-adapt+compile,trl-default,trl-best \
  --precision fp32 --batch 8 --seq 256 --steps 3 --warmup 1 --repeats 3 --threads 1 --docs "$DOCS" \
  --out "$OUT/cpu-tiny-fp32.json"
# bf16: on AVX2-only CPUs the engine emulates bf16 autocast on fp32 kernels (precision.py); TRL runs
# torch.autocast, whose bf16 matmuls take a slow generic path there (tens of seconds per step).
$PY -m ja_adapt.apps.bench --preset tiny --method full,lora --sides ja-adapt,trl-default,trl-best \
  --precision bf16 --batch 8 --seq 256 --steps ${BF16_STEPS:-2} --warmup 1 --repeats ${BF16_REPEATS:-1} \
  --threads 1 --docs "$DOCS" --out "$OUT/cpu-tiny-bf16.json" train.loss_chunk_size=512
