"""Which runs an experiment trains: `PlannedRun`, a sweep's grid × seeds, a comparison's entries."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from ja_adapt.config import ExperimentConfig, config_hash, flatten, with_overrides
from ja_adapt.core.errors import UserError
from ja_adapt.methods.spec import SPECS


@dataclass
class PlannedRun:
    """One run of an experiment. experiment.json lists it as `record()` (everything but `config`
    and `curve`)."""

    name: str  # its directory's name: run_name(overrides, seed)
    method: str
    seed: int
    overrides: dict  # on the experiment's base config, the seed aside
    dir: str  # relative to the experiment directory: runs/<name>
    likelihood_only: bool  # final weights get the likelihood metrics only (EvalConfig.likelihood_only)
    config: ExperimentConfig  # the validated run config
    arm: str | None = None  # the compared entry it belongs to (`compare`; a sweep's runs have none)
    chosen: bool | None = None  # at the settings the comparison compares (None: not a comparison's)
    curve: bool = True  # its checkpoints are evaluated (learning curves)

    def record(self) -> dict:
        """The run as experiment.json lists it (key order kept: the file's bytes depend on it;
        "light" is the file's key for likelihood_only, kept so existing experiment directories resume)."""
        return {
            "name": self.name,
            **({"arm": self.arm} if self.arm else {}),
            "method": self.method,
            "seed": self.seed,
            "overrides": self.overrides,
            "dir": self.dir,
            "light": self.likelihood_only,
            **({} if self.chosen is None else {"chosen": self.chosen}),
        }


def run_name(overrides: dict, seed: int) -> str:
    """A filesystem-safe, readable name: `method-lora__lora.rank-8__s0`."""
    parts = [f"{k}-{v}" for k, v in overrides.items()]
    return "__".join(parts + [f"s{seed}"]).replace("/", "_")


def planned_run(
    cfg: ExperimentConfig,
    overrides: dict,
    seed: int,
    likelihood_only: bool = False,
    arm: str | None = None,
    chosen: bool | None = None,
) -> PlannedRun:
    """One run: its name, overrides, validated config; `likelihood_only` runs get a likelihood-only
    evaluation (tuning points that were not chosen). arm: the compared entry it belongs to."""
    run_cfg = with_overrides(cfg, {**overrides, "seed": seed})
    name = run_name(overrides, seed)
    return PlannedRun(
        name=name,
        method=run_cfg.method,
        seed=seed,
        overrides=overrides,
        dir=f"runs/{name}",
        likelihood_only=likelihood_only,
        config=run_cfg,
        arm=arm,
        chosen=chosen,
    )


def plan_runs(
    cfg: ExperimentConfig, grid: dict[str, list], seeds: list[int], likelihood_only: bool = False
) -> list[PlannedRun]:
    """Every grid point × seed, each with its overrides and name; validated up front."""
    keys = list(grid)
    return [
        planned_run(cfg, dict(zip(keys, values)), seed, likelihood_only)
        for values in itertools.product(*[grid[k] for k in keys])
        for seed in seeds
    ]


def config_value(cfg: ExperimentConfig, key: str):
    """The value of dotted `key` in `cfg`."""
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


# Keys an arm may not set: the experiment owns them (its seeds; the data its evaluation documents,
# decontamination and base evaluation come from).
_NOT_ARM_KEYS = ("seed", "data")


def compared_entries(
    cfg: ExperimentConfig, names: list[str], arms: dict[str, dict] | None = None, tune_key: str | None = None
) -> dict[str, dict]:
    """Each compared entry (`--methods`) → its config overrides, "method" first: a registered
    method's {"method": NAME}; an arm's own overrides, its method defaulting to NAME when NAME is a
    registered method. Refused (naming the flag): an arm not in `names`, an entry that is neither a
    method nor an arm with a method, an invalid key or value, an arm setting the tuned key, the seed
    or the data, two entries of the same configuration."""
    arms = arms or {}
    if twice := sorted({n for n in names if names.count(n) > 1}):
        raise UserError(f"--methods: '{twice[0]}' given twice; name each compared entry once")
    if unused := [a for a in arms if a not in names]:
        raise UserError(
            f"--arm {unused[0]}: not compared; add '{unused[0]}' to --methods (now {','.join(names)}) or drop the --arm"
        )
    entries, hashes = {}, {}
    for name in names:
        entries[name], run_cfg = _entry(cfg, name, arms, tune_key)
        if (h := config_hash(run_cfg)) in hashes:
            raise UserError(
                f"--arm {name}: the same configuration as '{hashes[h]}'; set a key that differs, or compare one of them"
            )
        hashes[h] = name
    return entries


def _entry(
    cfg: ExperimentConfig, name: str, arms: dict[str, dict], tune_key: str | None
) -> tuple[dict, ExperimentConfig]:
    """One compared entry's overrides ("method" first) and the config they give."""
    over = flatten(arms.get(name, {}))  # a section's keys ({"lora": {...}}) one by one
    method = over.pop("method", name if name in SPECS else None)
    if method is None:
        flag = f"--arm {name}" if name in arms else f"--methods {name}"
        raise UserError(
            f"{flag}: not a registered method ({', '.join(SPECS)}); define the arm's "
            f"method with --arm {name}:method=METHOD"
        )
    if bad := [k for k in over if k == tune_key or k.split(".", 1)[0] in _NOT_ARM_KEYS]:
        why = (
            f"is the tuned key; give the arm its own grid with --tune {name}:{bad[0]}=V1,V2"
            if bad[0] == tune_key
            else "is the whole comparison's, not an arm's; set it once for all (seeds: --seeds)"
        )
        raise UserError(f"--arm {name}:{bad[0]}=...: {bad[0]} {why}")
    try:
        run_cfg = with_overrides(cfg, {"method": method, **over}, where=f"--arm {name}")
    except UserError as e:
        raise UserError(str(e) if str(e).startswith("--arm") else f"--arm {name}: {e}") from None
    return {"method": method, **{k: config_value(run_cfg, k) for k in over}}, run_cfg
