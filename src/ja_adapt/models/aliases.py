"""model.name_or_path aliases: a name → a function returning a model directory, called when a model
naming it is loaded (load.resolve_name), not when a config naming it is read. The command line
registers `demo-base`. Torch-free, so the command line registers aliases without loading torch."""

from __future__ import annotations

from collections.abc import Callable

MODEL_ALIASES: dict[str, Callable[[], str]] = {}


def register_model_alias(name: str, resolve: Callable[[], str]) -> None:
    """Let `name` stand for the directory `resolve()` returns. Registering a name again replaces
    its function."""
    MODEL_ALIASES[name] = resolve
