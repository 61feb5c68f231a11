"""What every section builder reads: the experiments, their groups, the comparison and the base.

make_context reads the OUT directories once; each section's build(ctx) returns its part of
results.json, and ctx.results holds the parts built before it (report/sections/__init__.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ja_adapt.core.errors import UserError
from ja_adapt.report import analysis as an
from ja_adapt.report.comparison import Comparison, choose
from ja_adapt.report.groups import BaseModel, Group, make_groups, stats_by_run
from ja_adapt.report.load import Experiment, read_experiment


@dataclass
class Context:
    exps: list[Experiment]
    groups: list[Group]
    duplicates: list[dict]  # repeats of a (configuration, seed) left out (groups.make_groups)
    cmp: Comparison  # LoRA vs full fine-tuning
    base: BaseModel
    cfg: an.AnalysisConfig
    stats_of: dict  # run name → its experiment's stats.json (groups.stats_by_run)
    results: dict = field(default_factory=dict)  # the results.json parts built so far

    @property
    def compared(self) -> list[Group]:
        """The per-configuration tables' groups: the compared pair's, else every group (tuning
        points and sweeps have their own sections)."""
        return self.cmp.groups or self.groups

    @property
    def has_eval(self) -> bool:
        """Any group's run was evaluated for quality."""
        return any(g.quality[s] for g in self.groups for s in g.quality)

    @property
    def aliases(self) -> dict[str, set]:
        """Run name → the names of the same run copied into other experiments (the duplicates)."""
        out: dict[str, set] = {}
        for d in self.duplicates:
            kept, skipped = d["kept"].rsplit("/", 1)[-1], d["skipped"].rsplit("/", 1)[-1]
            out.setdefault(kept, set()).add(skipped)
        return out


def make_context(out_dirs: list[Path], cfg: an.AnalysisConfig) -> Context:
    """Read every OUT directory and group its runs; UserError without one."""
    if not out_dirs:
        raise UserError("report: pass at least one experiment directory")
    exps = [read_experiment(Path(o)) for o in out_dirs]
    duplicates: list[dict] = []
    groups = make_groups([r for e in exps for r in e.runs], cfg, duplicates)
    base_eval = next((e.base_eval for e in exps if e.base_eval), None)
    return Context(exps, groups, duplicates, choose(groups), BaseModel(base_eval), cfg, stats_by_run(exps))
