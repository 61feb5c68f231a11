"""A model's train/eval flag, switched for a block and restored after (duck-typed: no torch here)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def eval_mode(model) -> Iterator[None]:
    """`model` (anything with `.training`, `.eval()` and `.train(flag)`, e.g. a torch module) in eval
    mode (dropout off) for the block; its training flag is restored after, also on an error."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
