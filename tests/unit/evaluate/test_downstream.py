"""Downstream tasks through lm-evaluation-harness: the shipped task, local data, missing data."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from ja_adapt.apps.cli import main
from ja_adapt.config import DownstreamConfig
from ja_adapt.core.errors import UserError
from ja_adapt.data.translation import TranslationPair, catalog_pairs, multiple_choice_items, split_of
from ja_adapt.evaluate.downstream import (
    MC_MAX_CHARS,
    SHIPPED,
    check_local_data,
    parse_data,
    resolve_tasks,
    run_downstream,
)
from ja_adapt.models.load import load_model

TASK = "ja_adapt_mc_translation"
LIMIT = 24
OFFLINE = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")  # any download attempt fails


def test_items_hold_the_answer_and_length_matched_distractors():
    pairs = [TranslationPair(f"s{i}", "あ" * (i + 1) + f"{i}", "x") for i in range(12)]
    items = multiple_choice_items(pairs)
    assert len(items) == 12
    for p, it in zip(pairs, items):
        assert it["choices"][it["label"]] == p.ja and len(set(it["choices"])) == 4
        # the distractors are as near in length as the three nearest other translations
        nearest = sorted(abs(len(q.ja) - len(p.ja)) for q in pairs if q is not p)[:3]
        assert sorted(abs(len(c) - len(p.ja)) for c in it["choices"] if c != p.ja) == nearest
    assert len({it["label"] for it in items}) > 1  # the answer's position varies
    assert multiple_choice_items(pairs[:3]) == []  # too few translations for four choices


def test_shipped_items_come_from_the_held_out_split_only():
    items = SHIPPED[TASK]()
    test_ja = {p.en: p.ja for p in catalog_pairs(max_chars=MC_MAX_CHARS) if split_of(p) == "test"}
    assert len(items) == len(test_ja) > 100
    for it in items:
        assert split_of(TranslationPair(it["en"], "", "")) == "test"
        assert it["choices"][it["label"]] == test_ja[it["en"]]


@pytest.fixture(scope="module")
def shipped_eval(saved_tiny_model, tmp_path_factory):
    """`ja-adapt eval` of the saved tiny model with the shipped task (limit LIMIT), through the CLI."""
    root, model_dir, corpus = saved_tiny_model
    out = tmp_path_factory.mktemp("ds") / "eval.json"
    small = out.parent / "small.jsonl"
    small.write_text("".join(corpus.read_text(encoding="utf-8").splitlines(keepends=True)[:3]), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        for k in OFFLINE:
            mp.setenv(k, "1")
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            assert (
                main(
                    [
                        "eval",
                        "--model",
                        str(model_dir),
                        "--data",
                        str(small),
                        "--out",
                        str(out),
                        "--gen-prompts",
                        "0",
                        "--device",
                        "cpu",
                        "--tasks",
                        TASK,
                        "--limit",
                        str(LIMIT),
                    ]
                )
                == 0
            )
    return json.loads(out.read_text(encoding="utf-8")), model_dir, printed.getvalue()


def test_shipped_task_matches_lm_eval_simple_evaluate(shipped_eval, monkeypatch):
    """eval.json's accuracy equals lm-eval's own run of the same task (its YAML as ja-adapt wrote it,
    found by lm-eval's include_path) on the same saved model, loaded by lm-eval itself."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    results, model_dir, printed = shipped_eval
    for k in OFFLINE:
        monkeypatch.setenv(k, "1")
    task = results["downstream"]["tasks"][TASK]
    folder = __import__("pathlib").Path(task["data_files"]["test"]["path"]).parent
    ref = lm_eval.simple_evaluate(
        model="hf",
        model_args={"pretrained": str(model_dir), "dtype": "float32"},
        tasks=[TASK],
        task_manager=TaskManager(include_path=str(folder), include_defaults=False),
        limit=LIMIT,
        device="cpu",
        batch_size=8,
        bootstrap_iters=0,
        log_samples=True,
    )
    assert task["metrics"]["acc"] == pytest.approx(ref["results"][TASK]["acc,none"], abs=1e-12)
    assert task["metrics"]["acc_norm"] == pytest.approx(ref["results"][TASK]["acc_norm,none"], abs=1e-12)
    ours = [s["acc"] for s in task["samples"]]
    theirs = [s["acc"] for s in sorted(ref["samples"][TASK], key=lambda s: s["doc_id"])]
    assert ours == theirs and task["n"] == LIMIT and sum(ours) / LIMIT == task["metrics"]["acc"]
    ds = results["downstream"]
    assert ds["lm_eval_version"] == lm_eval.__version__ and task["version"] == 1.0
    assert len(task["config_sha256"]) == 64 and task["num_fewshot"] == 0
    assert f"lm-eval {TASK} (v1.0, 0-shot, {LIMIT} items): acc {task['metrics']['acc']:.4f}" in printed


def test_missing_dataset_exits_2_and_runs_nothing(tmp_path, capsys, monkeypatch):
    import ja_adapt.apps.cli.evaluate as cli_eval

    monkeypatch.setattr(cli_eval, "_load_model", lambda *a: pytest.fail("a model was loaded"))
    out = tmp_path / "eval.json"
    assert (
        main(["eval", "--model", "m", "--data", "x.jsonl", "--out", str(out), "--tasks", f"{TASK},ja_leaderboard_jnli"])
        == 2
    )
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "ja_leaderboard_jnli has no local data" in line and "--task-data" in line
    assert not out.exists()


@pytest.mark.parametrize(
    "entry,msg",
    [
        ("ja_leaderboard_jnli", "TASK=DIR"),
        ("ja_leaderboard_jnli=/no/such/dir", "not a directory"),
        ("ja_leaderboard_jnli=validation:/no/such.json", "file not found"),
    ],
)
def test_bad_task_data_names_the_key(entry, msg):
    with pytest.raises(UserError, match=f"eval.downstream.data.*{msg}"):
        parse_data([entry])


def test_task_data_for_a_task_not_run_is_refused(tmp_path):
    with pytest.raises(UserError, match="not in eval.downstream.tasks"):
        check_local_data(DownstreamConfig(tasks=[TASK], data=[f"other={tmp_path}"]))


@pytest.mark.parametrize("key,value", [("num_fewshot", -1), ("limit", 0), ("batch_size", 0)])
def test_bad_settings_name_the_key(key, value):
    with pytest.raises(UserError, match=f"eval.downstream.{key}"):
        DownstreamConfig(**{key: value}).check()


JCQA = {
    "q_id": 0,
    "question": "電車に乗るときに必要なものは？",
    "choice0": "切符",
    "choice1": "傘",
    "choice2": "鉛筆",
    "choice3": "帽子",
    "choice4": "時計",
    "label": 0,
}


def test_jglue_files_in_a_directory_run_the_leaderboard_task(tmp_path, tiny_tokenizer, monkeypatch):
    """JGLUE's released JCommonsenseQA layout (train-v1.1.json, valid-v1.1.json: JSON lines) read by
    lm-eval's own ja_leaderboard_jcommonsenseqa task, with its 3-shot examples from train."""
    for name in ("train-v1.1.json", "valid-v1.1.json"):
        (tmp_path / name).write_text(
            "".join(json.dumps({**JCQA, "q_id": i, "label": i % 5}, ensure_ascii=False) + "\n" for i in range(5)),
            encoding="utf-8",
        )
    task = "ja_leaderboard_jcommonsenseqa"
    cfgs = resolve_tasks(DownstreamConfig(tasks=[task], data=[f"{task}={tmp_path}"]), tmp_path)
    c = cfgs[task]
    assert c["dataset_path"] == "json" and c["num_fewshot"] == 3 and callable(c["process_docs"])
    assert sorted(c["dataset_kwargs"]["data_files"]) == ["train", "validation"]
    for k in OFFLINE:
        monkeypatch.setenv(k, "1")
    model = load_model("tiny", vocab_size=len(tiny_tokenizer), seed=0).eval()
    ds = run_downstream(model, tiny_tokenizer, DownstreamConfig(tasks=[task], limit=2), cfgs)["tasks"][task]
    assert ds["n"] == 2 and ds["num_fewshot"] == 3 and ds["n_available"] == 5
    assert [s["target"] for s in ds["samples"]] == [0, 1] and ds["metrics"]["acc"] in (0, 0.5, 1)
    with pytest.raises(UserError, match="no train split"):
        resolve_tasks(
            DownstreamConfig(tasks=[task], data=[f"{task}=validation:{tmp_path / 'valid-v1.1.json'}"]), tmp_path
        )


# ---- statistics ---------------------------------------------------------------------------------


def _exact_mcnemar_p(a_only: int, b_only: int) -> float:
    """Two-sided exact binomial p on the discordant items, from the binomial sum itself."""
    from math import comb

    n, k = a_only + b_only, min(a_only, b_only)
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n)


def test_mcnemar_exact_against_the_binomial_sum():
    from ja_adapt.evaluate.downstream_stats import mcnemar_exact

    a = np.array([1] * 12 + [0] * 2 + [1] * 30 + [0] * 6)
    b = np.array([0] * 12 + [1] * 2 + [1] * 30 + [0] * 6)
    t = mcnemar_exact(a, b)
    assert (t["a_only"], t["b_only"], t["n_discordant"]) == (12, 2, 14)
    assert t["p"] == pytest.approx(_exact_mcnemar_p(12, 2), rel=1e-12) and t["p"] < 0.05
    few = mcnemar_exact([1, 1, 1, 0], [0, 0, 1, 0])  # 2 discordant items: p >= 2/4 always
    assert few["underpowered"] and "p" not in few


def _sample_set(outcomes, sha="x"):
    return {
        "version": 1.0,
        "num_fewshot": 0,
        "config_sha256": sha,
        "metrics": {},
        "samples": [{"doc_id": i, "target": 0, "acc": float(o), "acc_norm": float(o)} for i, o in enumerate(outcomes)],
    }


def test_downstream_compare_intervals_and_holm_over_tasks():
    from ja_adapt.config import EvalConfig
    from ja_adapt.evaluate.downstream_stats import downstream_compare

    rng = np.random.default_rng(3)
    a1, b1 = rng.integers(0, 2, 80), rng.integers(0, 2, 80)
    a2, b2 = np.ones(60, int), np.r_[np.zeros(20, int), np.ones(40, int)]
    ra = {"downstream": {"lm_eval_version": "v", "tasks": {"t1": _sample_set(a1), "t2": _sample_set(a2)}}}
    rb = {"downstream": {"lm_eval_version": "v", "tasks": {"t1": _sample_set(b1), "t2": _sample_set(b2)}}}
    cfg = EvalConfig(bootstrap_resamples=500, seed=7)
    d = downstream_compare(ra, rb, cfg)
    m = d["tasks"]["t1"]["metrics"]["acc"]
    assert m["a"]["accuracy"] == a1.mean() and m["diff"] == pytest.approx(a1.mean() - b1.mean())
    reps = a1[np.random.default_rng(7).integers(0, 80, size=(500, 80))].mean(axis=1)
    assert (m["a"]["ci_low"], m["a"]["ci_high"]) == pytest.approx(tuple(np.percentile(reps, [2.5, 97.5])))
    p = [d["tasks"][t]["metrics"]["acc"]["mcnemar"].get("p") for t in ("t1", "t2")]
    fam = d["family"]
    assert fam["tests"] == sum(x is not None for x in p) and d["tasks"]["t2"]["metrics"]["acc"]["mcnemar"]["p"] < 1e-5
    if fam["tests"] == 2:
        lo, hi = sorted(p)
        assert sorted(fam["p_holm"].values()) == pytest.approx([min(1, 2 * lo), max(min(1, 2 * lo), hi)])
    rb["downstream"]["tasks"]["t1"]["config_sha256"] = "other"
    assert "skipped" in downstream_compare(ra, rb, cfg)["tasks"]["t1"]
    assert downstream_compare(ra, {}, cfg) is None


def test_jnli_word_labels_are_refused_with_the_fix(tmp_path, tiny_tokenizer, monkeypatch):
    """JGLUE's released JNLI files label with English words; lm-eval's task wants choice indices and
    would silently score every item wrong: refused, naming the file and the conversion."""
    task = "ja_leaderboard_jnli"
    valid = tmp_path / "valid-v1.1.json"
    valid.write_text(
        json.dumps(
            {"sentence_pair_id": "0", "sentence1": "犬が走る。", "sentence2": "犬が動く。", "label": "entailment"},
            ensure_ascii=False,
        )
        + "\n",
        encoding="utf-8",
    )
    cfg = DownstreamConfig(tasks=[task], data=[f"{task}={tmp_path}"], num_fewshot=0)
    cfgs = resolve_tasks(cfg, tmp_path)
    for k in OFFLINE:
        monkeypatch.setenv(k, "1")
    model = load_model("tiny", vocab_size=len(tiny_tokenizer), seed=0).eval()
    with pytest.raises(UserError, match="valid-v1.1.json: item 0 of ja_leaderboard_jnli.*'entailment'.*choice indices"):
        run_downstream(model, tiny_tokenizer, cfg, cfgs)


def test_report_section_reads_stats_json_rows_and_tests():
    """The report's downstream rows and tests are the stats.json records of the compared models."""
    from types import SimpleNamespace as NS

    from ja_adapt.config import EvalConfig
    from ja_adapt.evaluate.downstream_stats import downstream_compare
    from ja_adapt.report.sections.downstream import blocks as downstream_blocks
    from ja_adapt.report.sections.downstream import downstream_section

    outcomes = {
        "lora-s0": [1] * 30 + [0] * 10,
        "full-s0": [1] * 20 + [0] * 20,
        "base": [0] * 30 + [1] * 10,
        "sweep-r4": [1] * 40,
    }
    evals = {
        k: {"downstream": {"lm_eval_version": "0.4.13", "tasks": {TASK: _sample_set(v)}}} for k, v in outcomes.items()
    }
    cfg = EvalConfig(bootstrap_resamples=200)

    def entry(a, b):
        return {"a": a, "b": b, "seed": 0, "stats": {"downstream": downstream_compare(evals[a], evals[b], cfg)}}

    stats = {
        "pairs": [entry("lora-s0", "full-s0"), entry("sweep-r4", "lora-s0")],
        "vs_base": [entry("lora-s0", "base"), entry("full-s0", "base"), entry("sweep-r4", "base")],
    }
    lora = NS(label="lora r16", runs=[NS(name="lora-s0")])
    full = NS(label="full", runs=[NS(name="full-s0")])
    sec = downstream_section([NS(stats=stats)], lora, full)
    assert sec["status"] == "ok" and sec["lm_eval_versions"] == ["0.4.13"]
    assert [(r["model"], r["acc"]["accuracy"]) for r in sec["rows"]] == [
        ("base", 0.25),
        ("full-s0", 0.5),
        ("lora-s0", 0.75),
    ]
    assert [(t["a"], t["b"]) for t in sec["tests"]] == [
        ("lora-s0", "full-s0"),
        ("lora-s0", "base"),
        ("full-s0", "base"),
    ]
    lf = sec["tests"][0]
    assert (lf["a_only"], lf["b_only"]) == (10, 0) and lf["p"] == pytest.approx(_exact_mcnemar_p(10, 0))
    assert lf["p_holm"] == lf["p"]  # one task: a family of one
    text = "\n".join(str(b) for b in downstream_blocks({"downstream": sec}, {}))
    assert "0.75 [" in text and TASK in text and "lm-evaluation-harness 0.4.13" in text
    assert downstream_section([NS(stats={"pairs": [], "vs_base": []})], lora, full) == {"status": "not run"}
