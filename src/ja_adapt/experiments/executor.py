"""Training and evaluating an experiment's runs, skipping finished work: `RunExecutor`."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from ja_adapt.config import ExperimentConfig, config_hash, to_dict
from ja_adapt.core.cache import cache_root
from ja_adapt.core.errors import UserError
from ja_adapt.core.jsonio import write_json
from ja_adapt.data.pipeline import eval_set
from ja_adapt.data.sources import corpus_fingerprint
from ja_adapt.evaluate.run import evaluate_model, write_eval
from ja_adapt.experiments.runs import PlannedRun
from ja_adapt.models.load import resolve_name
from ja_adapt.train import artifacts, checkpoint
from ja_adapt.train.loop import train


def evaluate_into(
    path: Path, model, tokenizer, cfg: ExperimentConfig, docs, trained, base_results=None, likelihood_only: bool = False
) -> dict:
    """Evaluate once and cache the result at `path` (skipped when it exists); trained: the
    (lang, domain) pairs of the training split (evaluate_model)."""
    if path.is_file():
        return json.loads(path.read_text())
    eval_cfg = (
        cfg.eval.likelihood_only() if likelihood_only else cfg.eval
    )  # checkpoints: likelihood only, for the curves
    results = evaluate_model(model, tokenizer, docs, eval_cfg, trained=trained, base_results=base_results)
    write_eval(path, results)
    return results


def cached_base_evaluation(path: Path, cfg: ExperimentConfig, docs, trained) -> dict:
    """The base model's evaluation at `path`, shared between experiments through the user cache: the
    same base weights, tokenizer, documents and eval settings give the same (deterministic) result."""
    if path.is_file():
        return json.loads(path.read_text())
    model = resolve_name(cfg.model.name_or_path)
    weights = (
        sorted((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in Path(model).glob("*.safetensors"))
        if Path(model).is_dir()
        else []
    )
    key = hashlib.sha256(
        json.dumps(
            [model, weights, cfg.model.tokenizer, cfg.seed, corpus_fingerprint(docs), to_dict(cfg)["eval"], trained],
            default=str,
        ).encode()
    ).hexdigest()[:24]
    cached = cache_root() / "evals" / f"base-{key}.json"
    if cached.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, path)
        return json.loads(path.read_text())
    base_model, tokenizer = artifacts.load_base(cfg)
    results = evaluate_into(path, base_model, tokenizer, cfg, docs, trained)
    cached.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, cached)
    return results


class RunExecutor:
    """Trains and evaluates the runs of one experiment (in `out`) against its evaluation documents
    and base model. Picklable: worker processes get its bound methods (experiments/workers.py)."""

    def __init__(
        self,
        out: Path,
        cfg: ExperimentConfig,
        reuse_from: list[Path] = (),
        evaluate: bool = True,
        base_now: bool = True,
    ):
        """evaluate: False for a probe (training only: no evaluation documents are read). base_now:
        evaluate the base model here and now; else evaluate_base() when needed."""
        self.out, self.reuse_from, self.cfg = out, list(reuse_from), cfg
        self.evaluates, self.base, self.docs, self.trained = evaluate, None, None, None
        out.mkdir(parents=True, exist_ok=True)
        if not evaluate:
            return
        evs = eval_set(cfg)
        self.docs, self.trained = evs.docs, evs.trained  # trained: (lang, domain) pairs of the train split
        write_json(out / "decontamination.json", evs.decontamination or {"status": "off (data.decontaminate)"})
        if base_now:
            self.evaluate_base()

    def needs_base(self) -> bool:
        """Whether the base model's evaluation is still to be made or read."""
        return self.evaluates and self.base is None

    def evaluate_base(self) -> None:
        """The base model's evaluation (cached: computed once, then read)."""
        self.base = cached_base_evaluation(self.out / "base" / "eval.json", self.cfg, self.docs, self.trained)

    def train(self, r: PlannedRun) -> dict:
        """Train run `r` unless finished (or copy the same run from `reuse_from`); its summary."""
        run_dir = self.out / r.dir
        finished = self.trained_already(r)
        if not finished and not run_dir.exists() and (same := self._finished_elsewhere(r.config)):
            shutil.copytree(same, run_dir)
        elif not finished:
            train(r.config, run_dir, resume=run_dir.exists())
        return json.loads((run_dir / "summary.json").read_text())

    def trained_already(self, r: PlannedRun) -> bool:
        summary = self.out / r.dir / "summary.json"
        return summary.is_file() and json.loads(summary.read_text())["steps"] == r.config.train.max_steps

    def _finished_elsewhere(self, run_cfg: ExperimentConfig) -> Path | None:
        """A finished run directory of `reuse_from` trained with exactly this configuration."""
        want = config_hash(run_cfg)
        for d in self.reuse_from:
            for summary in sorted(Path(d).glob("runs/*/summary.json")):
                s = json.loads(summary.read_text())
                if s.get("config_hash") == want and s.get("steps") == run_cfg.train.max_steps:
                    return summary.parent
        return None

    def val_loss(self, r: PlannedRun) -> float:
        """The final validation loss of `r` (trained first if needed): what tuning chooses by."""
        loss = self.train(r)["final_val_loss"]
        if loss is None:
            raise UserError(
                f"{self.out / r.dir}: no validation loss to tune on; set "
                "data.val_fraction > 0 so the corpus has a validation split"
            )
        return loss

    def train_and_evaluate(self, r: PlannedRun) -> None:
        """Train `r`, evaluate its checkpoints (likelihood only, for the curves) and its final
        weights (everything, or likelihood only for a likelihood_only run)."""
        docs, trained, base = self.docs, self.trained, self.base
        run_dir = self.out / r.dir
        final_step = self.train(r)["steps"]
        for ckpt in [] if r.likelihood_only or not r.curve else checkpoint.complete(run_dir / "checkpoints"):
            # the final step's point on the learning curve is the run's own (full) evaluation;
            # tuning points that were not chosen get no learning curve
            if not (ckpt / "eval.json").is_file() and checkpoint.step_of(ckpt) != final_step:
                model, tok = artifacts.load_weights(checkpoint.weights_in(ckpt), r.config)
                evaluate_into(ckpt / "eval.json", model, tok, r.config, docs, trained, base, likelihood_only=True)
        if not (run_dir / "eval.json").is_file():
            model, tok, _ = artifacts.load_run(run_dir)
            evaluate_into(
                run_dir / "eval.json", model, tok, r.config, docs, trained, base, likelihood_only=r.likelihood_only
            )
