"""Downstream tasks through lm-evaluation-harness, on the model object ja-adapt already loaded.

ja-adapt writes no multiple-choice scorer of its own: each task is an lm-eval task config (YAML),
run with `lm_eval.simple_evaluate` on `HFLM(pretrained=model, tokenizer=tokenizer)`, so base, base +
adapter and full models are scored exactly as `lm_eval` would score them. Offline by design: a
task's data is either built from installed packages (SHIPPED, e.g. ja_adapt_mc_translation) or
local files the user names (`eval.downstream.data`); a task with neither is refused before anything
runs (resolve_tasks). The eval.json `downstream` section records lm-eval's version, each task's
version, a hash of its resolved configuration and data files, its metrics and the per-item outcomes
(docs/metrics.md#downstream); evaluate/downstream_stats.py compares two models on them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import yaml

from ja_adapt.config import DownstreamConfig
from ja_adapt.core.errors import UserError, closest
from ja_adapt.core.hashing import sha256_file
from ja_adapt.data.splits import doc_hash_unit
from ja_adapt.data.translation import catalog_pairs, multiple_choice_items, split_pairs

DOCS = "docs/metrics.md"
SPLIT_KEYS = ("training_split", "validation_split", "test_split", "fewshot_split")
# the file-name prefixes a data directory's split files start with (JGLUE ships train-v1.1.json,
# valid-v1.1.json)
SPLIT_PREFIXES = {"train": ("train",), "validation": ("valid",), "test": ("test",)}
MC_MAX_CHARS = 40  # shipped task: strings up to this long on both sides (short prompts)


def _mc_translation_items() -> list[dict]:
    """The held-out (test) translation pairs as four-way multiple-choice items, in the order of a
    hash of their English source (lm-eval's `limit` takes the first items: a sample of both catalogs)."""
    pairs = split_pairs(catalog_pairs(max_chars=MC_MAX_CHARS))["test"]
    items = sorted(multiple_choice_items(pairs), key=lambda it: doc_hash_unit(it["en"], "ja-adapt-mc-order"))
    if not items:
        raise UserError(
            "ja_adapt_mc_translation: no translation pairs found; install the mercurial or "
            "jupyterlab-language-pack-ja-JP package (ja-adapt's dependencies)"
        )
    return items


# task name → its items, built from installed data. Adding a shipped task: its YAML in
# evaluate/tasks/ (package data) and its builder here; nothing else changes.
SHIPPED: dict[str, Callable[[], list[dict]]] = {"ja_adapt_mc_translation": _mc_translation_items}


def _describe(x) -> str:
    """JSON stand-in for what a task config holds besides data: a function (lm-eval's
    `!function`) by its qualified name, so the hash does not depend on memory addresses."""
    if callable(x):
        return f"{getattr(x, '__module__', '?')}.{getattr(x, '__qualname__', type(x).__name__)}"
    return str(x)


def config_sha256(task_cfg: dict) -> str:
    """sha256 of a resolved task configuration (sorted-key JSON; data files by their content)."""
    files = (task_cfg.get("dataset_kwargs") or {}).get("data_files") or {}
    blob = json.dumps(
        {"config": task_cfg, "data_sha256": {s: sha256_file(f) for s, f in sorted(files.items())}},
        sort_keys=True,
        default=_describe,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _shipped_config(name: str, cache_dir: Path) -> dict:
    """The shipped task's YAML with its items written under cache_dir/downstream/NAME-HASH/
    (items.jsonl and the completed YAML, usable with `lm_eval --include_path` on that folder)."""
    cfg = yaml.safe_load(resources.files("ja_adapt.evaluate").joinpath("tasks", f"{name}.yaml").read_text("utf-8"))
    text = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in SHIPPED[name]())
    folder = Path(cache_dir) / "downstream" / f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    items = folder / "items.jsonl"
    if not items.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = items.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(items)  # atomic: a concurrent run never reads half a file
    cfg["dataset_kwargs"]["data_files"] = {cfg["test_split"]: str(items)}
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return cfg


def parse_data(entries: list[str]) -> dict[str, dict[str, str] | Path]:
    """eval.downstream.data entries → {task: a directory, or {split: file}}; files must exist."""
    out: dict[str, dict[str, str] | Path] = {}
    for entry in entries:
        task, sep, value = entry.partition("=")
        if not sep or not task or not value:
            raise UserError(f"eval.downstream.data: '{entry}' is not TASK=DIR or TASK=SPLIT:FILE[,SPLIT:FILE]")
        if task in out:
            raise UserError(f"eval.downstream.data: task '{task}' is given twice; one entry per task")
        if ":" not in value.split(",")[0] or Path(value).is_dir():
            if not Path(value).is_dir():
                raise UserError(
                    f"eval.downstream.data: {value} (for {task}) is not a directory; pass a "
                    "directory of split files or SPLIT:FILE pairs"
                )
            out[task] = Path(value)
            continue
        files = {}
        for part in value.split(","):
            split, _, f = part.partition(":")
            if not split or not f:
                raise UserError(f"eval.downstream.data: '{part}' (for {task}) is not SPLIT:FILE")
            if not Path(f).is_file():
                raise UserError(f"eval.downstream.data: {f} (split {split} of {task}): file not found")
            files[split] = str(Path(f).resolve())
        out[task] = files
    return out


def _split_files(task: str, folder: Path, splits: set[str]) -> dict[str, str]:
    """{split: file} for the splits a task reads, from files named by split in `folder`."""
    found = {}
    for split in splits:
        prefixes = SPLIT_PREFIXES.get(split, (split,))
        files = sorted(f for f in folder.iterdir() if f.suffix in (".json", ".jsonl") and f.name.startswith(prefixes))
        if len(files) > 1:
            raise UserError(
                f"eval.downstream.data: {folder} has {len(files)} files for the {split} split of "
                f"{task} ({', '.join(f.name for f in files)}); keep one or name it with {task}=SPLIT:FILE"
            )
        if files:
            found[split] = str(files[0].resolve())
    return found


def _with_local_data(name: str, cfg: dict, data, num_fewshot: int | None) -> dict:
    """The task config reading local JSON / JSONL files instead of its hub dataset."""
    shots = cfg.get("num_fewshot", 0) if num_fewshot is None else num_fewshot
    eval_split = cfg.get("test_split") or cfg.get("validation_split")
    needed = {eval_split} | ({cfg.get("fewshot_split") or cfg.get("training_split")} if shots else set())
    wanted = {cfg.get(k) for k in SPLIT_KEYS if cfg.get(k)}
    files = _split_files(name, data, wanted) if isinstance(data, Path) else dict(data)
    missing = sorted(s for s in needed if s and s not in files)
    if missing:
        fewshot = cfg.get("fewshot_split") or cfg.get("training_split")
        raise UserError(
            f"eval.downstream.data: no {', '.join(missing)} split for {name} (it evaluates on "
            f"'{eval_split}' with {shots}-shot examples from '{fewshot}'); "
            f"add {name}=SPLIT:FILE for it" + (" or set eval.downstream.num_fewshot=0" if shots else "")
        )
    cfg = {
        **cfg,
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {s: f for s, f in files.items() if s in wanted}},
    }
    for key in SPLIT_KEYS:  # a split without a file is not read at all
        if cfg.get(key) and cfg[key] not in files:
            cfg[key] = None
    return cfg


def _lm_eval_config(name: str, index) -> dict:
    """The installed lm-eval task's configuration: its YAML with includes merged and `!function`s
    resolved (lm-eval's own loader, on lm-eval's own installed files; user files never go through it)."""
    from lm_eval.tasks._yaml_loader import load_yaml  # heavy (lm-eval's task machinery): only here

    entry = index.get(name)
    if entry is None:
        raise UserError(
            f"eval.downstream.tasks: '{name}' is not an lm-eval task{closest(name, list(index))}; "
            "`lm_eval ls tasks` lists them"
        )
    cfg = load_yaml(entry.yaml_path, resolve_func=True) if entry.yaml_path else {}
    if cfg.get("task") != name:
        raise UserError(
            f"eval.downstream.tasks: '{name}' is an lm-eval group or tag, not a task; name its tasks one by one"
        )
    return cfg


def _task_index(names: list[str]) -> dict:
    """lm-eval's task index ({name: Entry}) covering `names`. Indexing all installed tasks parses
    thousands of YAML files (tens of seconds on a small CPU); a task's YAML is nearly always named
    after it, so only the folders holding such files are indexed, and everything when one is not."""
    if not names:
        return {}
    import lm_eval.tasks  # heavy (lm-eval's task machinery): only when such tasks run
    from lm_eval.tasks import TaskManager

    root = Path(lm_eval.tasks.__file__).parent
    folders = {f.parent for n in names for f in root.rglob(f"{n}.yaml")}
    if folders:
        index = TaskManager(include_defaults=False, include_path=sorted(str(f) for f in folders)).task_index
        if all(n in index for n in names):
            return index
    return TaskManager().task_index


def check_local_data(cfg: DownstreamConfig) -> dict[str, dict[str, str] | Path]:
    """The local data of every task (parse_data), refusing a task without any: cheap, so a command
    checks it before it loads a model."""
    data = parse_data(cfg.data)
    unknown = sorted(set(data) - set(cfg.tasks))
    if unknown:
        raise UserError(f"eval.downstream.data: {', '.join(unknown)} is not in eval.downstream.tasks; add it there")
    for name in cfg.tasks:
        if name not in SHIPPED and name not in data:
            raise UserError(
                f"eval.downstream.tasks: {name} has no local data and ja-adapt downloads no dataset; supply "
                f"its files with --task-data {name}=DIR (a directory with train*.json and valid*.json, "
                f"e.g. JGLUE's released files) or {name}=validation:FILE,train:FILE "
                "(config key eval.downstream.data)"
            )
    return data


def resolve_tasks(cfg: DownstreamConfig, cache_dir: Path) -> dict[str, dict]:
    """{task: its lm-eval configuration reading local data}, every task checked before any runs.

    Shipped tasks get their items built under cache_dir; any other task must have local data in
    eval.downstream.data (check_local_data)."""
    data = check_local_data(cfg)
    index = _task_index([n for n in cfg.tasks if n not in SHIPPED or n in data])
    out = {}
    for name in cfg.tasks:
        if name in SHIPPED and name not in data:
            out[name] = _shipped_config(name, cache_dir)
        else:
            out[name] = _with_local_data(name, _lm_eval_config(name, index), data[name], cfg.num_fewshot)
    return out


def _sample_record(sample: dict) -> dict:
    """One item's outcome: its lm-eval doc_id, target and per-item value of every metric."""
    return {
        "doc_id": sample["doc_id"],
        "target": sample.get("target"),
        **{m: sample[m] for m in sample.get("metrics", []) if m in sample},
    }


def _check_targets(name: str, task_cfg: dict, samples: list[dict]) -> None:
    """Refuse a multiple-choice task whose gold answers are no choice (lm-eval would score every
    item wrong without failing): e.g. JGLUE's released JNLI files label with English words."""
    if task_cfg.get("output_type") != "multiple_choice":
        return
    for s in samples:
        target, args = s.get("target"), s.get("arguments") or ()
        n_choices = len(args)
        by_text = isinstance(target, str) and any(str(a[1]).endswith(target) for a in args)
        if not by_text and not (isinstance(target, int) and 0 <= target < n_choices):
            files = ", ".join(task_cfg["dataset_kwargs"]["data_files"].values())
            raise UserError(
                f"{files}: item {s['doc_id']} of {name} has the answer {target!r}, which is not an "
                f"index of its {n_choices} choices; give labels as 0-based choice indices "
                "(docs/metrics.md#downstream shows the conversion)"
            )


class _LoadedModelNotices(logging.Filter):
    """lm-eval warns, each time it is given a loaded model rather than a name, that other model
    arguments may be ignored; ja-adapt always passes one, in one process, so the lines say nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(
            ("`pretrained` model kwarg is not of type", "Passed an already-initialized model")
        )


def run_downstream(model, tokenizer, cfg: DownstreamConfig, task_configs: dict[str, dict]) -> dict:
    """Run the resolved tasks (resolve_tasks) through lm-eval on the loaded model: the eval.json
    `downstream` section (lm-eval's metrics as it reports them, and the per-item outcomes)."""
    import lm_eval  # heavy (datasets, evaluate, sklearn): only when downstream tasks run
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    hf_logger = logging.getLogger("lm_eval.models.huggingface")
    if not any(isinstance(f, _LoadedModelNotices) for f in hf_logger.filters):
        hf_logger.addFilter(_LoadedModelNotices())
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=cfg.batch_size)
    res = lm_eval.simple_evaluate(
        lm,
        tasks=list(task_configs.values()),
        num_fewshot=cfg.num_fewshot,
        limit=cfg.limit,
        task_manager=TaskManager(include_defaults=False),  # configs are passed whole: skip the index
        log_samples=True,
        bootstrap_iters=0,  # intervals: ja-adapt's item bootstrap, not lm-eval's stderr
        random_seed=cfg.seed,
        numpy_random_seed=cfg.seed,
        torch_random_seed=cfg.seed,
        fewshot_random_seed=cfg.seed,
    )
    tasks = {}
    for name, task_cfg in task_configs.items():
        metrics = {
            k.split(",")[0]: v for k, v in res["results"][name].items() if k.endswith(",none") and "_stderr" not in k
        }
        samples = sorted(res["samples"][name], key=lambda s: s["doc_id"])
        _check_targets(name, task_cfg, samples)
        tasks[name] = {
            "version": res["versions"].get(name),
            "num_fewshot": res["n-shot"].get(name),
            "output_type": task_cfg.get("output_type"),
            "config_sha256": config_sha256(task_cfg),
            "data_files": {
                s: {"path": f, "sha256": sha256_file(f)}
                for s, f in sorted(task_cfg["dataset_kwargs"]["data_files"].items())
            },
            "n": len(samples),
            "n_available": res["n-samples"][name]["original"],
            "metrics": metrics,
            "samples": [_sample_record(s) for s in samples],
        }
    return {
        "definition": f"{DOCS}#downstream",
        "engine": "lm-evaluation-harness",
        "lm_eval_version": lm_eval.__version__,
        "settings": {
            "num_fewshot": cfg.num_fewshot,
            "limit": cfg.limit,
            "seed": cfg.seed,
            "batch_size": cfg.batch_size,
        },
        "tasks": tasks,
    }
