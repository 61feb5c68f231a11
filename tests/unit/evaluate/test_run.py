"""evaluate_model / compare_models / the eval CLI on a tiny random model and tokenizer."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections import Counter

import numpy as np
import pytest
import torch

from ja_adapt.apps.cli.evaluate import add_arguments, run, summary_table
from ja_adapt.config import EvalConfig
from ja_adapt.core.errors import UserError
from ja_adapt.data.documents import Document
from ja_adapt.evaluate.buckets import classify, sentences
from ja_adapt.evaluate.compare import compare_models
from ja_adapt.evaluate.forgetting import learning_forgetting_points, retention
from ja_adapt.evaluate.run import evaluate_model, write_eval
from ja_adapt.evaluate.scripts import SCRIPTS
from ja_adapt.models.load import load_model

CFG = EvalConfig(max_length=32, stride=16, gen_prompts=3, gen_prefix_chars=8, gen_ref_chars=8, bootstrap_resamples=100)
COMPLEX = "東京都千代田区の国会議事堂で、内閣総理大臣が、施政方針演説を行い経済政策を説明した。"


@pytest.fixture(scope="module")
def docs():
    from tiny_text import SENTENCES

    ja = [
        Document(s + COMPLEX if i % 2 else s, "ja", "news" if i < 4 else "conversation", f"d{i}")
        for i, s in enumerate(SENTENCES)
        if i != 6
    ]
    return ja + [Document(SENTENCES[6], "en", "docs"), Document("我们是中国人。今天天气很好。", "zh", "news")]


@pytest.fixture(scope="module")
def evals(tiny_tokenizer, docs):
    base_model = load_model("tiny", vocab_size=len(tiny_tokenizer), seed=1)
    model = load_model("tiny", vocab_size=len(tiny_tokenizer), seed=0)
    base = evaluate_model(base_model, tiny_tokenizer, docs, CFG, trained=["ja/news"])
    adapted = evaluate_model(model, tiny_tokenizer, {"x": docs}, CFG, trained=[("ja", "news")], base_results=base)
    return base, adapted


def test_all_six_sections_with_definitions(evals):
    _, r = evals
    for section in ("likelihood", "scripts", "generation", "domains", "forgetting", "buckets"):
        assert r[section]["definition"].startswith("docs/metrics.md#"), section
    assert set(r["likelihood"]["by_group"]) == {"en/docs", "ja/conversation", "ja/news", "zh/news"}
    assert "tokenizer" in r["likelihood"]["note"]
    assert r["generation"]["n"] == 3 and len(r["generation"]["samples"]) == 3


def test_sections_agree_with_each_other(evals):
    _, r = evals
    ja = r["likelihood"]["by_lang"]["ja"]
    groups = [v for k, v in r["likelihood"]["by_group"].items() if k.startswith("ja/")]
    assert ja["nll_sum_nats"] == pytest.approx(sum(g["nll_sum_nats"] for g in groups))
    assert ja["bits_per_char"] == pytest.approx(ja["nll_sum_nats"] / math.log(2) / ja["chars"])
    overall = r["scripts"]["overall"]["overall"]  # per-script bits add up to the corpus bits
    assert overall["chars"] == ja["chars"]
    assert overall["bits"] == pytest.approx(ja["nll_sum_nats"] / math.log(2))
    assert r["domains"]["held_out"]["documents"] == 4 and r["domains"]["cross_domain"]["documents"] == 3
    assert r["domains"]["by_domain"]["news"]["trained"] and not r["domains"]["by_domain"]["conversation"]["trained"]
    news = r["likelihood"]["by_group"]["ja/news"]
    assert r["domains"]["held_out"]["bits_per_char"] == pytest.approx(news["bits_per_char"])
    b = r["buckets"]["overall"]
    assert b["complex"]["sentences"] >= 3 and b["simple"]["sentences"] >= 4


def _numpy_ratio_ci(num, den, resamples, seed):
    """The percentile interval of sum(num) / sum(den) over documents resampled with plain numpy."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(num), size=(resamples, len(num)))
    with np.errstate(invalid="ignore"):  # 0/0: a resample without any character of a script
        reps = num[idx].sum(1) / den[idx].sum(1)
    reps = reps[np.isfinite(reps)]
    return np.percentile(reps, [2.5, 97.5])


def test_intervals_are_document_bootstraps_of_the_corpus_figure(evals):
    _, r = evals
    lik = r["likelihood"]
    ja_docs = [d for k in sorted(lik["by_group"]) if k.startswith("ja/") for d in lik["by_group"][k]["per_doc"]]
    ci = lik["by_lang"]["ja"]["bits_per_char_ci"]
    lo, hi = _numpy_ratio_ci([d["nll"] / math.log(2) for d in ja_docs], [d["chars"] for d in ja_docs], 100, 0)
    assert (ci["ci_low"], ci["ci_high"]) == pytest.approx((lo, hi))
    assert ci["ci_low"] <= lik["by_lang"]["ja"]["bits_per_char"] <= ci["ci_high"] and ci["resamples"] == 100
    assert ci["ci_high"] > ci["ci_low"]
    news = lik["by_group"]["ja/news"]["per_doc"]
    held = r["domains"]["held_out"]["bits_per_char_ci"]
    assert (held["ci_low"], held["ci_high"]) == pytest.approx(
        _numpy_ratio_ci([d["nll"] / math.log(2) for d in news], [d["chars"] for d in news], 100, 0)
    )
    # per-script: per-document sums kept in eval.json, resampled together
    docs = [t for k in sorted(r["scripts"]["by_group"]) for t in r["scripts"]["by_group"][k]["per_doc"]]
    assert len(docs) == lik["by_lang"]["ja"]["documents"]
    for s in (*SCRIPTS, "overall"):
        col = (
            (lambda key: [sum(t[x][key] for x in SCRIPTS) for t in docs])
            if s == "overall"
            else (lambda key, s=s: [t[s][key] for t in docs])
        )
        got = r["scripts"]["overall"][s]
        assert got["chars"] == sum(col("chars"))
        assert (got["bits_per_char_ci"]["ci_low"], got["bits_per_char_ci"]["ci_high"]) == pytest.approx(
            _numpy_ratio_ci(col("bits"), col("chars"), 100, 0)
        )
        assert (got["char_accuracy_ci"]["ci_low"], got["char_accuracy_ci"]["ci_high"]) == pytest.approx(
            _numpy_ratio_ci(col("correct"), col("judged"), 100, 0)
        )


def test_top1_diagnostics_for_every_language(tiny_tokenizer):
    """Top-1 accuracy and the most frequent argmax token against a plain transformers forward pass
    per document (one window each). Documents include the model's own greedy continuations, so some
    argmax predictions are right (seed 1: a tiny model whose greedy continuations include hiragana,
    so the script count below is not vacuous)."""
    model = load_model("tiny", vocab_size=len(tiny_tokenizer), seed=1).eval()
    eos = tiny_tokenizer.eos_token_id
    docs = []
    for i, (lang, text) in enumerate(
        [
            ("ja", "今日は良い天気です"),
            ("ja", "この本はとても面白"),
            ("en", "The weath"),
            ("en", "The weather is nice"),
            ("zh", "我们是中国人"),
        ]
    ):
        ids = [eos] + tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            x = torch.tensor([ids])
            out = model.generate(
                input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=10, do_sample=False, pad_token_id=eos
            )
        docs.append(Document(tiny_tokenizer.decode(out[0, 1:].tolist()), lang, "web", f"d{i}"))
    cfg = EvalConfig(max_length=256, stride=128, gen_prompts=0, bootstrap_resamples=50)
    r = evaluate_model(model, tiny_tokenizer, docs, cfg)
    for lang in ("ja", "en", "zh"):
        correct, total, counts = 0, 0, Counter()
        for d in docs:
            if d.lang != lang:
                continue
            ids = tiny_tokenizer(d.text, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                am = model(input_ids=torch.tensor([[eos] + ids])).logits[0, :-1].argmax(-1).tolist()
            correct += sum(a == b for a, b in zip(am, ids))
            total += len(ids)
            counts.update(am)
        got = r["likelihood"]["by_lang"][lang]
        assert (got["top1_correct"], got["tokens"], got["argmax_positions"]) == (correct, total, total)
        assert got["top1_accuracy"] == pytest.approx(correct / total)
        top = max(counts.values())
        tid = min(t for t, c in counts.items() if c == top)
        assert (got["argmax_top_token_id"], got["argmax_top_count"]) == (tid, top)
        assert got["argmax_top_share"] == pytest.approx(top / total)
        assert got["argmax_top_token"] == tiny_tokenizer.decode([tid])
        assert got["top1_accuracy_ci"]["ci_low"] <= got["top1_accuracy"] <= got["top1_accuracy_ci"]["ci_high"]
    assert min(r["likelihood"]["by_lang"][lang]["top1_accuracy"] for lang in ("ja", "en")) > 0
    assert r["scripts"]["overall"]["hiragana"]["correct_chars"] > 0


def test_forgetting_retention_direction(evals):
    base, r = evals
    en = r["forgetting"]["by_lang"]["en"]
    assert en["retention"] == pytest.approx(
        base["likelihood"]["by_lang"]["en"]["bits_per_byte"] / r["likelihood"]["by_lang"]["en"]["bits_per_byte"]
    )
    assert retention(1.0, 1.25) == pytest.approx(0.8)
    pts = learning_forgetting_points([(20, r), (10, base)], base)
    assert [p["step"] for p in pts] == [10, 20]
    assert pts[0]["ja_gain"] == 0 and pts[0]["en_loss"] == 0 and pts[0]["zh_retention"] == 1
    assert pts[1]["en_loss"] == pytest.approx(en["bpb_increase"])


def test_trained_needs_both_language_and_domain(evals, tiny_tokenizer, docs):
    _, r = evals
    groups = r["likelihood"]["by_group"]
    # zh/news shares its domain with the trained ja/news but its language was never trained
    assert groups["ja/news"]["trained"] and not groups["zh/news"]["trained"]
    assert not groups["en/docs"]["trained"] and not groups["ja/conversation"]["trained"]
    assert r["domains"]["trained_domains"] == ["news"] and r["domains"]["trained_pairs"] == [["ja", "news"]]
    model = load_model("tiny", vocab_size=len(tiny_tokenizer))
    light = dataclasses.replace(CFG.likelihood_only(), bootstrap_resamples=20)
    other = evaluate_model(model, tiny_tokenizer, docs, light, trained=[("en", "docs")])
    assert other["likelihood"]["by_group"]["en/docs"]["trained"]
    assert other["domains"]["held_out"] is None  # no Japanese group was trained
    with pytest.raises(UserError, match="lang/domain"):
        evaluate_model(model, tiny_tokenizer, docs, light, trained=["news"])


def test_compare_models_and_output(evals, tmp_path):
    base, r = evals
    c = compare_models(r, base, CFG)
    assert c["same_tokenizer"] and c["level"] == "document"
    bpc = c["bits_per_char"]
    assert bpc["ja"]["n"] == 7 and bpc["ja"] == bpc["by_lang"]["ja"]
    assert bpc["held_out"]["groups"] == ["ja/news"] and bpc["cross_domain"]["groups"] == ["ja/conversation"]
    assert set(c["families"]) == {"japanese_quality", "forgetting", "per_domain"}
    assert "bleu" in c["generation"] and c["buckets"]["overall"]["complex"] is not None
    self_cmp = compare_models(r, r, CFG)
    assert self_cmp["bits_per_char"]["ja"]["mean_diff"] == 0
    assert self_cmp["bits_per_char"]["ja"]["char_weighted"]["diff"] == 0
    path = write_eval(tmp_path / "e" / "eval.json", r)
    assert json.loads(path.read_text(encoding="utf-8"))["schema"] == r["schema"]
    assert "ja (all)" in summary_table(r) and "retention" in summary_table(r)
    other = json.loads(json.dumps(base))
    other["likelihood"]["by_group"]["ja/news"]["per_doc"][0]["chars"] += 1
    with pytest.raises(UserError, match="ja/news"):
        compare_models(r, other, CFG)


def test_light_config_skips_generation(tiny_tokenizer, docs):
    model = load_model("tiny", vocab_size=len(tiny_tokenizer))
    r = evaluate_model(model, tiny_tokenizer, docs[:2], CFG.likelihood_only())
    assert r["generation"]["n"] == 0 and r["forgetting"]["note"]


def test_bucket_rule():
    assert classify(COMPLEX) == "complex" and classify("今日は晴れ。") == "simple"
    text = "今日は晴れ。明日は雨！\nそうですか"
    assert [text[s:e] for s, e in sentences(text)] == ["今日は晴れ。", "明日は雨！", "そうですか"]


def _eval(argv: list[str]) -> int:
    """`ja-adapt eval ARGV` through this module's parser (the CLI's UserError → exit 2 is cli.py's)."""
    parser = argparse.ArgumentParser(prog="ja-adapt eval")
    add_arguments(parser)
    return run(parser.parse_args(argv))


@pytest.mark.parametrize(
    "key,value",
    [
        ("stride", 32),
        ("stride", 0),
        ("batch_size", 0),
        ("gen_prompts", -1),
        ("gen_batch_size", 0),
        ("bootstrap_resamples", 0),
    ],
)
def test_bad_config_names_the_key(key, value):
    with pytest.raises(UserError, match=f"eval.{key}"):
        dataclasses.replace(CFG, **{key: value}).check()


def test_bad_bucket_rule_names_the_key():
    from ja_adapt.config import BucketConfig

    with pytest.raises(UserError, match="eval.buckets.kanji_ratio"):
        dataclasses.replace(CFG, buckets=BucketConfig(kanji_ratio=0.0)).check()


def test_cli_eval_model_writes_and_refuses_overwrite(tiny_tokenizer, tmp_path, capsys):
    tok_dir = tmp_path / "tok"
    tiny_tokenizer.save_pretrained(tok_dir)
    corpus = tmp_path / "news.jsonl"
    corpus.write_text(
        "\n".join(
            json.dumps({"text": t, "lang": "ja"}, ensure_ascii=False)
            for t in ["今日は良い天気ですね。散歩に行きましょう。", "犬が走る。"]
        ),
        encoding="utf-8",
    )
    out = tmp_path / "eval.json"
    argv = [
        "--model",
        "tiny",
        "--tokenizer",
        str(tok_dir),
        "--data",
        str(corpus),
        "--out",
        str(out),
        "--max-length",
        "16",
        "--stride",
        "8",
        "--gen-prompts",
        "0",
        "--trained-domain",
        "news",
        "--device",
        "cpu",
    ]
    assert _eval(argv) == 0
    r = json.loads(out.read_text(encoding="utf-8"))
    assert r["domains"]["by_domain"]["news"]["trained"] and r["likelihood"]["by_lang"]["ja"]["documents"] == 2
    with pytest.raises(UserError, match="--force"):
        _eval(argv)
    assert _eval(argv + ["--force"]) == 0
    assert "ja (all)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,msg",
    [
        ([], "RUN_DIR or --model"),
        (["--model", "tiny"], "--data"),
        (["--model", "tiny", "--data", "x.jsonl"], "--tokenizer"),
        (["--adapter", "a"], "RUN_DIR or --model"),
        (["run", "--model", "tiny"], "not both"),
        (["--model", "tiny", "--data", "x", "--base-eval", "missing.json"], "missing.json"),
    ],
)
def test_cli_user_errors(argv, msg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=msg):
        _eval(argv)
