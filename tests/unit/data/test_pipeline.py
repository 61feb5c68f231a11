"""data/pipeline.py: corpus specs (files, `corpus:` package sources and language codes), the
Japanese check, the experiment's splits, its evaluation set and its packed, cached batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ja_adapt.config import load_config
from ja_adapt.core.errors import UserError
from ja_adapt.data import corpora, pipeline
from ja_adapt.data.corpora import SOURCES
from ja_adapt.data.pipeline import eval_set, prepare_data, read_specs, training_splits
from ja_adapt.data.sources import read_corpus
from ja_adapt.data.splits import doc_hash_unit, split_documents

JA = [
    "今日は良い天気ですね。散歩に行きましょう。",
    "東京の桜は三月の終わりに咲きます。",
    "私は毎朝コーヒーを飲みながら新聞を読みます。",
    "この本はとても面白かったので、友達にも勧めました。",
    "カタカナで書かれたメニューを読むのは少し難しいです。",
    "京都には古いお寺や神社がたくさんあります。",
    "日本語を勉強するのは楽しいけれど、漢字を覚えるのは大変です。",
    "犬が公園を走っています。",
    "駅の前に新しいパン屋さんができました。",
    "明日は雨が降るそうです。",
]


def jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def corpus(tmp_path: Path, name: str = "ja.jsonl", extra: list[dict] = ()) -> Path:
    """Twenty Japanese documents in two domains (news, chat)."""
    records = [{"text": t * 3, "domain": "news"} for t in JA]
    records += [{"text": f"{t}はい、そうですね。", "domain": "chat"} for t in JA]
    return jsonl(tmp_path / name, records + list(extra))


def cfg_for(paths, *overrides, eval_paths=None, seen_paths=None, decontaminate=True):
    flags = {"data.paths": [str(p) for p in paths], "data.decontaminate": decontaminate}
    if eval_paths is not None:
        flags["data.eval_paths"] = [str(p) for p in eval_paths]
    if seen_paths is not None:
        flags["data.seen_paths"] = [str(p) for p in seen_paths]
    return load_config(
        None,
        [
            "precision=fp32",
            "data.seq_len=16",
            "train.batch_size=2",
            "data.val_fraction=0.1",
            "data.test_fraction=0.1",
            *overrides,
        ],
        flags,
    )


# ---- read_specs ----------------------------------------------------------------------------------


def test_read_specs_of_a_jsonl_file(tmp_path):
    path = jsonl(
        tmp_path / "mixed.jsonl",
        [{"text": JA[0], "domain": "news"}, {"text": JA[1]}, {"text": "Hello there.", "lang": "en"}],
    )
    docs = read_specs([str(path)])
    assert [d.text for d in docs] == [JA[0], JA[1], "Hello there."]
    assert [d.domain for d in docs] == ["news", "mixed", "mixed"]  # default: the file's stem
    assert [d.lang for d in docs] == ["ja", "ja", "en"]
    assert docs[1].source == f"{path}:2"


def test_read_specs_of_a_package_corpus():
    docs = read_specs(["corpus:hironsan-news"])
    assert docs
    assert {(d.lang, d.domain) for d in docs} == {("ja", "news")}
    assert {d.source for d in docs} == {"hironsancorpus:hironsan/corpus/iob_sents.txt"}
    assert docs == corpora.load_sources(["hironsan-news"])[0]


def test_read_specs_of_a_language_code_selects_every_installed_source_of_it(monkeypatch):
    requested = []
    real = corpora.load_sources

    def spy(names=None, **kw):
        requested.append(list(names))
        return real(names, **kw)

    monkeypatch.setattr(pipeline, "load_sources", spy)
    docs = read_specs(["corpus:ja"])
    ja_sources = [n for n, s in SOURCES.items() if s.lang == "ja"]
    assert requested == [ja_sources]
    assert {d.lang for d in docs} == {"ja"}
    installed = {SOURCES[n].domain for n in ja_sources if SOURCES[n].available()}
    required = {SOURCES[n].domain for n in ja_sources if SOURCES[n].required}
    assert required <= {d.domain for d in docs} <= installed


def test_read_specs_of_several_package_sources_keeps_their_order():
    docs = read_specs(["corpus:chatterbot-ja,hironsan-news"])
    domains = [d.domain for d in docs]
    assert set(domains) == {"conversation", "news"}
    assert domains == sorted(domains, key=["conversation", "news"].index)


def test_read_specs_of_an_unknown_package_source_suggests_one():
    with pytest.raises(UserError, match=r"corpus 'hironsan-nws' is not known \(did you mean 'hironsan-news'\?\)"):
        read_specs(["corpus:hironsan-nws"])


def test_read_specs_of_a_missing_file_names_it(tmp_path):
    with pytest.raises(UserError, match=rf"{tmp_path / 'nope.jsonl'}: no such file"):
        read_specs([str(tmp_path / "nope.jsonl")])


def test_read_specs_keeps_the_order_of_the_specs(tmp_path):
    path = jsonl(tmp_path / "first.jsonl", [{"text": JA[0], "domain": "mine"}])
    docs = read_specs([str(path), "corpus:hironsan-news"])
    assert docs[0].domain == "mine"


def test_require_japanese_refusal_names_the_file(tmp_path):
    path = jsonl(tmp_path / "english.jsonl", [{"text": "Only English here."}, {"text": "中文文本"}])
    with pytest.raises(UserError) as e:
        read_specs([str(path)], require_japanese=True)
    assert str(path) in str(e.value) and "data.require_japanese=false" in str(e.value)
    assert len(read_specs([str(path)])) == 2  # without the check it reads
    with pytest.raises(UserError, match=str(path)):
        training_splits(cfg_for([path]))  # data.require_japanese defaults on
    docs, _ = training_splits(cfg_for([path], "data.require_japanese=false"))
    assert len(docs) == 2


def test_require_japanese_is_met_by_any_spec(tmp_path):
    path = jsonl(tmp_path / "english.jsonl", [{"text": "Only English here."}])
    docs = read_specs([str(path), "corpus:chatterbot-ja"], require_japanese=True)
    assert {d.lang for d in docs} == {"en", "ja"}


# ---- splits and the evaluation set ---------------------------------------------------------------


def test_training_splits_with_no_paths_names_data_paths():
    with pytest.raises(UserError, match=r"key 'data\.paths' is empty"):
        training_splits(load_config(None, ["precision=fp32"]))


def test_training_splits_follow_the_fractions(tmp_path):
    path = corpus(tmp_path)
    docs, splits = training_splits(cfg_for([path]))
    assert docs == read_corpus([str(path)])
    assert splits == split_documents(docs, 0.1, 0.1)
    assert sum(len(v) for v in splits.values()) == len(docs) and splits["train"]
    for domain in ("news", "chat"):  # each domain gets val and test
        assert any(d.domain == domain for d in splits["val"])
        assert any(d.domain == domain for d in splits["test"])


def test_a_record_s_own_split_is_kept_and_the_rest_split_by_hash(tmp_path):
    pinned = [
        {
            "prompt": f"Translate: source {i}\n",
            "completion": f"訳文{i}です",
            "domain": "translation",
            "split": ("train", "val", "test")[i % 3],
        }
        for i in range(30)
    ]
    path = corpus(tmp_path, extra=pinned)
    docs, splits = training_splits(cfg_for([path]))
    for name in ("train", "val", "test"):
        got = sorted(d.text for d in splits[name] if d.domain == "translation")
        assert got == sorted(r["prompt"] + r["completion"] for r in pinned if r["split"] == name)
    free = [d for d in docs if d.split is None]  # the others: as if alone
    assert {k: [d for d in v if d.split is None] for k, v in splits.items()} == split_documents(free, 0.1, 0.1)


def test_supervised_examples_are_decontaminated_by_their_response(tmp_path):
    """A shared prompt template is not contamination; a response found in training text is."""
    template = "Translate into Japanese, keeping every placeholder as it is:\n"
    pairs = [
        {
            "prompt": f"{template}source sentence number {i}\n",
            "completion": f"これは{i}番目の文です",
            "domain": "translation",
            "split": "train" if i < 20 else "test",
        }
        for i in range(30)
    ]
    leaked = {"text": "これは25番目の文です。ほかの文もあります。", "domain": "news"}
    path = corpus(tmp_path, extra=pairs)
    seen = jsonl(tmp_path / "seen.jsonl", [leaked])
    evs = eval_set(cfg_for([path], seen_paths=[seen]))
    kept = sorted(d.response_text for d in evs.docs if d.supervised)
    assert kept == sorted(f"これは{i}番目の文です" for i in range(20, 30) if i != 25)


def test_eval_set_is_the_test_split_plus_the_eval_corpora(tmp_path):
    path = corpus(tmp_path)
    extra = jsonl(
        tmp_path / "other.jsonl",
        [
            {"text": "これは別の分野の文章です。", "domain": "legal"},
            {"text": "An English text.", "lang": "en", "domain": "en-docs"},
        ],
    )
    cfg = cfg_for([path], eval_paths=[extra, "corpus:chatterbot-ja"], decontaminate=False)
    evs = eval_set(cfg)
    docs = evs.docs
    expected_test = split_documents(read_corpus([str(path)]), 0.1, 0.1)["test"]
    extra_docs = read_corpus([str(extra)]) + corpora.load_sources(["chatterbot-ja"])[0]
    assert set(docs) == set(expected_test) | set(extra_docs)
    assert len(docs) == len(expected_test) + len(extra_docs)
    assert docs[: len(expected_test)] == expected_test
    assert evs.trained == [("ja", "chat"), ("ja", "news")]  # (lang, domain) of the train split
    assert evs.decontamination is None  # decontaminate=False
    train = set(training_splits(cfg)[1]["train"])
    assert not train & set(docs)


def test_eval_set_removes_documents_contained_in_training_text(tmp_path):
    """An evaluation document copied from a training document (or from data.seen_paths, a base
    model's pretraining corpus) is dropped and counted; data.decontaminate=false keeps it."""
    path = corpus(tmp_path)
    train = training_splits(cfg_for([path]))[1]["train"]
    seen = jsonl(tmp_path / "seen.jsonl", [{"text": "事前学習の文章はここにあります。" * 4, "domain": "pre"}])
    extra = jsonl(
        tmp_path / "other.jsonl",
        [
            {"text": train[0].text, "domain": "legal"},
            {"text": "事前学習の文章はここにあります。" * 3, "domain": "legal"},
            {"text": "まったく関係のない新しい法律の文章です。", "domain": "legal"},
        ],
    )
    evs = eval_set(cfg_for([path], eval_paths=[extra], seen_paths=[seen]))
    legal = [d.text for d in evs.docs if d.domain == "legal"]
    assert legal == ["まったく関係のない新しい法律の文章です。"]
    assert evs.decontamination["groups"]["ja/legal"]["removed_by"] == {
        "data.paths (train + val splits)": 1,
        "data.seen_paths": 1,
    }
    kept = eval_set(cfg_for([path], eval_paths=[extra], seen_paths=[seen], decontaminate=False))
    assert len([d for d in kept.docs if d.domain == "legal"]) == 3 and kept.decontamination is None


def test_eval_set_without_eval_paths(tmp_path):
    evs = eval_set(cfg_for([corpus(tmp_path)], decontaminate=False))  # the fixture repeats its sentences
    assert evs.docs and {d.domain for d in evs.docs} <= {"chat", "news"}


# ---- prepare_data --------------------------------------------------------------------------------


def test_prepare_data_packs_train_and_val(tmp_path, monkeypatch, tiny_tokenizer):
    monkeypatch.setenv("JA_ADAPT_CACHE", str(tmp_path / "cache"))
    path = corpus(tmp_path)
    cfg = cfg_for([path])
    data = prepare_data(cfg, tiny_tokenizer)
    batch = data.train.get(0)
    assert set(batch) == {"input_ids", "position_ids", "targets"}
    assert all(v.shape == (2, 16) for v in batch.values())
    assert data.val is not None and data.val.get(0)["input_ids"].shape == (2, 16)
    assert (tmp_path / "cache" / "tokens").is_dir()  # $JA_ADAPT_CACHE/tokens by default
    # every train-split document, tokenized, followed by EOS
    want = sum(len(tiny_tokenizer.encode(d.text, add_special_tokens=False)) + 1 for d in data.splits["train"])
    assert data.train.store.n_tokens == want
    assert data.trained_domains == ["chat", "news"]
    assert set(data.splits) == {"train", "val", "test"}


def test_prepare_data_uses_data_cache_dir(tmp_path, monkeypatch, tiny_tokenizer):
    monkeypatch.setenv("JA_ADAPT_CACHE", str(tmp_path / "cache"))
    prepare_data(cfg_for([corpus(tmp_path)], f"data.cache_dir={tmp_path / 'mine'}"), tiny_tokenizer)
    assert any((tmp_path / "mine").iterdir()) and not (tmp_path / "cache").exists()


def test_prepare_data_without_a_val_share(tmp_path, monkeypatch, tiny_tokenizer):
    monkeypatch.setenv("JA_ADAPT_CACHE", str(tmp_path / "cache"))
    data = prepare_data(cfg_for([corpus(tmp_path)], "data.val_fraction=0"), tiny_tokenizer)
    assert data.val is None and data.splits["val"] == []


def test_fingerprint_follows_the_corpus_not_the_path(tmp_path, monkeypatch, tiny_tokenizer):
    monkeypatch.setenv("JA_ADAPT_CACHE", str(tmp_path / "cache"))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = prepare_data(cfg_for([corpus(tmp_path / "a")]), tiny_tokenizer).fingerprint
    same = prepare_data(cfg_for([corpus(tmp_path / "b")]), tiny_tokenizer).fingerprint
    more = prepare_data(
        cfg_for([corpus(tmp_path, "more.jsonl", [{"text": "新しい文書です。", "domain": "news"}])]), tiny_tokenizer
    ).fingerprint
    relabelled = prepare_data(
        cfg_for([corpus(tmp_path, "ja2.jsonl", [{"text": JA[0], "domain": "other"}])]), tiny_tokenizer
    ).fingerprint
    assert first == same
    assert len({first, more, relabelled}) == 3


def _all_held_out(n: int) -> list[str]:
    """n texts whose split hash puts them in val or test with val/test fractions of 0.49."""
    found = []
    i = 0
    while len(found) < n:
        text = f"すべて評価用の文書です。番号{i}"
        if not 0.49 <= doc_hash_unit(text) < 0.51:
            found.append(text)
        i += 1
    return found


def test_corpus_with_every_document_held_out_is_refused(tmp_path, monkeypatch, tiny_tokenizer):
    monkeypatch.setenv("JA_ADAPT_CACHE", str(tmp_path / "cache"))
    path = jsonl(tmp_path / "small.jsonl", [{"text": t} for t in _all_held_out(2)])
    cfg = cfg_for([path], "data.val_fraction=0.49", "data.test_fraction=0.49")
    assert training_splits(cfg)[1]["train"] == []
    with pytest.raises(UserError) as e:
        prepare_data(cfg, tiny_tokenizer)
    msg = str(e.value)
    assert str(path) in msg and "no training documents" in msg and "data.val_fraction" in msg
    assert not (tmp_path / "cache").exists()  # refused before tokenizing
