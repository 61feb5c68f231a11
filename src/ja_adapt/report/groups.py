"""Runs grouped by configuration (seed aside), the groups a comparison picks, and the base model.

A Group is the unit that gets mean ± sd over seeds (analysis.aggregate); BaseModel reads the base
model's one deterministic evaluation the same way, so a section treats both alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ja_adapt.report import analysis as an
from ja_adapt.report.load import IGNORED_KEYS, Experiment, Run, adapts_linears, label
from ja_adapt.report.quality import quality

MAX_CURVE_POINTS = 400  # curves stored in results.json are thinned to this many points


@dataclass
class Group:
    """Runs that differ only in their seed, with per-run analyses keyed by seed."""

    label: str
    method: str
    config: dict
    runs: list[Run]
    dynamics: dict = field(default_factory=dict)  # seed → analysis.curve_analysis
    quality: dict = field(default_factory=dict)  # seed → quality.quality
    from_compare: bool = False
    arm: str = ""  # the compared entry (Run.arm); default: the method

    def __post_init__(self):
        self.arm = self.arm or self.method

    def agg(self, fn) -> dict:
        """mean ± sd over seeds of fn(run) (analysis.aggregate)."""
        return an.aggregate({r.seed: fn(r) for r in self.runs})

    def summary(self, key: str) -> dict:
        return self.agg(lambda r: r.summary.get(key))

    def dyn(self, key: str) -> dict:
        return self.agg(lambda r: self.dynamics[r.seed].get(key))

    def q(self, key: str) -> dict:
        """mean ± sd over seeds with its interval (one seed: the run's own bootstrap interval)."""
        single = self.quality[self.runs[0].seed].get(f"{key}_ci") if len(self.runs) == 1 else None
        return an.aggregate({r.seed: self.quality[r.seed].get(key) for r in self.runs}, single)


def make_groups(runs: list[Run], cfg: an.AnalysisConfig, duplicates: list | None = None) -> list[Group]:
    """Group runs by configuration (seed aside); repeats of a (config, seed) go to `duplicates`."""
    duplicates = [] if duplicates is None else duplicates
    by_key: dict[str, list[Run]] = {}
    for r in runs:
        by_key.setdefault(r.group_key(), []).append(r)
    keys = set().union(*(r.config for r in runs))
    varied = {k for k in keys if len({str(r.config.get(k)) for r in runs}) > 1}
    groups = []
    for members in by_key.values():
        seen: dict[int, Run] = {}
        for r in members:  # a repeat (same config and seed, e.g. a sweep point equal
            if r.seed in seen:  # to the compare run) is the same measurement: keep the first
                duplicates.append({"skipped": f"{r.out}/{r.name}", "kept": f"{seen[r.seed].out}/{seen[r.seed].name}"})
                continue
            seen[r.seed] = r
        members = sorted(seen.values(), key=lambda r: r.seed)
        # a compare run's arm names the group also where a sweep's run (whose arm is its method) is
        # listed first: the same configuration is the compared entry
        first = next((r for r in members if r.kind == "compare"), members[0])
        g = Group(
            label(first, varied - IGNORED_KEYS),
            first.method,
            first.config,
            members,
            from_compare=first.kind == "compare",
            arm=first.arm,
        )
        for r in members:
            g.dynamics[r.seed] = an.curve_analysis(r.train, r.val, r.summary, cfg)
            g.quality[r.seed] = quality(r.eval) if r.purpose == "quality" else {}  # probes: no quality
        groups.append(g)
    labels = [g.label for g in groups]
    for g in groups:  # differing only in unlabelled keys: name the experiment
        if labels.count(g.label) > 1:
            g.label = f"{g.label} [{Path(g.runs[0].out).name}]"
    labels = [g.label for g in groups]
    for g in groups:  # a swept key without a short label: the run's own name
        if labels.count(g.label) > 1:
            g.label = f"{g.label} {g.runs[0].name.rsplit('__s', 1)[0]}"
    return sorted(groups, key=lambda g: g.label)


def stats_by_run(exps: list[Experiment]) -> dict:
    """Run name → the stats.json of the first experiment holding it (a run reused by a later
    experiment, e.g. the demo's methods comparison, keeps its own experiment's statistics)."""
    out: dict = {}
    for e in exps:
        for r in e.runs:
            out.setdefault(r.name, e.stats)
    return out


def primary(groups: list[Group], arm: str) -> Group | None:
    """The group a compared entry (an arm, or a method: sweeps have no arms) is compared with: from
    a compare experiment if any, at its chosen settings, else the most seeds."""
    cands = [g for g in groups if g.arm == arm]
    if not cands:
        return None
    return max(cands, key=lambda g: (g.from_compare, any(r.chosen for r in g.runs), len(g.runs), -len(g.label)))


def lora_variants(groups: list[Group], lora: Group | None) -> list[Group]:
    """The primary groups of the compared arms of the LoRA family (methods.spec adapts_linears)
    besides the primary LoRA arm: LoRA on every linear beside LoRA on q,v, DoRA, QLoRA, ..."""
    family = {g.arm for g in groups if g.from_compare and adapts_linears(g.method)}
    arms = sorted(family - {lora.arm if lora else "lora"})
    return [primary(groups, a) for a in arms]


def curve(records: list[dict], key: str, window: int) -> list[list[float]]:
    """[[step, value, smoothed]] thinned to MAX_CURVE_POINTS (smoothing on the full series)."""
    recs = [r for r in records if r.get(key) is not None and not r.get("skipped")]
    sm = an.smooth([r[key] for r in recs], window)
    stride = max(1, len(recs) // MAX_CURVE_POINTS + (len(recs) % MAX_CURVE_POINTS > 0))
    idx = list(range(0, len(recs), stride))
    if recs and idx[-1] != len(recs) - 1:
        idx.append(len(recs) - 1)
    return [[recs[i]["step"], float(recs[i][key]), float(sm[i])] for i in idx]


def per_group(groups: list[Group], fields: dict) -> dict:
    """{label: {field: fn(group)}} for every group."""
    return {
        g.label: {"method": g.method, "seeds": [r.seed for r in g.runs], **{k: fn(g) for k, fn in fields.items()}}
        for g in groups
    }


@dataclass
class BaseModel:
    """The base model's evaluation (OUT/base/eval.json; None: not evaluated), read like a Group."""

    eval: dict | None
    quality: dict = field(init=False)  # quality.quality of eval ({} without one)

    def __post_init__(self):
        self.quality = quality(self.eval)

    def q(self, key: str) -> dict:
        """The base's value as an aggregate of one seed, with the evaluation's bootstrap interval."""
        return an.aggregate({0: self.quality.get(key)}, self.quality.get(key + "_ci"))
