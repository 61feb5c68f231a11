"""Supervised record formats: reading (.jsonl, directories, datasets), mixing with text under
per-source weights, bad records as one-line errors, and the masking rule of each format."""

from __future__ import annotations

import json

import pytest
import yaml

from ja_adapt.apps import cli
from ja_adapt.config import AlpacaConfig, ExperimentConfig
from ja_adapt.core.errors import UserError
from ja_adapt.data.pipeline import training_splits
from ja_adapt.data.records import render_segments
from ja_adapt.data.sources import read_corpus
from ja_adapt.data.tokenizer import train_tokenizer
from ja_adapt.data.tokens import build_token_store

PC = {"prompt": "Translate into Japanese:\nOpen the file\n", "completion": "ファイルを開く"}
CHAT = {
    "messages": [
        {"role": "system", "content": "短く答えてください。"},
        {"role": "user", "content": "こんにちは"},
        {"role": "assistant", "content": "こんにちは！"},
        {"role": "user", "content": "元気？"},
        {"role": "assistant", "content": "はい、元気です。"},
    ]
}


def _jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def chatterbot_ja_dialogues() -> list[dict]:
    """chatterbot-corpus's Japanese dialogues as `messages` records: turns alternate user/assistant."""
    from ja_adapt.data.corpus_loaders import _package_files

    records = []
    for f in _package_files("chatterbot_corpus", "data/japanese", ".yml"):
        for conv in (yaml.safe_load(f.read_text(encoding="utf-8")) or {}).get("conversations") or []:
            turns = [str(t).strip() for t in conv if str(t).strip()] if isinstance(conv, list) else []
            if len(turns) >= 2:
                records.append(
                    {"messages": [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(turns)]}
                )
    return records


@pytest.fixture(scope="module")
def chatml_tokenizer():
    """The demo tokenizer (ChatML template) trained on a little Japanese and English."""
    texts = [m["content"] for r in chatterbot_ja_dialogues() for m in r["messages"]]
    return train_tokenizer(texts + [PC["prompt"], PC["completion"]], 600)


def test_each_format_from_jsonl(tmp_path):
    alpaca = {"instruction": "訳してください", "input": "cat", "output": "猫"}
    path = _jsonl(
        tmp_path / "mix.jsonl",
        [
            {"text": "地の文です。"},
            PC,
            CHAT,
            alpaca,
            {"instruction": "挨拶して", "output": "こんにちは", "domain": "x"},
        ],
    )
    text, pc, chat, alp, alp2 = read_corpus([path])
    assert (text.kind, pc.kind, chat.kind, alp.kind) == ("text", "prompt_completion", "messages", "prompt_completion")
    assert pc.segments == ((PC["prompt"], False), (PC["completion"], True))
    assert pc.text == PC["prompt"] + PC["completion"] and pc.lang == "ja" and pc.domain == "mix"
    assert chat.messages[2] == ("assistant", "こんにちは！") and len(chat.messages) == 5
    assert alp.segments == (("訳してください\n\ncat\n", False), ("猫", True))
    assert alp2.segments == (("挨拶して\n", False), ("こんにちは", True)) and alp2.domain == "x"
    assert pc.source == f"{path}:2"


def test_alpaca_field_mapping_and_config_keys(tmp_path):
    path = _jsonl(tmp_path / "qa.jsonl", [{"q": "質問", "ctx": "", "a": "答え"}])
    (doc,) = read_corpus([path], alpaca=AlpacaConfig(instruction="q", input="ctx", output="a"))
    assert doc.segments == (("質問\n", False), ("答え", True))
    from ja_adapt.config import load_config

    cfg = load_config(None, ["data.alpaca.output=a", "data.completion_only_loss=false"])
    assert cfg.data.alpaca.output == "a" and cfg.data.completion_only_loss is False


def test_directories_and_saved_datasets_take_every_format(tmp_path):
    import datasets

    folder = tmp_path / "dir"
    folder.mkdir()
    _jsonl(folder / "a.jsonl", [PC])
    _jsonl(folder / "b.jsonl", [CHAT])
    assert [d.kind for d in read_corpus([folder])] == ["prompt_completion", "messages"]
    ds_pc = tmp_path / "pc"
    datasets.Dataset.from_list([PC, {"prompt": "p", "completion": "補完"}]).save_to_disk(str(ds_pc))
    ds_chat = tmp_path / "chat"
    datasets.Dataset.from_list([CHAT]).save_to_disk(str(ds_chat))
    docs = read_corpus([ds_pc, ds_chat])
    assert [d.kind for d in docs] == ["prompt_completion"] * 2 + ["messages"]
    assert docs[2].messages[-1] == ("assistant", "はい、元気です。") and docs[1].source == f"{ds_pc}#1"
    bad = tmp_path / "bad_ds"
    datasets.Dataset.from_list([{"prompt": "p", "completion": ""}]).save_to_disk(str(bad))
    with pytest.raises(UserError, match=r"bad_ds: row 0: field 'completion' is empty"):
        read_corpus([bad])


BAD_RECORDS = [
    ({"prompt": "p"}, "no 'completion' field"),
    ({"completion": "c"}, "no 'prompt' field"),
    ({"prompt": "p", "completion": "  "}, "field 'completion' is empty"),
    ({"prompt": "p", "completion": 3}, "field 'completion' must be a string"),
    (
        {"messages": [{"role": "narrator", "content": "x"}, {"role": "assistant", "content": "y"}]},
        "messages[0]: unknown role 'narrator'",
    ),
    ({"messages": [{"role": "user", "content": "こんにちは"}]}, "no assistant turn"),
    ({"messages": []}, "must be a non-empty list"),
    ({"messages": [{"role": "assistant"}]}, "messages[0]: no 'content' field"),
    ({"instruction": "i"}, "no 'output' field"),
    ({"body": "x"}, "no 'text' field (fields: body)"),
    ({"prompt": "p", "completion": "c", "split": "dev"}, "field 'split' must be train, val or test"),
]


@pytest.mark.parametrize("record,message", BAD_RECORDS)
def test_bad_record_is_named_by_file_and_line(tmp_path, record, message):
    path = _jsonl(tmp_path / "bad.jsonl", [PC, record])
    with pytest.raises(UserError) as e:
        read_corpus([path])
    assert str(e.value).startswith(f"{path}:2: ") and message in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "record,message", [BAD_RECORDS[2], BAD_RECORDS[4], BAD_RECORDS[5], (CHAT, "needs a tokenizer with a chat template")]
)  # the tiny model's tokenizer has none
def test_bad_record_exits_2_with_one_line_and_writes_nothing(tmp_path, saved_tiny_model, capsys, record, message):
    _, model_dir, corpus = saved_tiny_model
    bad = _jsonl(tmp_path / "sft.jsonl", [PC] * 3 + [record])
    out = tmp_path / "run"
    code = cli.main(
        [
            "train",
            "--model",
            str(model_dir),
            "--method",
            "lora",
            "--data",
            str(corpus),
            "--data",
            str(bad),
            "--out",
            str(out),
            "--max-steps",
            "2",
            "optim.warmup_steps=0",
            f"data.cache_dir={tmp_path / 'cache'}",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"{bad}:4: " in err and message in err
    assert not out.exists()


def test_mixture_weights_repeat_and_thin_each_source(tmp_path):
    text = _jsonl(tmp_path / "text.jsonl", [{"text": f"文書{i}です。"} for i in range(40)])
    sft = _jsonl(tmp_path / "sft.jsonl", [{"prompt": f"問{i}\n", "completion": f"答えは{i}です。"} for i in range(40)])
    cfg = ExperimentConfig()
    cfg.data.paths = [str(text), str(sft)]
    _, plain = training_splits(cfg)
    cfg.data.weights = [0.5, 2.0]
    _, mixed = training_splits(cfg)
    n_text = sum(not d.supervised for d in plain["train"])
    n_sft = sum(d.supervised for d in plain["train"])
    got_text = [d for d in mixed["train"] if not d.supervised]
    assert sum(d.supervised for d in mixed["train"]) == 2 * n_sft
    assert 0.25 * n_text < len(got_text) < 0.75 * n_text and len(set(got_text)) == len(got_text)
    assert mixed["val"] == plain["val"] and mixed["test"] == plain["test"]  # only training is weighted
    assert training_splits(cfg)[1]["train"] == mixed["train"]  # the same every run
    cfg.data.weights = [1.0]
    from ja_adapt.config import validate

    with pytest.raises(UserError, match="data.weights"):
        validate(cfg)


def test_chatml_rendering_masks_all_but_assistant_turns(chatml_tokenizer, tmp_path):
    (doc,) = read_corpus([_jsonl(tmp_path / "c.jsonl", [CHAT])])
    pieces = render_segments(doc, chatml_tokenizer)
    assert "".join(t for t, _ in pieces) == chatml_tokenizer.apply_chat_template(
        [dict(role=r, content=c) for r, c in doc.messages], tokenize=False
    )
    assert [t for t, trained in pieces if trained] == ["こんにちは！<|im_end|>", "はい、元気です。<|im_end|>"]
    assert pieces[0] == (
        "<|im_start|>system\n短く答えてください。<|im_end|>\n<|im_start|>user\n"
        "こんにちは<|im_end|>\n<|im_start|>assistant\n",
        False,
    )
    assert pieces[-1] == ("\n", False)


def test_chatterbot_dialogues_tokenize_with_assistant_only_masks(chatml_tokenizer, tmp_path):
    records = chatterbot_ja_dialogues()
    assert len(records) > 50
    docs = read_corpus([_jsonl(tmp_path / "chatterbot.jsonl", records)])
    store = build_token_store(docs, chatml_tokenizer, tmp_path / "cache")
    im_end = chatml_tokenizer.convert_tokens_to_ids("<|im_end|>")
    for i in (0, 7, len(docs) - 1):
        ids = store.doc_tokens(i).tolist()
        mask = store.loss_mask[store.doc_offsets[i] : store.doc_offsets[i + 1]].tolist()
        # trained tokens are the assistant contents, each closed by <|im_end|>; the EOS is masked
        trained = [t for t, m in zip(ids, mask) if m]
        answers = [c for r, c in docs[i].messages if r == "assistant"]
        assert chatml_tokenizer.decode(trained) == "<|im_end|>".join(answers) + "<|im_end|>"
        assert trained.count(im_end) == len(answers) and mask[-1] == 0
    # a text document keeps loss on every token, a prompt→completion one from its completion on
    text_pc = build_token_store(
        read_corpus([_jsonl(tmp_path / "t.jsonl", [{"text": "地の文"}, PC])]), chatml_tokenizer, tmp_path / "cache"
    )
    assert text_pc.loss_mask[: text_pc.doc_offsets[1]].all()
    pc_mask = text_pc.loss_mask[text_pc.doc_offsets[1] :].tolist()
    n_prompt = len(chatml_tokenizer.encode(PC["prompt"], add_special_tokens=False))
    assert pc_mask == [0] * n_prompt + [1] * (len(pc_mask) - n_prompt)  # completion and its EOS


def test_chat_template_survives_save_and_load_of_tokenizer_adapter_and_merged_model(chatml_tokenizer, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer

    from ja_adapt.models.load import load_model
    from ja_adapt.train.checkpoint import save_weights

    turns = CHAT["messages"][:4]
    expected = chatml_tokenizer.apply_chat_template(turns, add_generation_prompt=True)
    model = get_peft_model(
        load_model("tiny", vocab_size=len(chatml_tokenizer), seed=0), LoraConfig(r=2, target_modules=["q_proj"])
    )
    save_weights(model, chatml_tokenizer, tmp_path / "adapter")
    model.merge_and_unload().save_pretrained(tmp_path / "merged")
    AutoTokenizer.from_pretrained(tmp_path / "adapter").save_pretrained(tmp_path / "merged")
    chatml_tokenizer.save_pretrained(tmp_path / "tokenizer")
    for folder in ("tokenizer", "adapter", "merged"):
        loaded = AutoTokenizer.from_pretrained(tmp_path / folder)
        assert loaded.chat_template == chatml_tokenizer.chat_template, folder
        assert loaded.apply_chat_template(turns, add_generation_prompt=True) == expected, folder
        assert loaded.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"]) == [1, 2]
