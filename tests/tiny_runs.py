"""Settings that make a tiny run cheap (seq 64, batch 2, a small evaluation): the command-line
overrides the experiment tests pass (importable from any test: pytest puts tests/ on sys.path)."""

FAST = [
    "precision=fp32",
    "data.seq_len=64",
    "train.batch_size=2",
    "optim.warmup_steps=1",
    "optim.lr=3e-3",
    "train.eval_every=2",
    "train.eval_batches=2",
    "train.save_every=2",
    "train.tensorboard=false",
    "train.progress=false",
    "data.val_fraction=0.1",
    "data.test_fraction=0.2",
    "eval.gen_prompts=3",
    "eval.gen_max_new_tokens=8",
    "eval.bootstrap_resamples=50",
    "eval.max_length=64",
    "eval.stride=32",
]
