"""Read experiment directories (ja_adapt.experiments' contract) into Run records, refusing bad input.

    OUT/experiment.json, OUT/base/eval.json, OUT/stats.json, OUT/plan.json, OUT/decontamination.json
    OUT/runs/<name>/{config.yaml, metrics.jsonl, summary.json, eval.json, checkpoints/step-N/eval.json}

Runs whose resolved configurations differ only in their seed form one group (the unit that gets
mean ± sd over seeds), even when they come from different OUT directories.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ja_adapt.config import flatten
from ja_adapt.core.errors import UserError
from ja_adapt.methods.spec import SPECS

# Keys that do not change what a run measures (left out when grouping runs by configuration).
IGNORED_KEYS = {"seed", "train.progress", "train.tensorboard", "data.num_workers", "data.cache_dir", "device"}
# Keys a sweep varies that name a group in the report, with their short labels.
LABEL_KEYS = {
    "lora.rank": "r",
    "precision": "",
    "optim.lr": "lr",
    "lora.targets": "targets",
    "lora.alpha": "alpha",
    "train.max_steps": "steps",
    "model.name_or_path": "model",
}


@dataclass
class Run:
    """One training run and its evaluations (None where a file is absent)."""

    name: str
    out: Path  # the OUT directory it came from
    kind: str  # compare or sweep
    seed: int
    config: dict  # flat resolved config {"lora.rank": 8, ...}
    summary: dict
    train: list[dict]  # metrics.jsonl records of kind train
    val: list[dict]  # ... of kind val
    eval: dict | None
    checkpoints: list[tuple[int, dict]] = field(default_factory=list)  # (step, likelihood_only eval)
    purpose: str = "quality"  # the experiment's: quality, or probe (time and memory only)
    arm: str = ""  # the compared entry (compare --arm or a method); default: the method
    arm_keys: frozenset = frozenset()  # the keys that entry sets itself (its label leaves them out)
    chosen: bool = True  # a compare run at its entry's chosen settings (not a losing tuning point)

    def __post_init__(self):
        self.arm = self.arm or self.method

    @property
    def method(self) -> str:
        return self.config.get("method") or self.summary.get("method")

    def group_key(self) -> str:
        kept = {k: v for k, v in sorted(self.config.items()) if k not in IGNORED_KEYS}
        return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass
class Experiment:
    out: Path
    manifest: dict
    base_eval: dict | None
    stats: dict | None
    plan: dict | None
    runs: list[Run]
    decontamination: dict | None = None  # OUT/decontamination.json (evaluation text removed)

    @property
    def purpose(self) -> str:
        """quality (runs long enough to compare quality) or probe (time and memory only)."""
        return self.manifest.get("purpose", "quality")


def read_json(path: Path, required: bool = True) -> dict | None:
    if not path.is_file():
        if required:
            raise UserError(f"{path}: missing; run `ja-adapt compare` or `ja-adapt sweep` into this directory first")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e}); re-run the step that writes it") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object; re-run the step that writes it")
    return data


def read_metrics(path: Path) -> tuple[list[dict], list[dict]]:
    """(train records, val records) of a metrics.jsonl; a bad line is refused with its number."""
    train, val = [], []
    if not path.is_file():
        return train, val
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            kind = rec["kind"]
            rec["step"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise UserError(f"{path}:{i}: not a metrics record ({e}); the run's log is damaged") from None
        (train if kind == "train" else val if kind == "val" else []).append(rec)
    return train, val


def _checkpoint_evals(run_dir: Path) -> list[tuple[int, dict]]:
    out = []
    for p in sorted((run_dir / "checkpoints").glob("step-*/eval.json")):
        try:
            step = int(p.parent.name.split("-", 1)[1])
        except ValueError:
            continue
        out.append((step, read_json(p)))
    return out


def read_experiment(out: Path) -> Experiment:
    """One OUT directory; UserError naming the file when it is missing or malformed."""
    out = Path(out)
    if not out.is_dir():
        raise UserError(f"{out}: not a directory; pass an output directory of `ja-adapt compare` or `ja-adapt sweep`")
    manifest = read_json(out / "experiment.json")
    for key in ("kind", "runs"):
        if key not in manifest:
            raise UserError(f"{out / 'experiment.json'}: key '{key}' missing; re-run the experiment")
    base_cfg = flatten(manifest.get("config") or {})
    runs = [r for entry in manifest["runs"] if (r := _read_run(out, manifest, base_cfg, entry)) is not None]
    if not runs:
        raise UserError(f"{out}: no finished run (no runs/*/summary.json); run the experiment first")
    base = read_json(out / (manifest.get("base") or "base") / "eval.json", required=False)
    return Experiment(
        out,
        manifest,
        base,
        read_json(out / "stats.json", required=False),
        read_json(out / "plan.json", required=False),
        runs,
        read_json(out / "decontamination.json", required=False),
    )


def _read_run(out: Path, manifest: dict, base_cfg: dict, entry: dict) -> Run | None:
    """One run of experiment.json's `runs` as a Run (None: planned but not trained). Its config is
    the run's config.yaml, else the experiment's config with the entry's overrides and seed."""
    if not isinstance(entry, dict) or "name" not in entry:
        raise UserError(f"{out / 'experiment.json'}: every run needs a 'name'; re-run the experiment")
    run_dir = out / entry.get("dir", f"runs/{entry['name']}")
    summary = read_json(run_dir / "summary.json", required=False)
    if summary is None:
        return None  # planned but not trained (yet): not reported
    cfg_path = run_dir / "config.yaml"
    if cfg_path.is_file():
        try:
            config = flatten(yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {})
        except yaml.YAMLError as e:
            raise UserError(f"{cfg_path}: not valid YAML ({e}); re-run the experiment") from None
    else:
        config = {**base_cfg, **entry.get("overrides", {}), "seed": entry.get("seed", 0)}
    config.setdefault("method", entry.get("method") or summary.get("method"))
    train, val = read_metrics(run_dir / "metrics.jsonl")
    arm = entry.get("arm") or config["method"]  # sweeps and older compares: the method
    return Run(
        entry["name"],
        out,
        manifest["kind"],
        int(entry.get("seed", config.get("seed", 0))),
        config,
        summary,
        train,
        val,
        read_json(run_dir / "eval.json", required=False),
        _checkpoint_evals(run_dir),
        manifest.get("purpose", "quality"),
        arm,
        frozenset((manifest.get("arms") or {}).get(arm, {"method": arm})),
        entry.get("chosen", True),
    )


def adapts_linears(method: str) -> bool:
    """A LoRA-family method (methods.spec: rank-r adapters on lora.targets)."""
    return method in SPECS and SPECS[method].adapts_linears


def label(run: Run, varied: set[str]) -> str:
    """A readable group name: the method (or the compared arm's name, when it has its own) plus the
    varied keys that name does not already stand for, e.g. `lora r=8 bf16`, `lora-all lr=0.001`."""
    parts = [run.arm]
    own = run.arm_keys if run.arm != run.method else set()
    for key in sorted((varied & set(LABEL_KEYS)) - {"method", "seed"} - set(own)):  # settings a reader compares
        v = run.config.get(key)
        short = LABEL_KEYS.get(key, key)
        if key.startswith("lora.") and not adapts_linears(run.method):  # not this method's settings
            continue
        parts.append(f"{short}={v}" if short else str(v))
    return " ".join(parts)
