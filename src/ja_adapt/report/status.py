"""A section's status, one definition: a results.json section that could not be measured is NOT_RUN."""

from __future__ import annotations

NOT_RUN = {"status": "not run"}
NOT_RUN_TEXT = "Not run: no experiment in the given directories measured this."


def not_run(reason: str | None = None) -> dict:
    """A fresh {"status": "not run"} (each section gets its own dict), with why when known."""
    return dict(NOT_RUN) if reason is None else {**NOT_RUN, "reason": reason}


def ok(section) -> bool:
    """A results.json section that was measured (no status means measured)."""
    return isinstance(section, dict) and section.get("status", "ok") == "ok"
