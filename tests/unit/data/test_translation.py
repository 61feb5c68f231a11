"""The translation pairs: real catalogs, kept-pair rules, and a split fixed by the English source."""

from ja_adapt.data.translation import (
    _pairs_of,
    catalog_pairs,
    held_out_japanese,
    prompt_completion,
    split_of,
    split_pairs,
)


def test_pair_rules_on_a_parsed_catalog():
    catalog = {
        "": "header",
        "Open %s": "%s を開く",
        "same": "same",
        "ctx\x04Save it": "保存する",
        "English only": "English only too",
        ("file", 0): "ファイル",
        ("file", 1): "ファイルたち",
        "  padded \n": "\tパディング\n",
        "no kana": "漢字",
    }
    got = sorted((p.en, p.ja) for p in _pairs_of(catalog, "t"))
    # kept: placeholders as they are, context dropped, whitespace stripped, plural singular only;
    # dropped: the header, identical sides, untranslated English, a Japanese side without kana
    assert got == sorted(
        [("Open %s", "%s を開く"), ("Save it", "保存する"), ("padded", "パディング"), ("file", "ファイル")]
    )


def test_real_catalogs_give_thousands_of_short_pairs_with_unique_sources():
    pairs = catalog_pairs(max_chars=80)
    assert len(pairs) > 3000
    assert len({p.en for p in pairs}) == len(pairs)
    assert {p.catalog for p in pairs} == {"mercurial", "jupyterlab"}
    assert all(len(p.en) <= 80 and len(p.ja) <= 80 for p in pairs)
    assert catalog_pairs(max_chars=80) == pairs  # deterministic


def test_split_depends_on_the_english_source_only_and_holds_out_its_japanese():
    pairs = catalog_pairs(max_chars=80)
    parts = split_pairs(pairs)
    assert sum(map(len, parts.values())) == len(pairs)
    assert 0.07 < len(parts["test"]) / len(pairs) < 0.13 and 0.03 < len(parts["val"]) / len(pairs) < 0.07
    # adding or removing other pairs never moves a pair
    assert split_pairs(pairs[::2])["test"] == [p for p in pairs[::2] if split_of(p) == "test"]
    held = held_out_japanese()
    assert {p.ja for p in parts["test"] + parts["val"]} <= held


def test_prompt_completion_is_a_trl_record():
    rec = prompt_completion(catalog_pairs(max_chars=80)[0])
    assert set(rec) == {"prompt", "completion"} and rec["completion"] and rec["prompt"].endswith("\n")


def test_drop_held_out_removes_the_units_that_hold_a_held_out_side():
    from ja_adapt.data.documents import Document
    from ja_adapt.data.translation import drop_held_out

    held = {"リポジトリの状態を表示します", "終了"}
    docs = [
        Document("前置きの段落です。\n\nリポジトリの状態を表示します\n\n無関係な段落です。", domain="docs"),
        Document("作業領域の リポジトリの状態を表示します 。詳しくはヘルプを参照。", domain="docs"),
        Document("終了\n\n終了しました", domain="ui"),
        Document("終了", domain="ui"),
    ]
    kept, report = drop_held_out(docs, held)
    assert [d.text for d in kept] == ["前置きの段落です。\n\n無関係な段落です。", "終了しました"]
    assert kept[1].domain == "ui" and report["removed_units"] == 4 and report["kept_docs"] == 2


def test_decontaminated_mercurial_corpus_holds_no_held_out_japanese_side():
    from ja_adapt.data.corpora import load_sources
    from ja_adapt.data.translation import drop_held_out

    held = held_out_japanese()
    docs, _ = load_sources(["hg-help-ja"])
    before = "\n".join(d.text for d in docs)
    long_sides = [s for s in held if len(s) >= 8]
    assert sum(s in before for s in long_sides) > 100  # the check can fail: they are there
    kept, report = drop_held_out(docs, held)
    after = "\n".join(d.text for d in kept)
    assert not [s for s in long_sides if s in after]
    assert 0 < report["removed_chars"] < 0.5 * len(before)
