"""Supervised evaluation: examples, stop tokens, batching and seeds, teacher-forced response NLL
against transformers' labels, scores, eval.json section and the paired comparison."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ja_adapt.config import EvalConfig
from ja_adapt.data.documents import Document
from ja_adapt.data.tokenizer import train_tokenizer
from ja_adapt.evaluate.compare import supervised_compare
from ja_adapt.evaluate.run import evaluate_model
from ja_adapt.evaluate.supervised import (
    Example,
    evaluate_supervised,
    examples_of,
    generate_responses,
    response_nll,
    stop_ids,
)
from ja_adapt.models.load import load_model

PAIRS = [
    ("Translate into Japanese:\nOpen\n", "開く"),
    ("Translate into Japanese:\nSave\n", "保存する"),
    ("Translate into Japanese:\nQuit\n", "終了"),
    ("Translate into Japanese:\nHelp\n", "ヘルプ"),
    ("Translate into Japanese:\nFile\n", "ファイル"),
]
CHAT = (
    ("system", "丁寧に"),
    ("user", "こんにちは"),
    ("assistant", "こんにちは！"),
    ("user", "元気？"),
    ("assistant", "元気です。"),
)


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer([p + c for p, c in PAIRS] + [c for _, c in CHAT] * 3, 400)


@pytest.fixture(scope="module")
def model(tok):
    return load_model("micro", vocab_size=len(tok), seed=0).float().eval()


@pytest.fixture
def docs():
    out = [
        Document(p + c, domain="ui", segments=((p, False), (c, True)), source=f"t:{i}")
        for i, (p, c) in enumerate(PAIRS)
    ]
    return out + [Document("\n".join(c for _, c in CHAT), domain="chat", messages=CHAT, source="c:1")]


def _cfg(**kw):
    return dataclasses.replace(EvalConfig(), gen_prompts=0, bootstrap_resamples=50, sft_max_new_tokens=6, **kw)


def test_examples_are_prompt_and_reference(docs, tok):
    ex = examples_of(docs + [Document("地の文")], tok)
    assert len(ex) == 6 and ex[0] == Example(PAIRS[0][0], "開く", "ui", "t:0", "<|endoftext|>")
    assert ex[-1].stop == "<|im_end|>"
    assert ex[-1].reference == "元気です。" and ex[-1].prompt.endswith(
        "<|im_start|>user\n元気？<|im_end|>\n<|im_start|>assistant\n"
    )
    assert tok.convert_ids_to_tokens(stop_ids(tok)) == ["<|endoftext|>", "<|im_end|>"]


def _head_always(model, token_id):
    """A copy of the model whose lm_head always prefers `token_id` (zero weights, one bias)."""
    m = load_model("micro", vocab_size=model.config.vocab_size, seed=0).float().eval()
    head = torch.nn.Linear(m.config.hidden_size, m.config.vocab_size, bias=True)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    head.bias.data[token_id] = 5.0
    m.lm_head = head
    return m


def test_responses_stop_at_end_of_turn_or_budget(tok, model):
    ex = examples_of([Document("x", messages=CHAT)], tok)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    (stopped,) = generate_responses(_head_always(model, im_end), tok, ex, max_new_tokens=5)
    assert stopped == {"text": "", "stop": "stop_token", "new_tokens": 0}
    word = tok.encode("開く", add_special_tokens=False)[0]
    (running,) = generate_responses(_head_always(model, word), tok, ex, max_new_tokens=5)
    assert running["stop"] == "budget" and running["new_tokens"] == 5
    assert running["text"] == tok.decode([word] * 5)


def test_greedy_is_batch_invariant_and_sampling_is_seeded(docs, tok, model):
    ex = examples_of(docs, tok)[2:]  # prompts of different lengths
    one = generate_responses(model, tok, ex, max_new_tokens=4, batch_size=1)
    assert generate_responses(model, tok, ex, max_new_tokens=4, batch_size=4) == one
    kw = {"max_new_tokens": 4, "do_sample": True, "temperature": 1.5}
    s0 = generate_responses(model, tok, ex, seed=0, **kw)
    assert generate_responses(model, tok, ex, seed=0, **kw) == s0
    assert generate_responses(model, tok, ex, seed=1, **kw) != s0


def test_response_nll_matches_transformers_labels(docs, tok, model):
    ex = examples_of(docs, tok)
    got = response_nll(model, tok, ex, batch_size=4)
    # training put EOS after a completion and <|im_end|> after an assistant turn
    stop = {"ui": tok.eos_token_id, "chat": tok.convert_tokens_to_ids("<|im_end|>")}
    for e, nll in zip(ex, got):
        prompt = [tok.eos_token_id] + tok.encode(e.prompt, add_special_tokens=False)
        answer = tok.encode(e.reference, add_special_tokens=False) + [stop[e.domain]]
        ids = torch.tensor([prompt + answer])
        labels = torch.tensor([[-100] * len(prompt) + answer])
        with torch.no_grad():
            want = model(input_ids=ids, labels=labels).loss.item() * len(answer)
        assert nll == pytest.approx(want, rel=1e-5)


def test_section_scores_per_domain_and_paired_comparison(docs, tok, model):
    cfg = _cfg()
    out = evaluate_supervised(model, tok, docs, cfg)
    assert out["n"] == 6 and set(out["by_domain"]) == {"ui", "chat"}
    ui = out["by_domain"]["ui"]
    assert "ja-mecab" in ui["bleu_signature"] and ui["bleu_ci"]["unit"] == "example"
    assert 0 <= ui["exact_match"] <= 1 and ui["response_bits_per_char"] > 0
    assert out["samples"][0]["reference"] == "開く" and out["decoding"]["do_sample"] is False
    # a system that answers every reference exactly: exact match 1, chrF 100, and it wins the pair
    perfect = {**out, "samples": [{**s, "hypothesis": s["reference"], "exact_match": True} for s in out["samples"]]}
    cmp = supervised_compare({"supervised": out}, {"supervised": perfect}, {"resamples": 50, "seed": 0})
    assert cmp["overall"]["chrf"]["b"] == pytest.approx(100.0)  # (BLEU-4 of 1–2-word references is 0)
    assert cmp["overall"]["exact_match"]["diff_b_minus_a"] == pytest.approx(1 - out["overall"]["exact_match"])
    assert cmp["by_domain"]["ui"]["response_bits_per_char"]["diff"] == 0.0
    assert "skipped" in supervised_compare({"supervised": out}, {"supervised": {"samples": []}}, {})
    assert evaluate_supervised(model, tok, docs, cfg.likelihood_only())["n"] == 0


def test_evaluate_model_puts_supervised_records_in_their_own_section(docs, tok, model):
    text = [Document("今日は良い天気です。散歩に行きましょう。", domain="news")] * 2
    res = evaluate_model(model, tok, docs + text, _cfg(sft_examples=3))
    assert list(res["likelihood"]["by_group"]) == ["ja/news"]
    assert res["supervised"]["n"] == 3


def test_train_then_eval_on_translation_records_from_the_command_line(saved_tiny_model, tmp_path, capsys):
    import json

    from ja_adapt.apps import cli
    from ja_adapt.data.translation import catalog_pairs, prompt_completion, split_pairs

    _, model_dir, corpus = saved_tiny_model
    parts = split_pairs(catalog_pairs(max_chars=24)[:80])
    for name in ("train", "test"):
        (tmp_path / f"{name}.jsonl").write_text(
            "".join(
                json.dumps({**prompt_completion(p), "domain": "translation"}, ensure_ascii=False) + "\n"
                for p in parts[name]
            ),
            encoding="utf-8",
        )
    run = tmp_path / "run"
    assert (
        cli.main(
            [
                "train",
                "--model",
                str(model_dir),
                "--method",
                "lora",
                "--data",
                str(corpus),
                "--data",
                str(tmp_path / "train.jsonl"),
                "--out",
                str(run),
                "--max-steps",
                "2",
                "data.weights=[1,2]",
                "precision=fp32",
                "data.seq_len=64",
                "train.batch_size=2",
                "optim.warmup_steps=1",
                "train.eval_every=0",
                "train.tensorboard=false",
                "train.progress=false",
                "eval.sft_max_new_tokens=8",
                "eval.bootstrap_resamples=50",
                f"data.cache_dir={tmp_path / 'cache'}",
            ]
        )
        == 0
    )
    assert cli.main(["eval", str(run), "--data", str(tmp_path / "test.jsonl"), "--gen-prompts", "0"]) == 0
    sup = json.loads((run / "eval.json").read_text(encoding="utf-8"))["supervised"]
    assert sup["n"] == len(parts["test"]) >= 3 and set(sup["by_domain"]) == {"translation"}
    assert sup["samples"][0]["reference"] == parts["test"][0].ja
    capsys.readouterr()
