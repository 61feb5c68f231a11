"""Corpus sources (txt, jsonl, directories, saved / hub datasets), their errors, and the split."""

from __future__ import annotations

import json
from collections import Counter
from hashlib import sha256

import pytest

from ja_adapt.core import hub
from ja_adapt.core.errors import UserError
from ja_adapt.data.documents import Document
from ja_adapt.data.sources import corpus_fingerprint, detect_lang, read_corpus
from ja_adapt.data.splits import split_documents


def _write_jsonl(path, records):
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    path.write_text(lines, encoding="utf-8")
    return path


def _raises(paths, *fragments, **kwargs) -> str:
    """read_corpus must raise a one-line UserError containing every fragment; returns it."""
    with pytest.raises(UserError) as info:
        read_corpus([str(p) for p in paths], **kwargs)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


# --- reading -----------------------------------------------------------------------------------


def test_txt_blocks_are_documents_with_detected_lang_and_stem_domain(tmp_path):
    f = tmp_path / "news.txt"
    f.write_text("  今日は晴れです。\n明日は雨です。  \n\n \n\nThe end.\n\n\n東京大学\n", encoding="utf-8")
    docs = read_corpus([str(f)])
    assert [d.text for d in docs] == ["今日は晴れです。\n明日は雨です。", "The end.", "東京大学"]
    assert [d.lang for d in docs] == ["ja", "en", "zh"]
    assert {d.domain for d in docs} == {"news"}
    assert [d.source for d in docs] == [f"{f}:1", f"{f}:6", f"{f}:9"]


def test_detect_lang_script_classes():
    assert detect_lang("コーヒー") == "ja"  # katakana only
    assert detect_lang("ｺｰﾋｰ") == "ja"  # halfwidth katakana
    assert detect_lang("漢字と仮名") == "ja"  # kanji + hiragana
    assert detect_lang("我们学习汉语。") == "zh"  # Han only
    assert detect_lang("naïve café 123") == "en"


def test_jsonl_fields_and_defaults(tmp_path):
    f = _write_jsonl(
        tmp_path / "chat.jsonl",
        [
            {"text": "こんにちは"},
            {"text": "Hello", "lang": "en", "domain": "greeting"},
            {"text": "   "},  # blank: skipped
            {"text": "你好", "extra": 1},
        ],
    )
    docs = read_corpus([str(f)])
    assert [(d.text, d.lang, d.domain) for d in docs] == [
        ("こんにちは", "ja", "chat"),
        ("Hello", "en", "greeting"),
        ("你好", "zh", "chat"),
    ]
    assert docs[2].source == f"{f}:4"
    assert read_corpus([str(f)], domain="override")[0].domain == "override"


def test_directory_is_recursive_and_sorted(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.txt").write_text("ぜっと", encoding="utf-8")
    (tmp_path / "a.txt").write_text("えー", encoding="utf-8")
    _write_jsonl(tmp_path / "b" / "c.jsonl", [{"text": "しー"}])
    (tmp_path / "notes.md").write_text("ignored", encoding="utf-8")
    docs = read_corpus([str(tmp_path)])
    assert [d.text for d in docs] == ["えー", "しー", "ぜっと"]
    assert [d.domain for d in docs] == ["a", "c", "z"]


def test_saved_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "wiki"
    datasets.Dataset.from_dict(
        {"text": ["日本語の文です。", "Another one."], "domain": ["wiki", "web"], "id": [1, 2]}
    ).save_to_disk(str(out))
    docs = read_corpus([str(out)])
    assert [(d.text, d.lang, d.domain) for d in docs] == [
        ("日本語の文です。", "ja", "wiki"),
        ("Another one.", "en", "web"),
    ]
    bad = tmp_path / "bad"
    datasets.Dataset.from_dict({"content": ["x"]}).save_to_disk(str(bad))
    _raises([bad], str(bad), "no 'text' column", "content")


def test_hub_dataset_uses_train_split_and_wraps_failures(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    calls = []

    def fake_load(name, split=None, **kwargs):
        calls.append((name, split))
        if name == "missing":
            raise FileNotFoundError("Dataset 'owner/missing' doesn't exist on the Hub\nmore lines")
        return datasets.Dataset.from_dict({"text": ["ハブのデータ"]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.setattr(hub, "reachable", lambda: True)
    docs = read_corpus(["owner/corpus"])
    assert calls == [("owner/corpus", "train")]
    assert (docs[0].domain, docs[0].lang) == ("corpus", "ja")
    _raises(["hf:missing"], "missing", "hub dataset failed", "doesn't exist")
    _raises(["typo"], "typo: no such file")  # a bare missing name is never looked up
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline: a missing path is just missing
    _raises(["owner/other"], "owner/other: no such file")
    assert calls == [("owner/corpus", "train"), ("missing", "train")]


def test_a_path_that_is_not_there_never_goes_to_the_hub(tmp_path, monkeypatch):
    """A broken symlink and a typo with slashes were tried as hub ids: about 30 s of retries; an
    unreachable hub (here: a closed local port) fails at once too."""
    datasets = pytest.importorskip("datasets")
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("went to the hub"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "ja").symlink_to(tmp_path / "gone")
    for spec in ("corpus/ja", "./data/ja", "data/ja/news", "/no/such/ja"):
        _raises([spec], f"{spec}: no such file")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # port 9: closed
    _raises(["datta/ja"], "datta/ja", "hub cannot be reached")


# --- bad input ---------------------------------------------------------------------------------


def test_missing_path(tmp_path):
    _raises([tmp_path / "nope.txt"], f"{tmp_path / 'nope.txt'}: no such file")


def test_empty_corpus(tmp_path):
    (tmp_path / "blank.txt").write_text("\n  \n\n", encoding="utf-8")
    _raises([tmp_path / "blank.txt"], "blank.txt", "no documents")
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    _raises([tmp_path / "empty.jsonl"], "empty.jsonl", "no documents")
    (tmp_path / "dir").mkdir()
    _raises([tmp_path / "dir"], "dir", "no documents")
    with pytest.raises(UserError):
        read_corpus([])


def test_non_utf8_txt_names_file_line_and_offset(tmp_path):
    f = tmp_path / "latin.txt"
    data = "日本\nabc ".encode() + "é".encode("latin-1") + b"\n"
    f.write_bytes(data)
    _raises([f], f"{f}:2:", "not UTF-8", f"byte offset {data.index(0xE9)} in the file")


def test_non_utf8_jsonl_names_line(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_bytes(b'{"text": "ok"}\n{"text": "\x82\xa0"}\n')  # Shift_JIS bytes for あ
    _raises([f], f"{f}:2:", "not UTF-8")


def test_malformed_jsonl_line(tmp_path):
    f = tmp_path / "broken.jsonl"
    f.write_text('{"text": "はい"}\n\n{"text": "いいえ"\n', encoding="utf-8")
    _raises([f], f"{f}:3:", "not valid JSON")
    g = _write_jsonl(tmp_path / "list.jsonl", [["not", "an", "object"]])
    _raises([g], f"{g}:1:", "JSON object")


def test_text_field_missing_or_not_string(tmp_path):
    f = _write_jsonl(tmp_path / "fields.jsonl", [{"text": "はい"}, {"body": "いいえ"}])
    _raises([f], f"{f}:2:", "no 'text' field", "body")
    g = _write_jsonl(tmp_path / "types.jsonl", [{"text": "はい"}, {"text": "x"}, {"text": ["a"]}])
    _raises([g], f"{g}:3:", "'text' must be a string", "list")
    h = _write_jsonl(tmp_path / "lang.jsonl", [{"text": "はい", "lang": 3}])
    _raises([h], f"{h}:1:", "'lang'")


def test_require_japanese(tmp_path):
    en = tmp_path / "english.txt"
    en.write_text("Only English here.\n\nAnd here.", encoding="utf-8")
    _raises([en], str(en), "no Japanese characters", require_japanese=True)
    zh = tmp_path / "chinese.txt"
    zh.write_text("我们学习汉语。", encoding="utf-8")  # Han without kana is not Japanese
    _raises([zh], "no Japanese characters", require_japanese=True)
    ja = tmp_path / "ja.txt"
    ja.write_text("日本語です。", encoding="utf-8")
    assert len(read_corpus([str(en), str(ja)], require_japanese=True)) == 3


# --- fingerprint -------------------------------------------------------------------------------


def test_corpus_fingerprint_covers_text_lang_domain_only():
    docs = [Document("あ", "ja", "news", "a.txt:1"), Document("b", "en", "web")]
    fp = corpus_fingerprint(docs)
    moved = [Document("あ", "ja", "news", "elsewhere"), Document("b", "en", "web")]
    assert fp == corpus_fingerprint(moved)
    assert len(fp) == 64 and fp != sha256(b"").hexdigest()
    variants = [
        [Document("い", "ja", "news"), docs[1]],
        [Document("あ", "zh", "news"), docs[1]],
        [Document("あ", "ja", "wiki"), docs[1]],
        docs[::-1],
        docs[:1],
    ]
    assert len({fp, *map(corpus_fingerprint, variants)}) == 6


# --- split -------------------------------------------------------------------------------------


def _docs(n, domain, prefix="文書"):
    return [Document(f"{prefix}{domain}{i}です。", "ja", domain) for i in range(n)]


def _assignment(splits):
    """id(document) → split name (by identity: equal duplicate documents are distinct entries)."""
    return {id(d): name for name, docs in splits.items() for d in docs}


def test_split_partitions_deterministically_with_expected_shares():
    docs = _docs(2000, "a")
    splits = split_documents(docs, 0.05, 0.10)
    assert Counter(map(id, sum(splits.values(), []))) == Counter(map(id, docs))  # each doc once
    assert splits == split_documents(list(docs), 0.05, 0.10)
    # Binomial(2000, p): 5 standard deviations either side.
    assert abs(len(splits["val"]) - 100) < 5 * (2000 * 0.05 * 0.95) ** 0.5
    assert abs(len(splits["test"]) - 200) < 5 * (2000 * 0.10 * 0.90) ** 0.5
    assert splits != split_documents(docs, 0.05, 0.10, salt="other")
    assert splits["train"] == [d for d in docs if d in set(splits["train"])]  # input order kept


def test_split_is_stable_when_documents_are_added():
    base = _docs(300, "a") + _docs(300, "b")
    before = _assignment(split_documents(base))
    grown = base[:150] + _docs(200, "a", "新") + base[150:] + _docs(50, "c")
    after = _assignment(split_documents(grown))
    assert {id(d): after[id(d)] for d in base} == before


def test_split_small_domains_get_val_and_test_independently():
    small = _docs(3, "tiny")
    alone = split_documents(small, 0.01, 0.01)
    assert len(alone["val"]) == 1 and len(alone["test"]) == 1 and len(alone["train"]) == 1
    with_others = _assignment(split_documents(small + _docs(50, "big"), 0.01, 0.01))
    assert {id(d): with_others[id(d)] for d in small} == _assignment(alone)
    pair = split_documents(_docs(2, "pair"), 0.01, 0.01)  # < 3 docs: no forced share
    assert len(pair["train"]) + len(pair["val"]) + len(pair["test"]) == 2


def test_split_keeps_duplicate_texts_together_and_validates_fractions():
    docs = _docs(40, "a") + _docs(40, "a")
    assign = [_assignment(split_documents(docs, 0.2, 0.2))[id(d)] for d in docs]
    assert assign[:40] == assign[40:]
    for bad in [(-0.1, 0.05), (0.05, 1.0), (0.6, 0.5)]:
        with pytest.raises(UserError, match="fraction"):
            split_documents(docs, *bad)
