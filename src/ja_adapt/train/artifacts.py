"""Reading what a run wrote: its config, its final (or a checkpoint's) weights; merging adapters.

A run's weights are plain Hugging Face artifacts: `RUN/adapter` loads with
`PeftModel.from_pretrained(base, RUN/adapter)`, `RUN/model` with
`AutoModelForCausalLM.from_pretrained(RUN/model)`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from peft import PeftModel

from ja_adapt.config import ExperimentConfig, from_dict, read_yaml
from ja_adapt.core.errors import UserError, first_line
from ja_adapt.methods.spec import method_spec
from ja_adapt.models import vocab
from ja_adapt.models.build import load_frozen_base
from ja_adapt.models.load import load_model, load_tokenizer, tokenizer_for
from ja_adapt.train.checkpoint import weights_in


def run_config(run_dir: Path) -> ExperimentConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise UserError(
            f"{run_dir}: not a run directory (no config.yaml); pass a directory written by `ja-adapt train`"
        )
    return from_dict(read_yaml(path), str(path))


def load_weights(weights: Path, cfg: ExperimentConfig, device: torch.device | str = "cpu", quantized: bool = True):
    """(model, tokenizer) from an adapter/ or model/ folder written by a run with config `cfg`.

    An adapter goes onto the base it trained on: 4-bit for a quantized method (qlora), unless
    `quantized` is False (merging: the adapter then lands on the unquantized base)."""
    weights = Path(weights)
    tokenizer = load_tokenizer(weights)
    if (weights / "adapter_config.json").is_file():
        base = (
            load_frozen_base(cfg, len(tokenizer), device)
            if quantized
            else load_model(
                cfg.model.name_or_path,
                trust_remote_code=cfg.model.trust_remote_code,
                vocab_size=len(tokenizer),
                seed=cfg.seed,
            )
        )
        if cfg.vocab.extend:  # the added tokens' rows come from the adapter
            vocab.fit_rows(base, len(tokenizer))
        vocab.check_fits(base, tokenizer, str(weights))
        try:
            model = PeftModel.from_pretrained(base, str(weights))
        except RuntimeError as e:  # torch's size mismatch: another run's adapter or tokenizer
            raise UserError(
                f"{weights}: the adapter does not fit its base ({first_line(e)}); load it "
                "with the tokenizer and config of the run that wrote it"
            ) from None
    else:
        model = load_model(str(weights), trust_remote_code=cfg.model.trust_remote_code)
        vocab.check_fits(model, tokenizer, str(weights))
    return model.to(device).eval(), tokenizer


def load_run(run_dir: Path, device: torch.device | str = "cpu"):
    """(model, tokenizer, config) of a finished run."""
    cfg = run_config(run_dir)
    model, tokenizer = load_weights(weights_in(run_dir), cfg, device)
    return model, tokenizer, cfg


def load_base(cfg: ExperimentConfig, device: torch.device | str = "cpu"):
    """(model, tokenizer) of the base model a run started from."""
    tokenizer = tokenizer_for(cfg)
    model = load_model(
        cfg.model.name_or_path, trust_remote_code=cfg.model.trust_remote_code, vocab_size=len(tokenizer), seed=cfg.seed
    )
    return model.to(device).eval(), tokenizer


def merge_run(run_dir: Path, out: Path | None = None) -> Path:
    """Merge a run's adapter (LoRA and its variants, AdaLoRA, IA3: `MethodSpec.merges`) into its
    base weights and save a full HF model directory; UserError for a method peft cannot merge."""
    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir / "merged"
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out}: already exists and is not empty; choose another --out")
    spec = method_spec(run_config(run_dir).method)
    if spec.trains_base:
        raise UserError(f"{run_dir}: a full fine-tuning run; its model/ directory is already a full model")
    if not spec.merges:
        raise UserError(
            f"{run_dir}: method '{spec.name}' adds inputs to the model, not a weight update, "
            f"so peft cannot merge it; load {run_dir}/adapter with PeftModel.from_pretrained"
        )
    # a 4-bit base's adapter merges into the unquantized base weights (a 4-bit merge would round)
    model, tokenizer = load_weights(weights_in(run_dir), run_config(run_dir), quantized=False)
    merged = model.merge_and_unload()
    merged.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
