"""Generation: batched greedy decoding, the as-produced cut, degeneration metrics, prompt intervals."""

from __future__ import annotations

import numpy as np
import pytest
import sacrebleu
import torch

from ja_adapt.data.documents import Document
from ja_adapt.evaluate.generation import Prompt, decoding_budget, evaluate_generation, generate, make_prompts
from ja_adapt.evaluate.genscores import (
    bleu_chrf,
    distinct_n,
    length_ratio,
    prompt_intervals,
    repeat_rate,
    repeated_ngrams,
)
from ja_adapt.models.load import load_model

HYPS = [
    "今日は良い天気です。",
    "猫が好きです",
    "東京の桜は三月に咲く。",
    "本を読みました。",
    "ははははははは",
    "京都京都京都",
]
REFS = [
    "今日は良い天気ですね。",
    "犬が好きです",
    "東京の桜は三月の終わりに咲きます。",
    "本を読みます。",
    "お寺がたくさんある",
    "京都には古いお寺",
]


def _prompts(n_chars=16):
    from tiny_text import SENTENCES

    return [
        Prompt(s[:k], (s * 3)[k : k + n_chars], f"s{i}")
        for i, (s, k) in enumerate(zip(SENTENCES, (2, 9, 4, 12, 6, 3, 15, 5)))
    ]


def test_batched_decoding_equals_one_at_a_time(tiny_tokenizer):
    torch.manual_seed(0)
    model = load_model("tiny", vocab_size=len(tiny_tokenizer), seed=0).float().eval()
    prompts = _prompts()
    lengths = {len(tiny_tokenizer(p.prompt)["input_ids"]) for p in prompts}
    assert len(lengths) > 3  # rows of a batch are padded differently
    alone = generate(model, tiny_tokenizer, prompts, 64, batch_size=1)
    batched = generate(model, tiny_tokenizer, prompts, 64, batch_size=5)
    assert batched == alone
    assert len({c.text for c in alone}) > 3  # not one output for every prompt
    for p, c in zip(prompts, alone):
        assert c.stop == "length" and len(c.text) == len(p.reference)


class ScriptedModel(torch.nn.Module):
    """Emits a fixed token sequence for every row, through the same generate() interface (and the
    same stopping rules: EOS, the stopping criteria, the budget) as transformers."""

    def __init__(self, script: list[int]):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.script = script

    def generate(self, input_ids, attention_mask, generation_config, stopping_criteria):
        ids, done = input_ids, torch.zeros(len(input_ids), dtype=torch.bool)
        for step in range(generation_config.max_new_tokens):
            tok = torch.full((len(ids), 1), self.script[min(step, len(self.script) - 1)])
            tok[done] = generation_config.pad_token_id
            ids = torch.cat([ids, tok], dim=1)
            done |= (tok[:, 0] == generation_config.eos_token_id) | stopping_criteria(ids, None)
            if done.all():
                break
        return ids


def test_continuation_is_cut_to_the_reference_and_otherwise_kept(tiny_tokenizer):
    produced = "、" + " " * 40
    model = ScriptedModel(tiny_tokenizer(produced, add_special_tokens=False)["input_ids"])
    (c,) = generate(model, tiny_tokenizer, [Prompt("今日は", "良い天気ですね。散歩に行きましょう。東京", "x")], 256)
    assert c.text == produced[:20] and c.stop == "length"  # the spaces stay: 20 characters, not 1
    eos = tiny_tokenizer.eos_token_id
    short = ScriptedModel(tiny_tokenizer("あ", add_special_tokens=False)["input_ids"] + [eos])
    (c,) = generate(short, tiny_tokenizer, [Prompt("今日は", "良い天気ですね。", "x")], 256)
    assert (c.text, c.stop) == ("あ", "eos")
    (c,) = generate(model, tiny_tokenizer, [Prompt("今日は", "良い天気ですね。", "x")], 2)
    assert c.stop == "budget" and c.new_tokens == 2 and len(c.text) < 8


def test_decoding_budget_suffices_for_the_longest_reference():
    prompts = [Prompt("a", "x" * 10, ""), Prompt("b", "y" * 30, "")]
    assert decoding_budget(prompts, 256) == 120 and decoding_budget(prompts, 50) == 50


def test_degeneration_metrics_by_hand():
    # "abcabcab": abca bcab cabc abca bcab → the last two already occurred
    assert repeated_ngrams("abcabcab") == (2, 5)
    assert repeat_rate(["aaaaaa", "abc"]) == pytest.approx(2 / 3)  # "abc" has no 4-gram
    assert repeat_rate(["ab"]) is None
    assert distinct_n(["abab", "ab"], 1) == pytest.approx(2 / 6)
    assert distinct_n(["abab", "ab"], 2) == pytest.approx(2 / 4)  # ab ba ab | ab: no "ba" across texts
    assert length_ratio(["ab", "c"], ["abcd", "ef"]) == pytest.approx(3 / 6)


def test_bleu_and_chrf_equal_sacrebleu():
    r = bleu_chrf(HYPS, REFS)
    ref = sacrebleu.corpus_bleu(HYPS, [REFS], tokenize="ja-mecab")
    assert r["bleu"] == pytest.approx(ref.score)
    assert r["bleu_1_precision"] == pytest.approx(ref.precisions[0])
    assert r["bleu_4_precision"] == pytest.approx(ref.precisions[3])
    assert r["chrf"] == pytest.approx(sacrebleu.corpus_chrf(HYPS, [REFS]).score)
    sent = [sacrebleu.sentence_bleu(h, [x], tokenize="ja-mecab").score for h, x in zip(HYPS, REFS)]
    assert r["sentence_bleu_mean"] == pytest.approx(np.mean(sent))
    assert r["sentence_bleu_std"] == pytest.approx(np.std(sent, ddof=1))
    assert "tok:ja-mecab" in r["bleu_signature"] and "13a" not in r["bleu_signature"]
    assert r["bleu"] != pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS]).score)  # 13a differs
    assert r["repeat_4gram_rate"] == pytest.approx(repeat_rate(HYPS))
    assert r["repeat_4gram_rate"] > r["reference"]["repeat_4gram_rate"] == 0


def test_prompt_intervals_recompute_each_resample_with_sacrebleu():
    r = prompt_intervals(HYPS, REFS, resamples=40, seed=3)
    idx = np.random.default_rng(3).integers(0, len(HYPS), size=(40, len(HYPS)))
    reps = {
        k: []
        for k in (
            "bleu",
            "chrf",
            "bleu_4_precision",
            "sentence_bleu_mean",
            "repeat_4gram_rate",
            "distinct_2",
            "length_ratio",
        )
    }
    # one metric object each: sacrebleu's tokenizer cache keeps every instance (and its MeCab
    # dictionary, ~2 MB) alive, so sacrebleu.corpus_bleu per resample grew this process by 1 GiB
    bleu, sentence = sacrebleu.BLEU(tokenize="ja-mecab"), sacrebleu.BLEU(tokenize="ja-mecab", effective_order=True)
    chrf = sacrebleu.CHRF()
    for row in idx:
        h, x = [HYPS[i] for i in row], [REFS[i] for i in row]
        b = bleu.corpus_score(h, [x])
        reps["bleu"].append(b.score)
        reps["bleu_4_precision"].append(b.precisions[3])
        reps["chrf"].append(chrf.corpus_score(h, [x]).score)
        reps["sentence_bleu_mean"].append(np.mean([sentence.sentence_score(a, [c]).score for a, c in zip(h, x)]))
        reps["repeat_4gram_rate"].append(repeat_rate(h))
        reps["distinct_2"].append(distinct_n(h, 2))
        reps["length_ratio"].append(length_ratio(h, x))
    for k, v in reps.items():
        assert (r[k]["ci_low"], r[k]["ci_high"]) == pytest.approx(tuple(np.percentile(v, [2.5, 97.5]))), k
        assert r[k]["unit"] == "prompt" and r[k]["resamples"] == 40


def test_prompts_are_seeded_and_cut_from_documents():
    docs = [Document("あいうえお" * 5, source=str(i)) for i in range(6)] + [Document("短い")]
    p1, p2 = make_prompts(docs, 4, 10, 8, seed=3), make_prompts(docs, 4, 10, 8, seed=3)
    assert [p.source for p in p1] == [p.source for p in p2] and len(p1) == 4
    assert all(p.prompt == ("あいうえお" * 5)[:10] and p.reference == ("あいうえお" * 5)[10:18] for p in p1)
    assert make_prompts(docs, 50, 10, 8)[-1].source != ""  # the short document is never used


def test_evaluate_generation_reports_decoding_and_intervals(tiny_tokenizer):
    from tiny_text import SENTENCES

    model = load_model("tiny", vocab_size=len(tiny_tokenizer), seed=0)
    docs = [Document(s * 2, "ja", source=f"d{i}") for i, s in enumerate(SENTENCES)]
    r = evaluate_generation(
        model,
        tiny_tokenizer,
        docs,
        n_prompts=6,
        prefix_chars=8,
        ref_chars=12,
        max_new_tokens=256,
        seed=0,
        batch_size=4,
        resamples=30,
    )
    assert r["n"] == 6 and r["decoding"]["max_new_tokens"] == 48
    assert sum(r["decoding"]["stopped"].values()) == 6
    for k in ("bleu", "chrf", "repeat_4gram_rate", "distinct_1", "distinct_2", "length_ratio"):
        assert r[f"{k}_ci"]["resamples"] <= 30 and r[f"{k}_ci"]["ci_confidence"] == 0.95
    for s in r["samples"]:
        assert s["stop"] != "length" or len(s["hypothesis"]) == len(s["reference"])
