"""The embedded demo: the quick demo end to end, the base-model cache, configs/demo.yaml, bad input."""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

import pytest

from ja_adapt.apps import demo
from ja_adapt.config import load_config, to_dict
from ja_adapt.core.errors import UserError
from ja_adapt.data import corpora

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """JA_ADAPT_CACHE in tmp_path and no in-process memo: the base model is built from scratch."""
    monkeypatch.setenv("JA_ADAPT_CACHE", str(tmp_path / "cache"))
    demo.base_model._cached_base.cache_clear()
    yield tmp_path / "cache"
    demo.base_model._cached_base.cache_clear()


@pytest.mark.timeout(900)  # under a minute on 2 idle cores; shared cores can be far slower
def test_quick_demo_end_to_end(tmp_path, fresh_cache, capfd):
    from ja_adapt.report import validate

    out = tmp_path / "demo"
    results = demo.run_demo(out, quick=True)

    # the report and its data
    for name in ("report.md", "report.html", "results.json", "corpora.json", "demo.json"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    validate(saved)
    assert saved["primary"]["lora"] and saved["primary"]["full"]
    assert {
        saved["groups"][saved["primary"]["lora"]]["config"]["method"],
        saved["groups"][saved["primary"]["full"]]["config"]["method"],
    } == {"lora", "full"}
    # the protocol: each method's rate tuned on seed 0, the other seed trained at the choice
    tuning = saved["lr_tuning"]
    assert tuning["status"] == "ok" and set(tuning["chosen"]) == set(demo.METHODS)
    for method, kind in (("lora", "adapter"), ("full", "model")):
        for seed in (0, 1):
            name = f"method-{method}__optim.lr-{tuning['chosen'][method]}__s{seed}"
            assert (out / "compare/runs" / name / kind).is_dir(), name
    head = saved["headline"]
    assert head["status"] == "ok" and head["metrics"]["ja_bits_per_char"]["lora"]["n"] == 2
    # the translation task: train pairs trained, test pairs answered by every model at seed level
    assert head["metrics"]["sft_chrf"]["lora"]["n"] == 2 and "supervised_task" in head["families"]
    pairs = [json.loads(line) for line in (out / "data/translation.jsonl").read_text("utf-8").splitlines()]
    assert {p["split"] for p in pairs} == {"train", "val", "test"}
    units = {
        u.strip()
        for line in (out / "data/ja-train.jsonl").read_text("utf-8").splitlines()
        for u in json.loads(line)["text"].split("\n\n")
    }
    held_out = {p["completion"] for p in pairs if p["split"] != "train"}
    assert held_out and not held_out & units
    assert "Supervised task" in (out / "report.md").read_text("utf-8")
    assert saved["base_model"]["status"] == "ok" and set(saved["base_model"]["by_lang"]) == {"en", "ja", "zh"}
    # the base tokenizer's fertility on the same held-out sets, in results.json and the report
    fert = saved["base_model"]["fertility"]
    assert set(fert["by_lang"]) == {"en", "ja", "zh"} and fert["scripts"]["kanji"]["chars"] > 0
    assert all(v["tokens"] == saved["base_model"]["by_lang"][lang]["tokens"] for lang, v in fert["by_lang"].items())
    assert "Tokenizer fertility" in (out / "report.md").read_text("utf-8") and (out / "plots/fertility.png").is_file()
    assert saved["evaluation_sets"]["decontamination"]["rule"]["ngram"] == 8
    assert [Path(e["out"]).name for e in saved["experiments"]] == ["compare", "sweep-rank"]
    # the rank sweep's r=16 point is the comparison's seed-0 run, copied, not trained again
    assert saved["duplicates_skipped"] and "sweep-rank" in saved["duplicates_skipped"][0]["skipped"]
    # IA3 gets its own rate from its grid, then the other seed, likelihood metrics only
    # (QUICK.tune_extend 0: a two-point grid's edge choice adds nothing, and the record says the limit stopped it)
    start, final = demo.QUICK.method_grids["ia3"], tuning["grids"]["ia3"]
    assert final == start and not tuning["extended"]["ia3"] and tuning["limit_reached"]["ia3"] is True
    assert set(tuning["chosen"]) == set(demo.METHODS)
    manifest = json.loads((out / "compare/experiment.json").read_text())
    assert manifest["evaluation"] == {
        "lora": "full",
        "lora-all": "full",
        "full": "full",
        "full-vocab": "likelihood",
        "ia3": "likelihood",
    }
    assert manifest["jobs"] == demo.JOBS
    ia3 = [r for r in manifest["runs"] if r["arm"] == "ia3"]
    assert len(ia3) == len(final) + 1 and all(r["light"] for r in ia3)
    assert not json.loads((out / "compare" / ia3[-1]["dir"] / "eval.json").read_text())["generation"].get("n")
    # learning curves (checkpoint evaluations) for seed 0 only: demo.CURVE_SEEDS
    curves = {r["seed"] for r in manifest["runs"] if list((out / "compare" / r["dir"]).glob("checkpoints/*/eval.json"))}
    assert curves == {0}
    rows = saved["methods"]["rows"]
    assert set(rows) == set(demo.METHODS) and rows["ia3"]["seeds"] == [0, 1]
    # issue 27: the all-linear LoRA beside q,v (more adapter parameters, its own headline against
    # full) and full fine-tuning with an extended vocabulary (more characters per token)
    assert rows["lora-all"]["params_trainable"]["mean"] > rows["lora"]["params_trainable"]["mean"]
    assert saved["headline"]["methods"]["lora"]["targets"] == "qv"
    assert saved["headline_variants"]["lora-all"]["methods"]["lora"]["targets"] == "all-linear"
    assert rows["full-vocab"]["chars_per_token"]["mean"] > rows["full"]["chars_per_token"]["mean"]
    assert rows["full-vocab"]["chars_per_s"]["n"] == 2 and rows["full-vocab"]["ja_bits_per_char"]["n"] == 2
    report = (out / "report.md").read_text("utf-8")
    assert "LoRA (q,v, r=16)" in report and "LoRA (all-linear, r=16)" in report
    assert "These rows use different tokenizers (chars/token differs)" in report
    assert rows["ia3"]["params_trainable"]["mean"] < rows["lora"]["params_trainable"]["mean"]
    assert rows["ia3"]["ja_bits_per_char"]["n"] == 2 and rows["ia3"]["forgetting"]["n"] == 2
    assert saved["time_efficiency"]["conditions"] == {"runs_at_once": [demo.JOBS], "torch_threads": [1]}
    assert report_heading_order(out)[:4] == [
        "Executive summary",
        "The answer: LoRA vs full fine-tuning",
        "The base model",
        "Evaluation sets",
    ]
    assert results["primary"] == saved["primary"]
    # the downstream section: the shipped lm-eval task on base and on each seed of both methods
    ds = saved["downstream"]
    assert ds["status"] == "ok" and ds["tasks"]["ja_adapt_mc_translation"]["n"] == 12
    assert {r["model"] for r in ds["rows"]} >= {"base"} and len(ds["rows"]) == 5  # base + 2 + 2 seeds
    assert {(t["a"], t["b"]) for t in ds["tests"] if t["b"] == "base"} and len(ds["tests"]) == 6
    assert "### 3.3 Downstream tasks (lm-evaluation-harness)" in (out / "report.md").read_text(encoding="utf-8")
    printed, stray = capfd.readouterr()  # fd level: the parallel runs' processes too
    for text in (
        "kernels-community",
        "Failed to load",
        "is_gradient_checkpointing",
        "`pretrained` model kwarg",
        "already-initialized model",
    ):
        assert text not in stray, text  # no hub reach, no third-party noise
    from ja_adapt.report import executive_summary

    assert executive_summary(results) in printed
    assert printed.rstrip().splitlines()[-1].startswith(f"report: {out / 'report.md'}")

    # the corpus manifest: every source, with its status, in corpora.json and in the report
    manifest = json.loads((out / "corpora.json").read_text(encoding="utf-8"))
    names = [m["name"] for m in manifest["sources"]]
    used = demo.BASE_SOURCES + demo.JA_TRAIN_SOURCES + demo.JA_CROSS_SOURCES
    assert names == used
    for m in manifest["sources"]:
        expected = "used" if corpora.SOURCES[m["name"]].available() else "missing optional"
        assert m["status"] == expected
    report_md = (out / "report.md").read_text(encoding="utf-8")
    report_html = (out / "report.html").read_text(encoding="utf-8")
    for name in names:
        assert name in report_md and name in report_html
    # Japanese in at least two training domains; en and zh held out from the base corpus
    train_docs = [json.loads(line) for line in (out / "data/ja-train.jsonl").read_text().splitlines()]
    assert len({d["domain"] for d in train_docs}) >= 2 and {d["lang"] for d in train_docs} == {"ja"}
    base_docs = [
        json.loads(line)
        for line in (Path(json.loads((out / "demo.json").read_text())["base_model"]).parents[1] / "base.jsonl")
        .read_text()
        .splitlines()
    ]
    assert {d["lang"] for d in base_docs} == {"en", "zh", "ja"}
    for lang in ("en", "zh"):
        held = {json.loads(line)["text"] for line in (out / f"data/eval-{lang}.jsonl").read_text().splitlines()}
        assert held and not held & {d["text"] for d in base_docs}
    # the base model's Japanese comes from the adaptation train split only, never its test split
    from ja_adapt.data.pipeline import training_splits

    cfg = load_config(str(out / f"compare/runs/method-lora__optim.lr-{tuning['chosen']['lora']}__s0/config.yaml"))
    test_texts = {d.text for d in training_splits(cfg)[1]["test"]}
    assert test_texts and not test_texts & {d["text"] for d in base_docs if d["lang"] == "ja"}

    # the base model is cached: a second call (even in a new process: memo cleared) reuses it
    base_dir = Path(json.loads((out / "demo.json").read_text())["base_model"])
    assert base_dir.is_relative_to(fresh_cache / "demo")
    weights = base_dir / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    demo.base_model._cached_base.cache_clear()
    assert demo.ensure_base_model(quick=True) == base_dir
    assert weights.stat().st_mtime_ns == mtime
    assert (base_dir / "tokenizer.json").is_file()


def test_demo_yaml_is_the_demo_config():
    """configs/demo.yaml + the commands in its header are exactly what `ja-adapt demo` runs."""
    from ja_adapt.apps.cli.experiments import parse_arms, parse_grid, parse_tune
    from ja_adapt.config import parse_override, with_overrides

    path = REPO / "configs/demo.yaml"
    from_yaml = load_config(path)
    built = demo.demo_config(demo.FULL, Path("ja-adapt-demo/data"), "demo-base")
    assert to_dict(from_yaml) == to_dict(built)

    header = " ".join(
        line.lstrip("#").strip() for line in path.read_text().splitlines() if line.startswith("#")
    ).replace("\\ ", " ")
    compare = shlex.split(next(c for c in header.split("ja-adapt ")[1:] if c.startswith("compare")))
    tunes = [compare[i + 1] for i, w in enumerate(compare) if w == "--tune"]
    names = compare[compare.index("--methods") + 1].split(",")
    key, grids = parse_tune(tunes, names)
    assert names == demo.METHODS and key == demo.TUNE_KEY
    assert parse_arms([compare[i + 1] for i, w in enumerate(compare) if w == "--arm"]) == demo.FULL.arms
    assert compare[compare.index("--likelihood-only") + 1].split(",") == demo.LIKELIHOOD_ONLY
    assert int(compare[compare.index("--curve-seeds") + 1]) == demo.CURVE_SEEDS
    assert {m: [float(v) for v in g] for m, g in grids.items()} == {**demo.FULL.tune_grids, **demo.FULL.method_grids}
    assert int(compare[compare.index("--seeds") + 1]) == demo.FULL.seeds
    assert int(compare[compare.index("--jobs") + 1]) == demo.JOBS
    lr = 3.0e-3  # any chosen rate: the commands name it LR
    commands = [c.replace("=LR", f"={lr}") for c in header.split("ja-adapt ")[1:] if c.startswith("sweep")]
    plan = demo.sweep_plan(demo.FULL, built, {"lora": lr})
    assert len(commands) == len(plan)
    seen = {}
    for command in commands:
        words = shlex.split(command)
        grids = [words[i + 1] for i, w in enumerate(words) if w == "--grid"]
        overrides = dict(parse_override(w) for w in words if "=" in w and w not in grids)
        cfg = with_overrides(built, overrides)
        seen[tuple(parse_grid(grids))] = (
            parse_grid(grids),
            to_dict(cfg),
            "probe" if "--probe" in words else "likelihood" if "--likelihood-only" in words else "quality",
        )
    for grid, cfg, purpose in plan.values():
        assert seen[tuple(grid)] == (grid, to_dict(cfg), purpose)


def report_heading_order(out: Path) -> list[str]:
    return [line[3:] for line in (out / "report.md").read_text(encoding="utf-8").splitlines() if line.startswith("## ")]


def _replace_source(monkeypatch, name, **changes):
    monkeypatch.setitem(corpora.SOURCES, name, dataclasses.replace(corpora.SOURCES[name], **changes))


def test_missing_required_source_is_one_line_naming_the_package(monkeypatch):
    _replace_source(monkeypatch, "hironsan-news", module="ja_adapt_no_such_module")
    with pytest.raises(UserError) as e:
        demo.build_corpora(demo.QUICK)
    assert "pip install hironsancorpus" in str(e.value) and "\n" not in str(e.value)


def test_missing_optional_source_degrades_and_is_named(monkeypatch, tmp_path):
    _replace_source(monkeypatch, "debian-man-ja", path=str(tmp_path / "absent"))
    c = demo.build_corpora(demo.QUICK)
    entry = next(m for m in c.manifest if m["name"] == "debian-man-ja")
    assert entry["status"] == "missing optional" and entry["n_docs"] == 0
    assert not any(d.domain == "manual" and d.lang == "ja" for d in c.eval["ja"])
    assert {d.domain for d in c.ja_train} == {"docs", "news"}


def test_out_must_be_a_demo_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a directory"):
        demo.run_demo(tmp_path / "file", quick=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a demo output"):
        demo.run_demo(tmp_path / "other", quick=True)


def test_cli_registers_demo():
    from ja_adapt.apps.cli import build_parser
    from ja_adapt.apps.cli import demo as demo_cli

    args = build_parser("demo").parse_args(["demo", "--quick", "--out", "x"])
    assert args._module is demo_cli and args.quick and args.out == Path("x")
    assert build_parser("demo").parse_args(["demo"]).out == demo.DEFAULT_OUT
