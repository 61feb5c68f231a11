"""report: results.json from synthetic experiment directories, its schema, the rendered report.

The fixtures write the experiments package's directory contract by hand (no training), with known numbers,
so derived figures can be recomputed here from the raw files.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.metadata
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from ja_adapt.config import ExperimentConfig, with_overrides
from ja_adapt.core import provenance
from ja_adapt.core.errors import UserError
from ja_adapt.core.provenance import LOCK
from ja_adapt.evaluate.forgetting import forgetting
from ja_adapt.experiments import write_stats

SCRIPTS = ("hiragana", "katakana", "kanji", "other")


# ---- synthetic experiment directories ---------------------------------------------------------------


def _group(lang, domain, trained, doc_bpc):
    chars = [40 + 3 * i for i in range(len(doc_bpc))]
    nll = [b * c * math.log(2) for b, c in zip(doc_bpc, chars)]
    per_doc = [
        {"source": f"{domain}-{i}", "nll": n, "chars": c, "bytes": 3 * c, "tokens": c // 2, "bits_per_char": b}
        for i, (n, c, b) in enumerate(zip(nll, chars, doc_bpc))
    ]
    s, ch, tok = sum(nll), sum(chars), sum(c // 2 for c in chars)
    return {
        "lang": lang,
        "domain": domain,
        "trained": trained,
        "per_doc": per_doc,
        "nll_sum_nats": s,
        "tokens": tok,
        "chars": ch,
        "bytes": 3 * ch,
        "documents": len(chars),
        "token_ppl": math.exp(s / tok),
        "bits_per_char": s / math.log(2) / ch,
        "bits_per_byte": s / math.log(2) / (3 * ch),
    }


def make_eval(level: float, seed: int, base: dict | None = None, forget: float = 0.0, gen: bool = True) -> dict:
    """An eval.json shaped like evaluate.run.evaluate_model's; `level` scales Japanese bits/char."""
    rng = np.random.default_rng(seed + int(1000 * level))
    groups = {
        "ja/news": _group("ja", "news", True, level + 0.05 * rng.standard_normal(12)),
        "ja/wiki": _group("ja", "wiki", False, level + 0.3 + 0.05 * rng.standard_normal(6)),
        "en/docs": _group("en", "docs", False, 1.0 + forget + 0.02 * rng.standard_normal(5)),
        "zh/news": _group("zh", "news", False, 2.0 + 2 * forget + 0.02 * rng.standard_normal(5)),
    }
    by_lang = {}
    for lang in ("ja", "en", "zh"):
        gs = [g for g in groups.values() if g["lang"] == lang]
        nll, ch, by = (sum(g[k] for g in gs) for k in ("nll_sum_nats", "chars", "bytes"))
        by_lang[lang] = {
            "bits_per_char": nll / math.log(2) / ch,
            "bits_per_byte": nll / math.log(2) / by,
            "bytes": by,
            "chars": ch,
        }
    acc = {s: 0.9 - level / 10 + 0.01 * i for i, s in enumerate(SCRIPTS)}
    ev = {
        "schema": "ja-adapt-eval/1",
        "config": {"bootstrap_resamples": 200, "seed": 0},
        "tokenizer": {"sha256": "t" * 64},
        "likelihood": {"by_group": groups, "by_lang": by_lang},
        "scripts": {
            "overall": {
                **{s: {"bits_per_char": level + i, "char_accuracy": acc[s]} for i, s in enumerate(SCRIPTS)},
                "overall": {"bits_per_char": level, "char_accuracy": float(np.mean(list(acc.values())))},
            }
        },
        "domains": {
            "held_out": {k: groups["ja/news"][k] for k in ("bits_per_char", "bits_per_byte", "token_ppl")},
            "cross_domain_mean_bits_per_char": groups["ja/wiki"]["bits_per_char"],
            "cross_domain_std_bits_per_char": None,
            "by_domain": {
                "news": {"trained": True, "bits_per_char": groups["ja/news"]["bits_per_char"]},
                "wiki": {"trained": False, "bits_per_char": groups["ja/wiki"]["bits_per_char"]},
            },
        },
        "buckets": {
            "overall": {"simple": {"bits_per_char": level - 0.1}, "complex": {"bits_per_char": level + 0.2}},
            "by_domain": {},
        },
        "generation": {"n": 0, "skipped": "off"},
    }
    if gen:
        refs = [
            "今日は良い天気ですね。",
            "東京の桜は三月に咲きます。",
            "私は毎朝コーヒーを飲みます。",
            "京都には古いお寺があります。",
        ]
        hyps = refs if level < 2.5 else ["今日は天気。", "東京の桜。", "私は毎朝。", "京都。"]
        ev["generation"] = {
            "n": 4,
            "bleu": 60 - 10 * level,
            "chrf": 70 - 10 * level,
            "bleu_1_precision": 80 - level,
            "bleu_4_precision": 40 - level,
            "sentence_bleu_mean": 50 - level,
            "sentence_bleu_std": 5.0,
            "samples": [{"source": "s", "prompt": "p", "reference": r, "hypothesis": h} for r, h in zip(refs, hyps)],
        }
    refs = ["ファイルを開く", "保存する", "終了"]
    ev["supervised"] = {
        "n": 3,
        "overall": {
            "bleu": 50 - 10 * level,
            "chrf": 60 - 10 * level,
            "exact_match": 0.5 - level / 10,
            "response_bits_per_char": level,
        },
        "samples": [
            {
                "domain": "translation",
                "prompt": f"Translate into Japanese:\nS{i}\n",
                "reference": r,
                "hypothesis": r[: 1 + int(level)],
                "exact_match": False,
                "nll": level * len(r),
                "chars": len(r),
            }
            for i, r in enumerate(refs)
        ],
    }
    ev["forgetting"] = forgetting(ev, base)
    return ev


def make_run(
    out: Path,
    name: str,
    method: str,
    seed: int,
    overrides: dict,
    *,
    steps=200,
    level=2.0,
    base_eval=None,
    mem=1e9,
    time_s=100.0,
    trainable=1000,
    overfit_at=None,
    evals=True,
) -> dict:
    d = out / "runs" / name
    d.mkdir(parents=True)
    cfg = {
        "method": method,
        "precision": "bf16",
        "seed": seed,
        "lora": {"rank": 8, "alpha": 16.0},
        "optim": {"lr": 3e-4},
        "train": {"max_steps": steps},
    }
    for k, v in overrides.items():
        node = cfg
        *parents, last = k.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = v
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    rng = np.random.default_rng(seed)
    recs = []
    for s in range(1, steps + 1):
        loss = level + 2.0 * math.exp(-s / 30) + 0.01 * rng.standard_normal()
        recs.append(
            {
                "kind": "train",
                "step": s,
                "loss": loss,
                "lr": 3e-4,
                "grad_norm": 1 + 0.1 * rng.random(),
                "tokens": 100,
                "tokens_total": 100 * s,
                "tokens_per_s": 100 / (time_s / steps),
                "step_time_s": time_s / steps,
                "elapsed_s": time_s * s / steps,
                "peak_mem_bytes": mem,
                "mem_bytes": mem * 0.9,
                "skipped": False,
            }
        )
        if s % 10 == 0:
            v = level + 0.1 + 2.0 * math.exp(-s / 30)
            if overfit_at is not None and s > overfit_at:
                v += 0.004 * (s - overfit_at)
            recs.append({"kind": "val", "step": s, "val_loss": v, "val_tokens": 1000, "elapsed_s": time_s * s / steps})
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    vals = [r for r in recs if r["kind"] == "val"]
    summary = {
        "method": method,
        "precision": cfg["precision"],
        "seed": seed,
        "model": "tiny",
        "steps": steps,
        "stop_reason": "max_steps",
        "tokens_total": 100 * steps,
        "final_train_loss": recs[-2]["loss"],
        "final_train_loss_window_mean": level + 0.001,
        "final_train_loss_window": 20,
        "final_val_loss": vals[-1]["val_loss"],
        "best_val_loss": min(v["val_loss"] for v in vals),
        "best_val_step": 0,
        "train_time_s": time_s,
        "time_per_step_s": time_s / steps,
        "tokens_per_s": 100 * steps / time_s,
        "peak_mem_bytes": mem,
        "mean_mem_bytes": 0.9 * mem,
        "memory_kind": "cuda_allocated",
        "params_total": 100_000,
        "params_trainable": trainable,
        "trainable_fraction": trainable / 100_000,
        "optimizer_state_bytes": 8 * trainable,
        "model_state_bytes": 400_000 + 4 * trainable,
        "artifact_dir": "adapter" if method == "lora" else "model",
        "artifact_bytes": 4 * trainable + 1000,
        "nonfinite_skipped": 0,
        "config_hash": f"h-{name}",
        "data_hash": "d0",
        "device": {
            "device_type": "cuda",
            "device_name": "Test GPU",
            "device_memory_bytes": 16 * 2**30,
            **provenance.cpu_record(),
        },
        "versions": provenance.package_versions(),
        "lock": provenance.lock_record(),
    }
    (d / "summary.json").write_text(json.dumps(summary))
    if evals:
        (d / "eval.json").write_text(
            json.dumps(make_eval(level, seed, base_eval, forget=0.1 if method == "full" else 0.02))
        )
        for s in (steps // 2, steps):
            c = d / "checkpoints" / f"step-{s:08d}"
            c.mkdir(parents=True)
            ev = make_eval(level + (0.5 if s < steps else 0), seed, base_eval, gen=False)
            (c / "eval.json").write_text(json.dumps(ev))
    return {"name": name, "method": method, "seed": seed, "overrides": overrides, "dir": f"runs/{name}"}


def make_compare(out: Path, seeds=(0, 1), lora_level=2.1, full_level=2.0) -> Path:
    out.mkdir(parents=True)
    base = make_eval(3.0, 99)
    (out / "base").mkdir()
    (out / "base" / "eval.json").write_text(json.dumps(base))
    runs = []
    for s in seeds:
        runs.append(
            make_run(
                out,
                f"method-lora__s{s}",
                "lora",
                s,
                {"method": "lora"},
                level=lora_level + 0.01 * s,
                base_eval=base,
                mem=2e9 + 1e7 * s,
                time_s=60.0 + s,
                trainable=1000,
            )
        )
        runs.append(
            make_run(
                out,
                f"method-full__s{s}",
                "full",
                s,
                {"method": "full"},
                level=full_level + 0.01 * s,
                base_eval=base,
                mem=5e9 + 2e7 * s,
                time_s=100.0 + 2 * s,
                trainable=100_000,
                overfit_at=120,
            )
        )
    (out / "experiment.json").write_text(
        json.dumps(
            {
                "kind": "compare",
                "config": {},
                "grid": {"method": ["lora", "full"]},
                "seeds": list(seeds),
                "runs": runs,
                "base": "base",
            }
        )
    )
    (out / "plan.json").write_text(
        json.dumps(
            {
                r["name"]: {
                    "peak_allocated_bytes": 1.2e9 if r["method"] == "lora" else 4e9,
                    "total_bytes": 1.5e9 if r["method"] == "lora" else 4.5e9,
                }
                for r in runs
            }
        )
    )
    # stats.json as `compare` writes it (the report reads statistics, never computes them)
    write_stats(out, runs, with_overrides(ExperimentConfig(), {"eval.bootstrap_resamples": 200, "eval.seed": 0}))
    return out


def make_sweep(out: Path, key: str, values: list, seeds=(0,), metric=lambda v: 2.0) -> Path:
    out.mkdir(parents=True)
    runs = []
    for v in values:
        for s in seeds:
            name = f"{key}-{v}__s{s}"
            runs.append(
                make_run(
                    out,
                    name,
                    "lora",
                    s,
                    {key: v},
                    level=metric(v),
                    trainable=int(125 * v) if key == "lora.rank" else 1000,
                    evals=True,
                )
            )
    (out / "experiment.json").write_text(
        json.dumps({"kind": "sweep", "config": {}, "grid": {key: values}, "seeds": list(seeds), "runs": runs})
    )
    return out


@pytest.fixture(scope="module")
def compare_dir(tmp_path_factory) -> Path:
    return make_compare(tmp_path_factory.mktemp("exp") / "cmp")


@pytest.fixture(scope="module")
def results(compare_dir):
    from ja_adapt.report import build_results

    return build_results([compare_dir])


def _summaries(out: Path, method: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.glob(f"runs/method-{method}__s*/summary.json"))]


def _evals(out: Path, method: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.glob(f"runs/method-{method}__s*/eval.json"))]


def test_results_validate_against_the_schema(results):
    import jsonschema

    from ja_adapt.core.jsonio import json_safe
    from ja_adapt.report import schema

    jsonschema.validate(json_safe(results), schema())
    broken = json_safe(results)
    broken["memory_usage"]["groups"]["lora"]["peak_mem_bytes"] = 123  # not an agg object
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema())
    del broken["memory_usage"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema())


def test_seed_aggregates_and_derived_ratios_recomputed_from_raw_files(results, compare_dir):
    lo, fu = _summaries(compare_dir, "lora"), _summaries(compare_dir, "full")
    mean = lambda rows, k: float(np.mean([r[k] for r in rows]))  # noqa: E731
    peak = results["memory_usage"]["groups"]["lora"]["peak_mem_bytes"]
    assert peak["mean"] == pytest.approx(mean(lo, "peak_mem_bytes"))
    assert peak["sd"] == pytest.approx(np.std([r["peak_mem_bytes"] for r in lo], ddof=1))
    mem = results["memory_usage"]["lora_vs_full"]
    assert mem["peak_reduction_pct"] == pytest.approx(
        100 * (1 - mean(lo, "peak_mem_bytes") / mean(fu, "peak_mem_bytes"))
    )
    assert mem["optimizer_reduction_pct"] == pytest.approx(
        100 * (1 - mean(lo, "optimizer_state_bytes") / mean(fu, "optimizer_state_bytes"))
    )
    eff = results["efficiency_metrics"]["lora_vs_full"]
    assert eff["parameter_reduction_pct"] == pytest.approx(100 * (1 - 1000 / 100_000))
    assert eff["artifact_gain"] == pytest.approx(mean(fu, "artifact_bytes") / mean(lo, "artifact_bytes"))
    tim = results["time_efficiency"]["lora_vs_full"]
    assert tim["throughput_increase_pct"] == pytest.approx(
        100 * (mean(lo, "tokens_per_s") / mean(fu, "tokens_per_s") - 1)
    )
    assert tim["total_time_reduction_pct"] == pytest.approx(
        100 * (1 - mean(lo, "train_time_s") / mean(fu, "train_time_s"))
    )
    tr = results["tradeoff_analysis"]
    assert tr["memory_efficiency_gain"] == pytest.approx(mean(fu, "peak_mem_bytes") / mean(lo, "peak_mem_bytes"))
    assert tr["time_efficiency_gain"] == pytest.approx(mean(fu, "train_time_s") / mean(lo, "train_time_s"))
    bpc = lambda evs: float(np.mean([e["domains"]["held_out"]["bits_per_char"] for e in evs]))  # noqa: E731
    lb, fb = bpc(_evals(compare_dir, "lora")), bpc(_evals(compare_dir, "full"))
    base = json.loads((compare_dir / "base" / "eval.json").read_text())["domains"]["held_out"]["bits_per_char"]
    assert tr["performance_retention"]["ja_bits_per_char"]["value"] == pytest.approx(fb / lb)
    assert tr["gain_retention"] == pytest.approx((base - lb) / (base - fb))
    assert tr["efficiency_score"]["value"] == pytest.approx(
        tr["gain_retention"] * math.sqrt(tr["memory_efficiency_gain"] * tr["time_efficiency_gain"])
    )
    bleu = lambda evs: float(np.mean([e["generation"]["bleu"] for e in evs]))  # noqa: E731
    assert results["bleu_evaluation"]["performance_ratio"] == pytest.approx(
        bleu(_evals(compare_dir, "lora")) / bleu(_evals(compare_dir, "full"))
    )


def test_statistics_come_from_compare_models(results, compare_dir):
    from ja_adapt.config import EvalConfig
    from ja_adapt.evaluate.compare import compare_models

    a, b = _evals(compare_dir, "lora")[0], _evals(compare_dir, "full")[0]
    ref = compare_models(a, b, EvalConfig(bootstrap_resamples=200, seed=0))["bits_per_char"]["held_out"]
    row = next(
        r
        for r in results["statistical_results"]["document_level"]
        if (r["a"], r["b"]) == ("method-lora__s0", "method-full__s0")
    )
    assert row["level"] == "document" and row["n"] == ref["n"] == 12
    for k in ("diff", "ci_low", "ci_high"):
        assert row[k] == pytest.approx(ref["char_weighted"][k])
    assert row["wilcoxon_p"] == pytest.approx(ref["wilcoxon"]["p"]) and row["cohens_dz"] == pytest.approx(
        ref["cohens_dz"]
    )
    # seed level (about the methods): Welch over the per-seed held-out bits/char, as scipy computes it
    from scipy import stats as sps

    per_seed = {
        m: [e["domains"]["held_out"]["bits_per_char"] for e in _evals(compare_dir, m)] for m in ("lora", "full")
    }
    head = results["headline"]["metrics"]["ja_bits_per_char"]
    assert head["lora"]["n"] == head["full"]["n"] == 2
    welch = sps.ttest_ind(per_seed["lora"], per_seed["full"], equal_var=False)
    assert head["difference"]["p"] == pytest.approx(welch.pvalue)
    assert head["difference"]["diff"] == pytest.approx(np.mean(per_seed["lora"]) - np.mean(per_seed["full"]))


def test_stats_json_is_used_when_present(tmp_path):
    from ja_adapt.report import build_results

    out = make_compare(tmp_path / "cmp", seeds=(0,))
    sentinel = {
        "bits_per_char": {
            "held_out": {
                "n": 18,
                "wilcoxon": {"p": 0.0421},
                "char_weighted": {"diff": 0.123456, "ci_low": 0.1, "ci_high": 0.2},
            }
        },
        "generation": {},
    }
    entries = [{"a": "method-lora__s0", "b": "method-full__s0", "seed": 0, "stats": sentinel}] + [
        {"a": f"method-{m}__s0", "b": "base", "seed": 0, "stats": sentinel} for m in ("lora", "full")
    ]
    (out / "stats.json").write_text(json.dumps({"pairs": entries[:1], "vs_base": entries[1:]}))
    rows = build_results([out])["statistical_results"]["document_level"]
    assert [r["diff"] for r in rows] == [0.123456] * 3 and [r["wilcoxon_p"] for r in rows] == [0.0421] * 3


def test_overfitting_onset_found_in_the_run_logs(results):
    ld = results["learning_dynamics"]["groups"]
    assert ld["full"]["overfitting_detected"] == {"0": True, "1": True}
    assert 110 <= ld["full"]["overfitting_onset_step"]["mean"] <= 130  # the fixture starts rising after 120
    assert ld["lora"]["overfitting_onset_step"]["n"] == 0


def test_report_numbers_come_from_results_json(results, tmp_path):
    import copy

    from ja_adapt.report import write_report

    res = copy.deepcopy(results)
    res["efficiency_metrics"]["groups"]["lora"]["params_trainable"]["mean"] = 7654321.0
    res["memory_usage"]["lora_vs_full"]["peak_reduction_pct"] = 87.654
    paths = write_report(tmp_path / "rep", res)
    md = paths["report.md"].read_text(encoding="utf-8")
    assert "7,654,321" in md and "87.7%" in md
    written = json.loads(paths["results.json"].read_text())
    assert written["memory_usage"]["lora_vs_full"]["peak_reduction_pct"] == 87.654
    html = paths["report.html"].read_text(encoding="utf-8")
    assert "7,654,321" in html and "<table>" in html
    assert 'src="plots/' not in html
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(imgs) == len([p for p in paths if p.startswith("plots/")]) >= 5
    assert base64.b64decode(imgs[0])[:8] == b"\x89PNG\r\n\x1a\n"
    for sec in (
        "Executive summary",
        "1. Primary results",
        "2. Detailed analysis",
        "3. Comparative analysis",
        "4. Discussion",
        "5. Limitations",
        "6. Conclusion",
        "Appendix",
    ):
        assert f" {sec}" in md
    assert "Not run" in md  # no sweeps in a compare
    assert results["rank_sensitivity"] == {"status": "not run"}
    # the appendix says what produced the numbers: versions, the lock, the CPU's kernel flags
    appendix = md[md.index("Appendix: definitions and environment") :]
    for text in (
        f"bitsandbytes={importlib.metadata.version('bitsandbytes')}",
        f"mecab-python3={importlib.metadata.version('mecab-python3')}",
        "lock file",
        hashlib.sha256(LOCK.read_bytes()).hexdigest()[:16],
        "environment matches",
        f"cpu_kernel_flags={provenance.cpu_record()['cpu_kernel_flags']}",
    ):
        assert text in appendix, text


def test_sweeps_merge_into_one_report(results, compare_dir, tmp_path):
    import shutil

    from ja_adapt.report import build_results

    cmp = tmp_path / "cmp"
    shutil.copytree(compare_dir, cmp)
    entries = [
        {"a": f"method-lora__s{s}", "b": b, "seed": s, "stats": {}}
        for s in (0, 1)
        for b in (f"method-full__s{s}", "base")
    ] + [{"a": f"method-full__s{s}", "b": "base", "seed": s, "stats": {}} for s in (0, 1)]
    (cmp / "stats.json").write_text(json.dumps({"pairs": entries, "vs_base": []}))  # skip recomputing
    rank = make_sweep(tmp_path / "rank", "lora.rank", [4, 8, 16, 32], metric=lambda r: 2.0 + 0.4 / r)
    lr = make_sweep(tmp_path / "lr", "optim.lr", [1e-4, 3e-4, 1e-3], metric=lambda v: 2 + abs(math.log10(v / 3e-4)))
    res = build_results([cmp, rank, lr])
    assert res["duplicates_skipped"]  # rank 8 / lr 3e-4 repeat the compare's LoRA seed 0
    rs = res["rank_sensitivity"]
    got = {}
    for p in sorted(rank.glob("runs/*/eval.json")):
        r = yaml.safe_load((p.parent / "config.yaml").read_text())["lora"]["rank"]
        got[r] = json.loads(p.read_text())["domains"]["held_out"]["bits_per_char"]
    got[8] = rs["points"][1]["metric"]["mean"]  # the merged compare group (2 seeds)
    best = min(got.values())
    assert rs["diminishing_returns_rank"] == min(r for r, v in got.items() if v <= best * 1.01)
    assert [p["rank"] for p in rs["points"]] == [4, 8, 16, 32]
    lrs = res["lr_sensitivity"]["by_method"]["lora"]
    assert lrs["best_lr"] == 3e-4 and len(lrs["points"]) == 3
    assert any(i["topic"] == "rank" for i in res["recommendations"]["items"])


def test_cli_refuses_missing_or_invalid_directories(tmp_path, capsys):
    from ja_adapt.apps import cli
    from ja_adapt.apps.cli.report import run

    missing = tmp_path / "nope"
    with pytest.raises(UserError, match="nope"):
        run(argparse.Namespace(outs=[missing], out=None))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "experiment.json").write_text("{not json")
    with pytest.raises(UserError, match="experiment.json"):
        run(argparse.Namespace(outs=[bad], out=None))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "experiment.json").write_text(json.dumps({"kind": "compare", "runs": []}))
    with pytest.raises(UserError, match="no finished run"):
        run(argparse.Namespace(outs=[empty], out=None))
    assert cli.main(["report", str(missing)]) == 2
    assert "nope" in capsys.readouterr().err


def test_metrics_log_damage_is_named(tmp_path):
    from ja_adapt.report import build_results

    out = make_compare(tmp_path / "cmp", seeds=(0,))
    log = out / "runs" / "method-lora__s0" / "metrics.jsonl"
    log.write_text(log.read_text() + "{broken\n")
    with pytest.raises(UserError, match=r"metrics.jsonl:\d+"):
        build_results([out])


def test_predicted_memory_from_plan_json(results, compare_dir):
    pm = results["memory_usage"]["predicted_vs_measured"]
    s = json.loads((compare_dir / "runs" / "method-full__s1" / "summary.json").read_text())
    assert pm["method-full__s1"]["predicted_total_bytes"] == 4.5e9
    assert pm["method-full__s1"]["ratio_measured_over_predicted"] == pytest.approx(s["peak_mem_bytes"] / 4e9)


def test_executive_summary_states_only_resolved_differences(results):
    import copy

    from ja_adapt.report import executive_summary

    res = copy.deepcopy(results)
    m = res["headline"]["metrics"]["ja_bits_per_char"]
    m["difference"].update(diff=0.987654, ci_low=0.5, ci_high=1.5)
    m["resolved"], m["better"] = True, "full"
    from ja_adapt.report import fmt

    assert f"full better by {fmt.num(0.987654)} (LoRA − full [{fmt.num(0.5)}, {fmt.num(1.5)}])" in executive_summary(
        res
    )
    for k in res["headline"]["families"]["japanese_quality"]:
        res["headline"]["metrics"][k]["resolved"] = False
    text = executive_summary(res)
    assert "Japanese quality: no resolved difference" in text and "0.9877" in text


def test_recommendations_come_only_from_resolved_differences(results):
    items = {i["topic"]: i for i in results["recommendations"]["items"]}
    head = results["headline"]
    resolved = [k for k in head["families"]["japanese_quality"] if head["metrics"][k]["resolved"]]
    assert items["method"]["basis"]["resolved_quality"] == resolved
    winners = {head["metrics"][k]["better"] for k in resolved}
    expect = (
        "No resolved difference"
        if not resolved
        else "Japanese-quality differences point both ways"
        if len(winners) > 1
        else f"Prefer {'LoRA' if winners == {'lora'} else 'full fine-tuning'}"
    )
    assert items["method"]["text"].startswith(expect) and "Test GPU" in items["method"]["text"]
    if len(winners) == 1:
        assert f"({len(resolved)} of {len(head['families']['japanese_quality'])};" in items["method"]["text"]
    peak_full = results["memory_usage"]["groups"]["full"]["peak_mem_bytes"]["mean"]
    assert f"({100 * peak_full / 2**34:.1f}% of the device)" in items["hardware"]["text"]
    forgot = [k for k in head["families"]["forgetting"] if head["metrics"][k]["resolved"]]
    forget_items = [i for i in results["recommendations"]["items"] if i["topic"] == "forgetting"]
    assert len(forget_items) == max(len(forgot), 1)
    if not forgot:
        assert forget_items[0]["text"].startswith("No resolved difference in forgetting")


def test_corpus_manifest_becomes_the_data_sources_appendix(tmp_path):
    from ja_adapt.report import build_results, write_report

    out = make_compare(tmp_path / "cmp", seeds=(0,))
    manifest = {
        "sources": [
            {
                "name": "hg-help-ja",
                "lang": "ja",
                "domain": "docs",
                "role": "adapt",
                "package": "mercurial",
                "licence": "GPL-2.0-or-later",
                "status": "used",
                "n_docs": 123,
                "n_chars": 45678,
                "n_bytes": 99999,
            }
        ],
        "sizes": [{"set": "ja-train", "lang": "ja", "domain": "docs", "docs": 120, "chars": 45000}],
    }
    (out / "corpora.json").write_text(json.dumps(manifest), encoding="utf-8")
    res = build_results([out])
    assert res["environment"]["data_sources"]["sources"][0]["licence"] == "GPL-2.0-or-later"
    paths = write_report(tmp_path / "rep", res)
    md = paths["report.md"].read_text(encoding="utf-8")
    assert "Appendix: data sources" in md and "GPL-2.0-or-later" in md and "45,678" in md
    assert "Appendix: data sources" not in write_report(
        tmp_path / "none", build_results([make_compare(tmp_path / "plain", seeds=(0,))])
    )["report.md"].read_text(encoding="utf-8")


def test_supervised_task_section_reads_each_models_eval(results, compare_dir, tmp_path):
    from ja_adapt.report import write_report

    st = results["supervised_task"]
    chrf = [e["supervised"]["overall"]["chrf"] for e in _evals(compare_dir, "lora")]
    assert st["groups"]["lora"]["sft_chrf"]["mean"] == pytest.approx(np.mean(chrf))
    assert st["groups"]["lora"]["sft_chrf"]["n"] == 2 and "base" in st["groups"]
    first = _evals(compare_dir, "full")[0]["supervised"]["samples"][0]
    assert st["samples"]["full"][0]["hypothesis"] == first["hypothesis"] and len(st["samples"]["full"]) == 3
    md = write_report(tmp_path / "rep", results)["report.md"].read_text(encoding="utf-8")
    assert "Supervised task" in md and "Continuation quality" in md and "ファイルを開く" in md


# ---- several methods: the methods table and its Pareto fronts ------------------------------------------

# method → (bits/char level, trainable parameters): dora sits between lora and full; ia3 is worse
# than lora on quality and costs more parameters (dominated on that front).
_METHODS = {"lora": (2.1, 1000), "full": (2.0, 100_000), "dora": (2.05, 1100), "ia3": (2.2, 5000)}


def make_methods(out: Path, seeds=(0, 1)) -> Path:
    out.mkdir(parents=True)
    base = make_eval(3.0, 99)
    (out / "base").mkdir()
    (out / "base" / "eval.json").write_text(json.dumps(base))
    runs = [
        make_run(
            out,
            f"method-{m}__s{s}",
            m,
            s,
            {"method": m},
            level=level + 0.01 * s,
            base_eval=base,
            mem=1e9 + trainable * 1e4,
            time_s=50.0 + trainable / 1000,
            trainable=trainable,
        )
        for m, (level, trainable) in _METHODS.items()
        for s in seeds
    ]
    (out / "experiment.json").write_text(
        json.dumps(
            {
                "kind": "compare",
                "config": {},
                "grid": {"method": list(_METHODS)},
                "seeds": list(seeds),
                "runs": runs,
                "base": "base",
            }
        )
    )
    write_stats(out, runs, with_overrides(ExperimentConfig(), {"eval.bootstrap_resamples": 200, "eval.seed": 0}))
    return out


@pytest.fixture(scope="module")
def methods_dir(tmp_path_factory) -> Path:
    return make_methods(tmp_path_factory.mktemp("methods") / "m")


@pytest.fixture(scope="module")
def methods_results(methods_dir):
    from ja_adapt.report import build_results

    return build_results([methods_dir])


def test_methods_table_has_every_method_with_numbers_from_the_raw_files(methods_dir, methods_results):
    from ja_adapt.report import validate

    out, res = methods_dir, methods_results
    validate(res)
    validate(res)
    rows = res["methods"]["rows"]
    assert set(rows) == set(_METHODS)
    base = json.loads((out / "base" / "eval.json").read_text())
    base_bpc = base["domains"]["held_out"]["bits_per_char"]
    for m in _METHODS:
        evals = _evals(out, m)
        gains = [base_bpc - e["domains"]["held_out"]["bits_per_char"] for e in evals]
        forgot = [np.mean([v["bpb_increase"] for v in e["forgetting"]["by_lang"].values()]) for e in evals]
        r = rows[m]
        assert r["quality_gain"]["mean"] == pytest.approx(np.mean(gains))
        assert r["quality_gain"]["ci_low"] < r["quality_gain"]["mean"] < r["quality_gain"]["ci_high"]
        assert r["forgetting"]["mean"] == pytest.approx(np.mean(forgot))
        assert r["params_trainable"]["mean"] == _METHODS[m][1]
        assert r["peak_mem_bytes"]["mean"] == np.mean([s["peak_mem_bytes"] for s in _summaries(out, m)])
        assert r["char_accuracy"]["kanji"]["mean"] == pytest.approx(
            np.mean([e["scripts"]["overall"]["kanji"]["char_accuracy"] for e in evals])
        )
    # ia3 gains less than lora with more parameters; dora and full are each best somewhere
    assert res["methods"]["pareto"]["params"] == ["dora", "full", "lora"]
    # the forgetting front, by brute force over the table's means: no other method is at least as
    # good on both and strictly better on one
    pts = {m: (r["quality_gain"]["mean"], r["forgetting"]["mean"]) for m, r in rows.items()}
    front = [
        m
        for m, (g, f) in pts.items()
        if not any(g2 >= g and f2 <= f and (g2 > g or f2 < f) for o, (g2, f2) in pts.items() if o != m)
    ]
    assert res["methods"]["pareto"]["forgetting"] == sorted(front) and "full" in front


def test_stats_pair_every_method_with_every_other_seed_by_seed(methods_dir):
    out = methods_dir
    stats = json.loads((out / "stats.json").read_text())
    pairs = {(p["a"].split("__")[0], p["b"].split("__")[0], p["seed"]) for p in stats["pairs"]}
    for m in _METHODS:
        if m != "full":
            for s in (0, 1):
                assert (f"method-{m}", "method-full", s) in pairs or ("method-full", f"method-{m}", s) in pairs
    assert all(p["a"].rsplit("__s", 1)[1] == p["b"].rsplit("__s", 1)[1] for p in stats["pairs"])


def test_methods_section_and_pareto_plot_are_rendered(methods_results, tmp_path):
    from ja_adapt.report import write_report

    paths = write_report(tmp_path / "report", methods_results)
    assert "plots/methods_pareto.png" in paths and paths["plots/methods_pareto.png"].stat().st_size > 0
    md = paths["report.md"].read_text()
    section = md.split("3.4 Methods side by side")[-1]
    for m in _METHODS:
        assert f"| {m} |" in section
    assert "Pareto front, quality gained vs trainable parameters: dora, full, lora" in section
    saved = json.loads(paths["results.json"].read_text())
    assert set(saved["methods"]["rows"]) == set(_METHODS)


# ---- arms: two configurations of one method (compare --arm) -----------------------------------------

# arm → (overrides, bits/char level, trainable parameters, Japanese chars/token, training chars/s)
_ARMS = {
    "lora": ({"method": "lora", "lora.targets": "qv"}, 2.1, 1000, 1.25, 900.0),
    "lora-all": ({"method": "lora", "lora.targets": "all-linear"}, 2.05, 3500, 1.25, 700.0),
    "full": ({"method": "full"}, 2.0, 100_000, 1.25, None),
}


def make_arms(out: Path, seeds=(0, 1)) -> Path:
    """A compare of three arms as experiments.run_compare writes it: LoRA on q,v, LoRA on every
    linear (an --arm of method lora), full fine-tuning; fertility in each eval.json and chars/s in
    the LoRA runs' summary.json (the full runs lack it, as older runs do)."""
    out.mkdir(parents=True)
    base = make_eval(3.0, 99)
    (out / "base").mkdir()
    (out / "base" / "eval.json").write_text(json.dumps(base))
    runs = []
    for arm, (over, level, trainable, cpt, cps) in _ARMS.items():
        for s in seeds:
            name = "__".join(f"{k}-{v}" for k, v in over.items()) + f"__s{s}"
            runs.append(
                {
                    **make_run(
                        out, name, over["method"], s, over, level=level + 0.01 * s, base_eval=base, trainable=trainable
                    ),
                    "arm": arm,
                }
            )
            ev_path, sum_path = out / "runs" / name / "eval.json", out / "runs" / name / "summary.json"
            ev = json.loads(ev_path.read_text())
            ev["fertility"] = {"by_lang": {"ja": {"chars_per_token": cpt + 0.01 * s}}}
            ev_path.write_text(json.dumps(ev))
            if cps is not None:
                sum_path.write_text(json.dumps({**json.loads(sum_path.read_text()), "chars_per_s": cps + s}))
    (out / "experiment.json").write_text(
        json.dumps(
            {
                "kind": "compare",
                "config": {},
                "grid": {"method": list(_ARMS)},
                "seeds": list(seeds),
                "runs": runs,
                "base": "base",
                "arms": {"lora-all": _ARMS["lora-all"][0]},
            }
        )
    )
    write_stats(out, runs, with_overrides(ExperimentConfig(), {"eval.bootstrap_resamples": 200, "eval.seed": 0}))
    return out


@pytest.fixture(scope="module")
def arms_dir(tmp_path_factory) -> Path:
    return make_arms(tmp_path_factory.mktemp("arms") / "a")


def test_arms_get_a_row_each_and_every_lora_arm_a_headline_against_full(arms_dir, tmp_path):
    from ja_adapt.report import build_results, fmt, validate, write_report

    res = build_results([arms_dir])
    validate(res)
    rows = res["methods"]["rows"]
    assert set(rows) == set(_ARMS) and rows["lora-all"]["method"] == "lora"
    for arm, (_, _, trainable, cpt, cps) in _ARMS.items():
        assert rows[arm]["params_trainable"]["mean"] == trainable
        assert rows[arm]["chars_per_token"]["mean"] == pytest.approx(cpt + 0.005)  # seeds 0, 1
        assert rows[arm]["chars_per_s"]["mean"] == (None if cps is None else pytest.approx(cps + 0.5))
    labels = {g["arm"]: label for label, g in res["groups"].items()}
    assert labels["lora-all"] == "lora-all" and labels["lora"] == "lora targets=qv" and labels["full"] == "full"
    head, var = res["headline"], res["headline_variants"]
    assert res["primary"]["lora"] == labels["lora"] and set(var) == {"lora-all"}
    assert head["methods"]["lora"].items() >= {"arm": "lora", "targets": "qv", "rank": 8, "alpha": 16.0}.items()
    assert var["lora-all"]["methods"]["lora"].items() >= {"arm": "lora-all", "targets": "all-linear"}.items()
    bpc = {
        arm: np.mean(
            [
                json.loads(p.read_text())["domains"]["held_out"]["bits_per_char"]
                for p in sorted(arms_dir.glob(f"runs/*{_ARMS[arm][0].get('lora.targets', 'full')}__s*/eval.json"))
            ]
        )
        for arm in _ARMS
    }
    v = var["lora-all"]["metrics"]["ja_bits_per_char"]
    assert v["lora"]["mean"] == pytest.approx(bpc["lora-all"]) and v["full"]["mean"] == pytest.approx(bpc["full"])
    assert var["lora-all"]["metrics"]["params_trainable"]["difference"]["diff"] == 3500 - 100_000
    md = write_report(tmp_path / "rep", res)["report.md"].read_text(encoding="utf-8")
    for name, h in (("LoRA (q,v, r=8)", head), ("LoRA (all-linear, r=8)", var["lora-all"])):
        diff = h["metrics"]["ja_bits_per_char"]["difference"]["diff"]
        assert f"{name} vs full: " in md and f"{name} vs full: " in md.split("## The answer")[0]  # summary too
        assert re.search(re.escape(f"{name} vs full: ") + r"[^;.]*" + re.escape(f"LoRA − full {fmt.num(diff)}"), md)
    section = md.split("3.4 Methods side by side")[-1]
    assert "| lora-all (lora) |" in section and "| chars/token | chars/s |" in section
    # one tokenizer here (equal chars/token): no cross-tokenizer note (the demo's extended-vocabulary
    # arm gets it: tests/integration/test_demo.py)
    assert "These rows use different tokenizers" not in section


def test_a_sweep_reusing_an_arms_run_keeps_the_arm_and_its_rank_sweep(arms_dir, tmp_path):
    """A sweep point equal to the lora-all arm's run (listed first, so its copy is the one kept) is
    the arm's group; the rank sweep over LoRA on every linear still forms around it."""
    from ja_adapt.report import build_results

    sweep = tmp_path / "rank"
    sweep.mkdir()
    runs = [
        make_run(
            sweep,
            f"lora.rank-{r}__s0",
            "lora",
            0,
            {"lora.targets": "all-linear", "lora.rank": r},
            level=2.05,
            trainable=3500 * r // 8,
        )
        for r in (4, 8)
    ]
    (sweep / "experiment.json").write_text(
        json.dumps({"kind": "sweep", "config": {}, "seeds": [0], "runs": runs, "grid": {"lora.rank": [4, 8]}})
    )
    res = build_results([sweep, arms_dir])
    assert [d["skipped"].rsplit("/", 1)[-1] for d in res["duplicates_skipped"]] == [
        "method-lora__lora.targets-all-linear__s0"
    ]
    arm_of = {label: g["arm"] for label, g in res["groups"].items()}
    assert sorted(arm_of.values()) == ["full", "lora", "lora", "lora-all"]
    assert res["groups"][next(k for k, a in arm_of.items() if a == "lora-all")]["seeds"] == [0, 1]
    assert set(res["methods"]["rows"]) == set(_ARMS) and res["primary"]["lora"].endswith("targets=qv")
    assert [p["rank"] for p in res["rank_sensitivity"]["points"]] == [4, 8]


def test_metric_registry_paths_name_where_eval_json_holds_each_value(monkeypatch):
    """Each registered metric's eval_path is where quality() found it; a metric eval.json already holds
    is read from its registry entry alone."""
    from ja_adapt.report import quality as q
    from ja_adapt.report.metrics import HEADLINE, METRICS, QUESTIONS, REFERENCE, Metric

    ev = make_eval(2.0, 0, base=make_eval(2.5, 0))
    flat = q.quality(ev)
    for m in METRICS.values():
        if m.source == "quality" and q._get(ev, *m.eval_path) is not None:
            assert flat[m.key] == q._get(ev, *m.eval_path), m.key
    assert all(m.question in QUESTIONS for m in HEADLINE) and all(m.reference for m in REFERENCE)
    assert len({m.key for m in REFERENCE}) == len(REFERENCE) == sum(1 for m in METRICS.values() if m.reference)
    ev["domains"]["held_out"].update(top1_accuracy=0.4, top1_accuracy_ci={"ci_low": 0.3, "ci_high": 0.5})
    monkeypatch.setitem(
        METRICS,
        "ja_top1_accuracy",
        Metric(
            "ja_top1_accuracy",
            "Japanese held-out top-1 accuracy",
            False,
            eval_path=("domains", "held_out", "top1_accuracy"),
            ci_path=("domains", "held_out", "top1_accuracy_ci"),
        ),
    )
    flat = q.quality(ev)
    assert flat["ja_top1_accuracy"] == 0.4 and flat["ja_top1_accuracy_ci"]["ci_high"] == 0.5


def test_sections_are_one_registry_numbered_at_render_time(results, tmp_path):
    """Every section module builds and renders; headings are numbered from the outline, and results.json
    lists its keys in the schema's order."""
    from ja_adapt.report import schema, write_report
    from ja_adapt.report.sections import OUTLINE, SECTIONS

    assert len(set(SECTIONS)) == len(SECTIONS) and all(callable(s.build) and callable(s.blocks) for s in SECTIONS)
    assert list(results) == [k for k in schema()["properties"] if k in results]
    md = write_report(tmp_path / "rep", results)["report.md"].read_text(encoding="utf-8")
    numbered = [c.title for c in OUTLINE if c.numbered]
    assert [h for h in re.findall(r"^## (\d+)\. (.+)$", md, re.M)] == [(str(i), t) for i, t in enumerate(numbered, 1)]
    assert "### 1.1 Performance comparison" in md and "### 3.3 Downstream tasks (lm-evaluation-harness)" in md
