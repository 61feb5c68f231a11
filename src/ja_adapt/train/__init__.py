"""Train: the one training loop for every method (loop), its step and losses, distributed set-up,
checkpoints (safetensors, resumable), the run directory and its log, telemetry (time, memory,
tokens/s) and the artifacts a run ships."""
