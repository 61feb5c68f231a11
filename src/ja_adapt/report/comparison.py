"""The compared pair: one Comparison(a, b), chosen in one place (choose), read by every section.

a is the LoRA side and b the full fine-tuning side of the report's headline; a side is None when
the experiments trained no such group. Derived a-vs-b figures use the seed means.
"""

from __future__ import annotations

from dataclasses import dataclass

from ja_adapt.report.groups import Group, primary


@dataclass(frozen=True)
class Comparison:
    a: Group | None  # the LoRA side (primary group of the arm "lora")
    b: Group | None  # the full fine-tuning side (primary group of "full")

    @property
    def complete(self) -> bool:
        """Both sides were trained."""
        return self.a is not None and self.b is not None

    @property
    def groups(self) -> list[Group]:
        """The sides that exist, a first."""
        return [g for g in (self.a, self.b) if g is not None]

    def vs(self, fields: dict) -> dict | None:
        """{name: fn(mean of getter(a), mean of getter(b))} for fields {name: (fn, getter)}; None
        unless both sides exist."""
        if not self.complete:
            return None
        return {name: fn(getter(self.a)["mean"], getter(self.b)["mean"]) for name, (fn, getter) in fields.items()}


def choose(groups: list[Group]) -> Comparison:
    """LoRA against full fine-tuning: each side's primary group (groups.primary)."""
    return Comparison(primary(groups, "lora"), primary(groups, "full"))
