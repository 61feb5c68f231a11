"""compare --budget: equal steps (default), equal training tokens, equal training FLOPs; the steps
each entry trains, recomputed here from the FLOPs formula and peft's own trainable count."""

from __future__ import annotations

import json

import pytest
from tiny_runs import FAST

from ja_adapt.apps import cli
from ja_adapt.config import ExperimentConfig, with_overrides
from ja_adapt.core.errors import UserError
from ja_adapt.experiments.budget import budget_overrides
from ja_adapt.models.arch import flops_per_token
from ja_adapt.report.sections.timing import budget_line

ENTRIES = {"lora": {"method": "lora"}, "full": {"method": "full"}}


def _cfg(model_dir, **over) -> ExperimentConfig:
    return with_overrides(
        ExperimentConfig(),
        {"model.name_or_path": str(model_dir), "train.max_steps": 40, "optim.warmup_steps": 4, **over},
    )


def _peft_trainable(model_dir, rank: int) -> int:
    """LoRA's trainable parameters on q,v as peft counts them (not the plan arithmetic)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"]))
    return sum(p.numel() for p in peft_model.parameters() if p.requires_grad)


def test_equal_flops_steps_follow_the_flops_formula(saved_tiny_model):
    _, model_dir, _ = saved_tiny_model
    from transformers import AutoConfig

    cfg = _cfg(model_dir)
    config = AutoConfig.from_pretrained(model_dir)
    seq, per_step_tokens = cfg.data.seq_len, cfg.train.batch_size * cfg.train.grad_accum * cfg.data.seq_len
    f_full = flops_per_token(config, method="full", trainable_params=0, seq_len=seq)
    f_lora = flops_per_token(
        config, method="lora", trainable_params=_peft_trainable(model_dir, cfg.lora.rank), seq_len=seq
    )
    assert f_lora < f_full  # frozen weights skip their weight gradients
    added, record = budget_overrides(cfg, ENTRIES, "flops")
    assert record["kind"] == "flops" and record["reference"] == "full"  # the costliest per step
    assert added["full"] == {}  # the configured steps and warmup: its runs keep their equal-steps names
    assert record["per_entry"]["full"]["steps"] == 40
    lora_steps = round(40 * f_full / f_lora)
    assert lora_steps > 40
    assert added["lora"] == {"train.max_steps": lora_steps, "optim.warmup_steps": round(4 * lora_steps / 40)}
    per = record["per_entry"]
    assert per["lora"]["steps"] == lora_steps and per["lora"]["tokens"] == lora_steps * per_step_tokens
    assert per["lora"]["flops"] == pytest.approx(lora_steps * per_step_tokens * f_lora)
    assert abs(per["lora"]["flops"] - per["full"]["flops"]) <= per_step_tokens * f_lora  # within one step


def test_equal_flops_counts_the_output_head_of_an_extended_vocabulary(saved_tiny_model):
    """vocab.extend widens embedding and lm_head to the tokenizer's length plus the added tokens
    (what resize_token_embeddings makes of the model): the extended entry costs more per token, so
    it is the reference and the plain one trains more steps; the FLOPs recomputed from the resized
    model's own config."""
    _, model_dir, _ = saved_tiny_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = _cfg(model_dir, **{"train.max_steps": 1000})  # enough steps for the head's share to show
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model.resize_token_embeddings(len(AutoTokenizer.from_pretrained(model_dir)) + 64)
    f_wide = flops_per_token(model.config, method="full", trainable_params=0, seq_len=cfg.data.seq_len)
    f_own = flops_per_token(
        AutoModelForCausalLM.from_pretrained(model_dir).config,
        method="full",
        trainable_params=0,
        seq_len=cfg.data.seq_len,
    )
    assert f_wide > f_own
    entries = {"full": {"method": "full"}, "full-vocab": {"method": "full", "vocab.extend": 64}}
    added, record = budget_overrides(cfg, entries, "flops")
    assert record["reference"] == "full-vocab" and added["full-vocab"] == {}
    assert added["full"]["train.max_steps"] == round(1000 * f_wide / f_own) > 1000
    tokens = record["per_entry"]["full-vocab"]["tokens"]
    assert record["per_entry"]["full-vocab"]["flops"] == pytest.approx(tokens * f_wide)


def test_a_budget_refuses_an_entry_or_a_tuning_that_sets_its_own_steps(saved_tiny_model):
    """tokens and flops set each entry's train.max_steps and optim.warmup_steps: an arm setting one
    itself, or a tuning over one, would be overridden silently, so it is refused (steps: allowed)."""
    _, model_dir, _ = saved_tiny_model
    cfg = _cfg(model_dir)
    for key in ("train.max_steps", "optim.warmup_steps"):
        entries = {"long": {"method": "lora", key: 3}, "full": {"method": "full"}}
        assert budget_overrides(cfg, entries, "steps") == ({"long": {}, "full": {}}, None)
        for kind in ("tokens", "flops"):
            with pytest.raises(UserError, match=f"--arm long: sets {key}, but --budget {kind}"):
                budget_overrides(cfg, entries, kind)
    with pytest.raises(UserError, match="--tune train.max_steps: --budget flops sets each entry's steps"):
        budget_overrides(cfg, ENTRIES, "flops", tune_key="train.max_steps")


def test_an_arm_with_its_own_steps_under_a_flops_budget_is_one_line_exit_2(saved_tiny_model, tmp_path, capsys):
    _, model_dir, corpus = saved_tiny_model
    argv = ["compare", "--model", str(model_dir), "--data", str(corpus), "--out", str(tmp_path / "x")]
    argv += ["--methods", "long,full", "--arm", "long:method=lora", "--arm", "long:train.max_steps=9"]
    code = cli.main([*argv, "budget=flops", *FAST])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--arm long: sets train.max_steps" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_equal_tokens_steps_and_steps_budget_adds_nothing(saved_tiny_model):
    _, model_dir, _ = saved_tiny_model
    cfg = _cfg(model_dir)
    assert budget_overrides(cfg, ENTRIES, "steps") == ({"lora": {}, "full": {}}, None)
    added, record = budget_overrides(cfg, ENTRIES, "tokens")  # same batch × seq: same steps as configured
    assert added == {"lora": {}, "full": {}} and record["kind"] == "tokens"
    assert {m: e["steps"] for m, e in record["per_entry"].items()} == {"lora": 40, "full": 40}
    # an entry with twice the rows per step trains half the steps, the same tokens
    entries = {"lora": {"method": "lora", "train.batch_size": 2 * cfg.train.batch_size}, "full": {"method": "full"}}
    added, record = budget_overrides(cfg, entries, "tokens")
    assert record["reference"] == "lora"
    assert "train.max_steps" not in added["lora"] and added["full"]["train.max_steps"] == 80
    assert added["full"]["optim.warmup_steps"] == 8  # the schedule kept proportional
    assert record["per_entry"]["lora"]["tokens"] == record["per_entry"]["full"]["tokens"]


@pytest.mark.parametrize("form", [["--budget", "joules"], ["budget=joules"]])
def test_an_unknown_budget_is_one_line_exit_2(saved_tiny_model, tmp_path, capsys, form):
    _, model_dir, corpus = saved_tiny_model
    argv = ["compare", "--model", str(model_dir), "--data", str(corpus), "--out", str(tmp_path / "x"), *form, *FAST]
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and "joules" in err and "steps, tokens, flops" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_two_different_budgets_are_one_line_exit_2(saved_tiny_model, tmp_path, capsys):
    _, model_dir, corpus = saved_tiny_model
    argv = ["compare", "--model", str(model_dir), "--data", str(corpus), "--out", str(tmp_path / "x")]
    code = cli.main([*argv, "--budget", "flops", "budget=tokens", *FAST])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--budget: given twice" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_the_budget_line_names_what_was_held_equal():
    assert budget_line(None) == "Budget held equal: equal steps (every entry trained train.max_steps optimizer steps)."
    line = budget_line(
        {
            "kind": "flops",
            "held_equal": "equal training FLOPs",
            "reference": "full",
            "per_entry": {
                "lora": {"steps": 6, "tokens": 768, "flops": 1.5e9},
                "full": {"steps": 4, "tokens": 512, "flops": 1.49e9},
            },
        }
    )
    assert line.startswith("Budget held equal: equal training FLOPs (the costliest entry per step, full,")
    assert "lora 6 steps" in line and "full 4 steps" in line


def test_compare_at_equal_flops_trains_lora_more_steps(saved_tiny_model, tmp_path, capsys):
    """A tiny `compare budget=flops`: LoRA trains more steps than full, their training FLOPs
    (summary.json) within one step's worth; experiment.json and the report name the budget; a
    re-run into it with another budget is refused."""
    _, model_dir, corpus = saved_tiny_model
    out = tmp_path / "flops"
    argv = ["compare", "--model", str(model_dir), "--data", str(corpus), "--max-steps", "4", "--out", str(out)]
    argv += ["budget=flops", *FAST, "eval.gen_prompts=0", "train.save_every=0", "--likelihood-only"]
    assert cli.main(argv) == 0
    manifest = json.loads((out / "experiment.json").read_text())
    budget = manifest["budget"]
    assert budget["kind"] == "flops" and budget["reference"] == "full"
    summaries = {r["method"]: json.loads((out / r["dir"] / "summary.json").read_text()) for r in manifest["runs"]}
    steps = {m: budget["per_entry"][m]["steps"] for m in ("lora", "full")}
    assert steps["full"] == 4 and steps["lora"] > 4
    for m in ("lora", "full"):
        assert summaries[m]["steps"] == steps[m]
    flops = {m: s["train_flops"] for m, s in summaries.items()}
    lora_step = flops["lora"] / steps["lora"]
    assert abs(flops["lora"] - flops["full"]) <= lora_step
    print("budget per entry:", {m: (steps[m], flops[m]) for m in steps})
    results = json.loads((out / "results.json").read_text())
    assert results["time_efficiency"]["budget"]["held_equal"] == "equal training FLOPs"
    assert "Budget held equal: equal training FLOPs" in (out / "report.md").read_text()
    # the same directory at another budget is another experiment: refused, nothing rewritten
    before = (out / "experiment.json").read_bytes()
    argv[argv.index("budget=flops")] = "budget=tokens"
    capsys.readouterr()  # the first run's progress
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and "holds a different experiment" in err and len(err.splitlines()) == 1
    assert (out / "experiment.json").read_bytes() == before
