"""vocab.py: Japanese tokens learnt on the training split, added to the tokenizer, their rows
initialised from the old pieces, trained with full fine-tuning and with LoRA, and artifacts that
transformers and peft load as they are."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from ja_adapt.apps.cli import main
from ja_adapt.config import load_config
from ja_adapt.core.charclass import script_of
from ja_adapt.core.errors import UserError
from ja_adapt.data.documents import Document
from ja_adapt.evaluate.fertility import fertility
from ja_adapt.models import vocab
from ja_adapt.models.load import load_model, preset_config

pytestmark = pytest.mark.usefixtures("one_thread")

JA = [
    "日本語を勉強するのは楽しいけれど、漢字を覚えるのは大変です。",
    "京都には古いお寺や神社がたくさんあります。東京には新しいビルがたくさんあります。",
    "コンピュータのプログラムを書くのは楽しいです。プログラムを読むのも楽しいです。",
] * 6


def test_learnt_tokens_are_japanese_words_the_base_cuts_and_are_deterministic(tiny_tokenizer):
    tokens = vocab.learn_tokens(tiny_tokenizer, JA, 12)
    assert len(tokens) == 12 and tokens == vocab.learn_tokens(tiny_tokenizer, JA, 12)
    for t in tokens:
        assert len(t) >= 2 and all(script_of(c) in ("hiragana", "katakana", "kanji") for c in t), t
        assert len(tiny_tokenizer(t, add_special_tokens=False)["input_ids"]) >= 2, t
        assert any(t in text for text in JA)  # learnt from the given text only


def test_extended_tokenizer_has_n_more_tokens_round_trips_and_cuts_japanese_shorter(tiny_tokenizer):
    ext = vocab.extend_tokenizer(tiny_tokenizer, JA, 12)
    assert len(ext) == len(tiny_tokenizer) + 12 and len(tiny_tokenizer) == 512  # the base is unchanged
    assert [t for t, _ in vocab.new_tokens(ext, tiny_tokenizer)] == vocab.learn_tokens(tiny_tokenizer, JA, 12)
    for text in JA[:3] + ["混ざった text 123 と日本語"]:
        assert ext.decode(ext(text, add_special_tokens=False)["input_ids"]) == text
    docs = [Document(t, "ja", "x") for t in JA[:3]]
    before = fertility(tiny_tokenizer, docs)["by_lang"]["ja"]["chars_per_token"]
    after = fertility(ext, docs)["by_lang"]["ja"]["chars_per_token"]
    assert after > before


def test_too_few_candidates_and_a_slow_tokenizer_are_refused_naming_the_key(tiny_tokenizer):
    with pytest.raises(UserError, match=r"key 'vocab\.extend' is 5000, but the training split yields only \d+ new"):
        vocab.learn_tokens(tiny_tokenizer, JA, 5000)

    class Slow:
        is_fast, name_or_path = False, "slow-tok"

    with pytest.raises(UserError, match=r"needs a fast tokenizer .*'slow-tok' cannot be extended"):
        vocab.learn_tokens(Slow(), JA, 4)


@pytest.mark.parametrize("tied", [True, False])
def test_new_rows_are_the_mean_of_the_old_pieces_rows(tiny_tokenizer, tied):
    ext = vocab.extend_tokenizer(tiny_tokenizer, JA, 8)
    model = AutoModelForCausalLM.from_config(
        preset_config("tiny", vocab_size=len(tiny_tokenizer), tie_word_embeddings=tied)
    )
    emb0 = model.get_input_embeddings().weight.detach().clone()
    head0 = model.get_output_embeddings().weight.detach().clone()
    ids = vocab.fit_embeddings(model, ext, tiny_tokenizer)
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert ids == list(range(512, 520)) and emb.shape[0] == 520 and head.shape[0] == 520
    assert (head is emb) == tied
    assert torch.equal(emb[:512], emb0)  # the old rows are untouched
    for text, i in vocab.new_tokens(ext, tiny_tokenizer):
        pieces = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
        assert torch.allclose(emb[i], emb0[pieces].mean(0))
        assert torch.allclose(head[i], head0[pieces].mean(0))
    rows = vocab.trainable_rows(model, ids)
    assert rows == ids if tied else rows == {"model.embed_tokens": ids, "lm_head": ids}


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["vocab.extend=-3"], r"key 'vocab\.extend' must be a positive number of new tokens .*got -3"),
        (["vocab.min_frequency=0"], r"key 'vocab\.min_frequency' must be >= 1"),
        (["vocab.extend=8", "method=ia3"], r"key 'vocab\.extend' is 8 with method 'ia3', whose new embedding rows"),
        (["vocab.extend=8", "method=adalora"], r"with method 'adalora'"),
    ],
)
def test_bad_vocab_keys_are_one_line_errors(overrides, message):
    with pytest.raises(UserError, match=message):
        load_config(None, overrides)


def _train(tmp_path, saved_tiny_model, method, *keys):
    from ja_adapt.train.loop import train

    _, model_dir, corpus = saved_tiny_model
    cfg = load_config(
        None,
        [
            "precision=fp32",
            "data.seq_len=32",
            "train.batch_size=2",
            "optim.warmup_steps=1",
            "train.max_steps=3",
            "train.eval_every=0",
            "train.save_every=0",
            "train.progress=false",
            "train.tensorboard=false",
            "lora.rank=4",
            "vocab.extend=16",
            f"method={method}",
            *keys,
        ],
        {"model.name_or_path": str(model_dir), "data.paths": [str(corpus)]},
    )
    out = tmp_path / method
    return train(cfg, out), out, model_dir


def test_full_run_saves_a_model_and_tokenizer_that_transformers_loads_as_they_are(tmp_path, saved_tiny_model):
    summary, out, model_dir = _train(tmp_path, saved_tiny_model, "full")
    tok = AutoTokenizer.from_pretrained(out / "model")
    base_tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(out / "model")
    assert len(tok) == len(base_tok) + 16 == summary["vocab_size"]
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    record = json.loads((out / "vocab.json").read_text())
    assert [a["text"] for a in record["added"]] == [t for t, _ in vocab.new_tokens(tok, base_tok)]
    assert summary["chars_per_s"] == pytest.approx(summary["tokens_per_s"] * summary["train_chars_per_token"])
    # the extension moved training off the base's tokenization: more characters per token
    assert (
        summary["train_chars_per_token"]
        > _train(tmp_path / "b", saved_tiny_model, "full", "vocab.extend=0")[0]["train_chars_per_token"]
    )


def test_lora_run_trains_the_new_rows_and_saves_an_adapter_peft_loads_as_it_is(tmp_path, saved_tiny_model):
    from peft import AutoPeftModelForCausalLM, PeftModel

    from ja_adapt.train.artifacts import load_run

    summary, out, model_dir = _train(tmp_path, saved_tiny_model, "lora")
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    hidden, vocab_rows = base.config.hidden_size, base.get_input_embeddings().weight.shape[0]
    lora_only = load_config(None, ["lora.rank=4", f"model.name_or_path={model_dir}"])
    from ja_adapt.models.build import apply_method

    expected = (
        sum(
            p.numel()
            for p in apply_method(AutoModelForCausalLM.from_pretrained(model_dir), lora_only).parameters()
            if p.requires_grad
        )
        + 16 * hidden
    )  # tied head: one set of rows
    assert summary["params_trainable"] == expected
    tok = AutoTokenizer.from_pretrained(out / "adapter")
    assert len(tok) == vocab_rows + 16
    x = tok(JA[0], return_tensors="pt")["input_ids"]
    assert int(x.max()) >= vocab_rows  # the text uses a new token
    ours, _, _ = load_run(out)
    with torch.no_grad():
        ref = ours(input_ids=x).logits
        auto = AutoPeftModelForCausalLM.from_pretrained(out / "adapter").eval()
        base.resize_token_embeddings(len(tok))
        manual = PeftModel.from_pretrained(base, out / "adapter").eval()
        assert torch.allclose(auto(input_ids=x).logits, ref, atol=1e-5)
        assert torch.allclose(manual(input_ids=x).logits, ref, atol=1e-5)
    # the adapter holds the new rows, moved off their mean initialisation by training
    from safetensors.torch import load_file

    rows = [
        t
        for k, t in load_file(out / "adapter" / "adapter_model.safetensors").items()
        if "embed_tokens" in k and "trainable_tokens_delta" in k
    ]
    init = AutoModelForCausalLM.from_pretrained(model_dir)
    new_ids = vocab.fit_embeddings(init, tok, AutoTokenizer.from_pretrained(model_dir))
    start = init.get_input_embeddings().weight[new_ids].detach()
    assert len(rows) == 1 and rows[0].shape == start.shape and not torch.allclose(rows[0], start)


def test_an_adapter_with_a_tokenizer_that_does_not_fit_is_one_line(tmp_path, saved_tiny_model, tiny_tokenizer, capsys):
    """A model directory whose tokenizer has more tokens than its embedding rows (a tokenizer of
    another run copied over): `ja-adapt eval` says so in one line, exit 2."""
    _, model_dir, corpus = saved_tiny_model
    bad = tmp_path / "bad"
    load_model(str(model_dir)).save_pretrained(bad)
    ext = vocab.extend_tokenizer(tiny_tokenizer, JA, 8)
    assert isinstance(ext, PreTrainedTokenizerFast)
    ext.save_pretrained(bad)
    from ja_adapt.train.artifacts import load_weights

    with pytest.raises(UserError, match=rf"{bad}: the tokenizer has 520 tokens but the model's embedding has 512 rows"):
        load_weights(bad, load_config(None, [f"model.name_or_path={model_dir}"]))
    capsys.readouterr()
    assert main(["eval", "--model", str(bad), "--data", str(corpus)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "Loading weights" not in line]
    assert len(err) == 1 and "the tokenizer has 520 tokens" in err[0]


def test_train_with_a_bad_vocab_value_exits_2_and_writes_nothing(tmp_path, saved_tiny_model, capsys):
    _, model_dir, corpus = saved_tiny_model
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--model",
                str(model_dir),
                "--data",
                str(corpus),
                "--out",
                str(out),
                "--method",
                "prefix",
                "vocab.extend=8",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "key 'vocab.extend' is 8 with method 'prefix'" in err[0]
    assert not out.exists()
