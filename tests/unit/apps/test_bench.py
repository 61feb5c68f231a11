"""ja-adapt bench: MFU arithmetic, the engine's step against train.train, the TRL peer adapter,
the summary arithmetic and the command line (tiny, CPU)."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from ja_adapt.apps import bench, bench_report, bench_workers
from ja_adapt.apps.cli import main
from ja_adapt.config import to_dict
from ja_adapt.train import telemetry

# ---- MFU ---------------------------------------------------------------------------------------------


def test_mfu_matches_a_hand_count():
    from transformers import Qwen2Config

    cfg = Qwen2Config(
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=100,
        tie_word_embeddings=True,
    )
    # per layer: q 64x64, k 64x32, v 64x32, o 64x64, gate/up 64x96, down 96x64; lm_head 100x64
    n = 2 * (64 * 64 + 64 * 32 + 64 * 32 + 64 * 64 + 3 * 64 * 96) + 100 * 64
    seq, tps, peak = 128, 5000.0, 1e12
    attn = 12 * 2 * 64 * seq
    full = telemetry.flops_per_token(cfg, method="full", trainable_params=0, seq_len=seq)
    lora = telemetry.flops_per_token(cfg, method="lora", trainable_params=1000, seq_len=seq)
    assert telemetry.mfu(tps, full, peak) == pytest.approx(tps * (6 * n + attn) / peak)
    assert telemetry.mfu(tps, lora, peak) == pytest.approx(tps * (4 * n + 6 * 1000 + attn) / peak)


# ---- workers -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    cfg = bench.BenchConfig(
        corpora=["chatterbot-ja"],
        max_chars=4000,
        vocab_size=400,
        batch=2,
        seq=32,
        steps=2,
        warmup=1,
        precision="fp32",
        device="cpu",
    )
    work = tmp_path_factory.mktemp("bench")
    return cfg, work, bench.prepare(cfg, work)


def _spec(prepared, side: str, method: str, **bench_changes) -> dict:
    cfg, work, facts = prepared
    cfg = bench.BenchConfig(**{**asdict(cfg), **bench_changes})
    return {
        **facts,
        "side": side,
        "method": method,
        "repeat": 0,
        "workdir": str(work),
        "bench": asdict(cfg),
        "engine": to_dict(bench.engine_config(cfg, method)),
    }


def test_engine_step_reproduces_train_train(prepared, tmp_path):
    """The bench's engine loop gives train.train's losses, step for step (same data, model, RNG)."""
    from ja_adapt.config import from_dict
    from ja_adapt.models.load import load_tokenizer
    from ja_adapt.train.loop import train

    spec = _spec(prepared, "ja-adapt", "lora")
    spec["model_vocab"] = len(load_tokenizer(spec["tokenizer"]))  # train.train's vocabulary
    result = bench_workers.worker(spec)
    cfg = from_dict(spec["engine"])
    cfg.model.tokenizer = spec["tokenizer"]
    cfg.data.paths = [spec["docs"]]
    cfg.data.val_fraction = cfg.data.test_fraction = 0.0
    cfg.data.cache_dir = str(tmp_path / "cache")
    cfg.train.max_steps, cfg.train.eval_every = 3, 0
    train(cfg, tmp_path / "run")
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in records] == pytest.approx(result["losses"], rel=1e-6)
    assert result["tokens_per_s"] > 0 and result["steps"] == 2
    assert 0 <= result["padding_fraction"] < 1 and result["peak_rss_bytes"] > 50e6
    # the plan beside it: RSS before the model, the plan's tensors, this run's matmul rate
    assert 50e6 < result["baseline_rss_bytes"] < result["peak_rss_bytes"]
    assert result["planned_peak_allocated_bytes"] > 0 and result["matmul_flops"] > 1e8


def test_plan_table_puts_the_plan_beside_each_engine_run():
    """Predicted RSS = the plan's tensors + the run's RSS before the model; predicted step time =
    (the plan's FLOPs per token + checkpointing's recompute) x batch x seq / the matmul rate."""
    from ja_adapt.models.arch import PRESETS

    config = PRESETS["tiny"]
    fpt = telemetry.flops_per_token(config, method="full", trainable_params=0, seq_len=64)
    extra = telemetry.recompute_flops_per_token(config, seq_len=64)
    run = {
        "side": "ja-adapt",
        "method": "full",
        "repeat": 0,
        "trainable_params": 0,
        "step_time_s": 2.0,
        "peak_rss_bytes": 3 * 2**30,
        "planned_peak_allocated_bytes": 2**30,
        "baseline_rss_bytes": 2**30,
        "matmul_flops": 1e9,
    }
    trl = {"side": "trl-best", "method": "full", "repeat": 0, "step_time_s": 1.0}
    result = {
        "config": {"preset": "tiny", "batch": 2, "seq": 64, "precision": "fp32"},
        "engine_config": {
            "lora": {"targets": "qv"},
            "model": {"dtype": "fp32"},
            "train": {"activation_checkpointing": True},
        },
        "runs": [run, trl],
    }
    text, rows = bench_report.plan_table([result], matmul_flops=5e9)
    (row,) = rows  # engine runs only
    assert row["rss_pred"] == 2 * 2**30 and row["step_pred"] == pytest.approx(2 * 64 * (fpt + extra) / 1e9)
    assert "| full | — | fp32 | fp32 | on | 2 × 64 | 3.00 | 2.00 | 0.67 |" in text


def test_trl_peer_runs_one_step(prepared):
    pytest.importorskip("trl")
    r = bench_workers.worker(_spec(prepared, "trl-best", "lora", steps=1, warmup=0))
    assert r["side"] == "trl-best" and r["steps"] == 1 and r["tokens_per_s"] > 0
    # LoRA r=16 on q/v of the tiny preset: 4 layers x 16 x ((256+256) + (256+128)), as the engine
    assert r["trainable_params"] == 4 * 16 * (512 + 384)
    assert r["padding_fraction"] == 0.0  # packed, padding-free batches


# ---- summary and command line -------------------------------------------------------------------------


def test_summary_ratios_are_paired_by_repeat():
    runs = [
        {
            "method": "lora",
            "side": s,
            "repeat": k,
            "tokens_per_s": tps,
            "peak_rss_bytes": m,
            "step_time_s": 1.0,
            "padding_fraction": 0.0,
        }
        for s, k, tps, m in [
            ("ja-adapt", 0, 400, 100),
            ("ja-adapt", 1, 300, 100),
            ("trl-default", 0, 100, 200),
            ("trl-default", 1, 200, 400),
        ]
    ]
    runs.append({"method": "lora", "side": "trl-best", "repeat": 0, "error": "exit 1"})
    s = bench_report.summarise(runs)
    (ratio,) = s["ratios"]
    assert (ratio["engine"], ratio["peer"]) == ("ja-adapt", "trl-default")
    assert ratio["speedup"] == {"min": 1.5, "median": 2.75, "max": 4.0}
    assert ratio["memory_ratio"] == {"min": 0.25, "median": 0.375, "max": 0.5}
    row = next(r for r in s["rows"] if r["side"] == "ja-adapt")
    assert row["tokens_per_s"] == {"min": 300, "median": 350, "max": 400}
    assert "| lora | ja-adapt | trl-default | 2.75×" in bench_report.table(s)


def test_bench_cli_two_steps(tmp_path, capsys):
    """`ja-adapt bench --steps 2` (python -m ja_adapt.apps.bench's entry point, in this process; the
    run itself in a worker subprocess)."""
    out = tmp_path / "bench.json"
    code = bench._main(
        [
            "--method",
            "lora",
            "--sides",
            "ja-adapt",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--repeats",
            "1",
            "--batch",
            "2",
            "--seq",
            "32",
            "--precision",
            "fp32",
            "--device",
            "cpu",
            "--corpora",
            "chatterbot-ja",
            "--max-chars",
            "3000",
            "--out",
            str(out),
            "train.loss_chunk_size=16",
        ]
    )
    stdout = capsys.readouterr().out
    assert code == 0, stdout
    result = json.loads(out.read_text())
    (run,) = result["runs"]
    assert run["side"] == "ja-adapt" and run["steps"] == 2 and run["tokens_per_s"] > 0
    assert result["engine_config"]["train"]["loss_chunk_size"] == 16
    assert "| lora | ja-adapt |" in stdout


@pytest.mark.parametrize(
    "argv, key",
    [
        (["--method", "lroa"], "--method"),
        (["--sides", "hf"], "--sides"),
        (["--steps", "0"], "--steps"),
        (["--preset", "nope"], "--preset"),
        (["train.nope=1"], "train.nope"),
        (["--docs", "/nonexistent/d.jsonl"], "--docs"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv, key, capsys, tmp_path):
    assert main(["bench", "--out", str(tmp_path / "b.json"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert key in err and "\n" not in err
