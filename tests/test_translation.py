"""The translation pairs: real catalogs, kept-pair rules, and a split fixed by the English source."""

from ja_adapt.data.translation import (_pairs_of, catalog_pairs, held_out_japanese, prompt_completion,
                                       split_of, split_pairs)


def test_pair_rules_on_a_parsed_catalog():
    catalog = {"": "header", "Open %s": "%s を開く", "same": "same", "ctx\x04Save it": "保存する",
               "English only": "English only too", ("file", 0): "ファイル", ("file", 1): "ファイルたち",
               "  padded \n": "\tパディング\n", "no kana": "漢字"}
    got = sorted((p.en, p.ja) for p in _pairs_of(catalog, "t"))
    # kept: placeholders as they are, context dropped, whitespace stripped, plural singular only;
    # dropped: the header, identical sides, untranslated English, a Japanese side without kana
    assert got == sorted([("Open %s", "%s を開く"), ("Save it", "保存する"), ("padded", "パディング"),
                          ("file", "ファイル")])


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
