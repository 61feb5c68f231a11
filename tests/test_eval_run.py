"""evaluate_model / compare_models / the eval CLI on a tiny random model and tokenizer."""

from __future__ import annotations

import json
import math

import pytest

import argparse

from ja_adapt.data.documents import Document
from ja_adapt.errors import UserError
from ja_adapt.evaluate.buckets import classify, sentences
from ja_adapt.evaluate.forgetting import learning_forgetting_points, retention
from ja_adapt.cli.evaluate import add_arguments, run, summary_table
from ja_adapt.config import EvalConfig
from ja_adapt.evaluate.run import compare_models, evaluate_model, write_eval
from ja_adapt.models import load_model

CFG = EvalConfig(max_length=32, stride=16, gen_prompts=3, gen_prefix_chars=8, gen_ref_chars=8,
                 gen_max_new_tokens=6, bootstrap_resamples=100)
COMPLEX = "東京都千代田区の国会議事堂で、内閣総理大臣が、施政方針演説を行い経済政策を説明した。"


@pytest.fixture(scope="module")
def docs():
    from conftest import _SENTENCES
    ja = [Document(s + COMPLEX if i % 2 else s, "ja", "news" if i < 4 else "conversation", f"d{i}")
          for i, s in enumerate(_SENTENCES) if i != 6]
    return ja + [Document(_SENTENCES[6], "en", "docs"), Document("我们是中国人。今天天气很好。", "zh", "news")]


@pytest.fixture(scope="module")
def evals(tiny_tokenizer, docs):
    base_model = load_model("tiny", vocab_size=len(tiny_tokenizer), seed=1)
    model = load_model("tiny", vocab_size=len(tiny_tokenizer), seed=0)
    base = evaluate_model(base_model, tiny_tokenizer, docs, CFG, trained_domains=["news"])
    adapted = evaluate_model(model, tiny_tokenizer, {"x": docs}, CFG, trained_domains=["news"],
                             base_results=base)
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
    overall = r["scripts"]["overall"]["overall"]        # per-script bits add up to the corpus bits
    assert overall["chars"] == ja["chars"]
    assert overall["bits"] == pytest.approx(ja["nll_sum_nats"] / math.log(2))
    assert r["domains"]["held_out"]["documents"] == 4 and r["domains"]["cross_domain"]["documents"] == 3
    assert r["domains"]["by_domain"]["news"]["trained"] and not r["domains"]["by_domain"]["conversation"]["trained"]
    b = r["buckets"]["overall"]
    assert b["complex"]["sentences"] >= 3 and b["simple"]["sentences"] >= 4


def test_forgetting_retention_direction(evals):
    base, r = evals
    en = r["forgetting"]["by_lang"]["en"]
    assert en["retention"] == pytest.approx(base["likelihood"]["by_lang"]["en"]["bits_per_byte"]
                                            / r["likelihood"]["by_lang"]["en"]["bits_per_byte"])
    assert retention(1.0, 1.25) == pytest.approx(0.8)
    pts = learning_forgetting_points([(20, r), (10, base)], base)
    assert [p["step"] for p in pts] == [10, 20]
    assert pts[0]["ja_gain"] == 0 and pts[0]["en_loss"] == 0 and pts[0]["zh_retention"] == 1
    assert pts[1]["en_loss"] == pytest.approx(en["bpb_increase"])


def test_compare_models_and_output(evals, tmp_path):
    base, r = evals
    c = compare_models(r, base, CFG)
    assert c["same_tokenizer"]
    assert c["bits_per_char"]["ja"]["n"] == 7
    assert set(c["holm"]["p_holm"]) == set(c["holm"]["p"]) and c["holm"]["tests"] >= 3
    assert "bleu" in c["generation"] and c["buckets"]["overall"]["complex"] is not None
    self_cmp = compare_models(r, r, CFG)
    assert self_cmp["bits_per_char"]["ja"]["mean_diff"] == 0
    path = write_eval(tmp_path / "e" / "eval.json", r)
    assert json.loads(path.read_text(encoding="utf-8"))["schema"] == r["schema"]
    assert "ja (all)" in summary_table(r) and "retention" in summary_table(r)
    other = json.loads(json.dumps(base))
    other["likelihood"]["by_group"]["ja/news"]["per_doc"][0]["chars"] += 1
    with pytest.raises(UserError, match="ja/news"):
        compare_models(r, other, CFG)


def test_light_config_skips_generation(tiny_tokenizer, docs):
    model = load_model("tiny", vocab_size=len(tiny_tokenizer))
    r = evaluate_model(model, tiny_tokenizer, docs[:2], CFG.light())
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


@pytest.mark.parametrize("key,value", [("stride", 32), ("stride", 0), ("batch_size", 0),
                                       ("gen_prompts", -1)])
def test_bad_config_names_the_key(key, value):
    import dataclasses
    with pytest.raises(UserError, match=f"eval.{key}"):
        dataclasses.replace(CFG, **{key: value}).check()


def test_bad_bucket_rule_names_the_key():
    import dataclasses

    from ja_adapt.config import BucketConfig
    with pytest.raises(UserError, match="eval.buckets.kanji_ratio"):
        dataclasses.replace(CFG, buckets=BucketConfig(kanji_ratio=0.0)).check()


def test_cli_eval_model_writes_and_refuses_overwrite(tiny_tokenizer, tmp_path, capsys):
    tok_dir = tmp_path / "tok"
    tiny_tokenizer.save_pretrained(tok_dir)
    corpus = tmp_path / "news.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": t, "lang": "ja"}, ensure_ascii=False)
                                for t in ["今日は良い天気ですね。散歩に行きましょう。", "犬が走る。"]),
                      encoding="utf-8")
    out = tmp_path / "eval.json"
    argv = ["--model", "tiny", "--tokenizer", str(tok_dir), "--data", str(corpus),
            "--out", str(out), "--max-length", "16", "--stride", "8", "--gen-prompts", "0",
            "--trained-domain", "news", "--device", "cpu"]
    assert _eval(argv) == 0
    r = json.loads(out.read_text(encoding="utf-8"))
    assert r["domains"]["by_domain"]["news"]["trained"] and r["likelihood"]["by_lang"]["ja"]["documents"] == 2
    with pytest.raises(UserError, match="--force"):
        _eval(argv)
    assert _eval(argv + ["--force"]) == 0
    assert "ja (all)" in capsys.readouterr().out


@pytest.mark.parametrize("argv,msg", [
    ([], "RUN_DIR or --model"),
    (["--model", "tiny"], "--data"),
    (["--model", "tiny", "--data", "x.jsonl"], "--tokenizer"),
    (["--adapter", "a"], "RUN_DIR or --model"),
    (["run", "--model", "tiny"], "not both"),
    (["--model", "tiny", "--data", "x", "--base-eval", "missing.json"], "missing.json"),
])
def test_cli_user_errors(argv, msg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=msg):
        _eval(argv)
