"""Corpus sources → `Document`s: .txt, .jsonl, directories of those, saved or hub `datasets`.

Formats (every path in `read_corpus(paths)` may be any of them; the file types are FILE_FORMATS):
  .txt      one document per blank-line-separated block; each block's text stripped
  .jsonl    one JSON object per line: a record of data/records.py (`text`, `prompt` + `completion`,
            `messages`, or Alpaca fields), with optional `domain`, `lang` strings
  directory of .txt / .jsonl files, read recursively in sorted (POSIX relative path) order
  directory saved with `datasets.Dataset.save_to_disk` (has dataset_info.json or state.json):
            columns of one of the record formats, `domain` / `lang` optional
  hub dataset "owner/name" (or "hf:name" for an un-namespaced one): only when no such local
            path exists and the hub is not switched off (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE);
            `datasets.load_dataset(name, split="train")`. A bare missing name is a missing file,
            never a hub lookup, so a typo fails at once instead of after network retries.
Defaults: `lang` is detected from the characters (`detect_lang`); `domain` is the file's stem for a
.txt / .jsonl file, the directory name for a saved dataset and the last part of a hub name.
Blank documents are skipped. All bad input raises `UserError` naming the file (and line / row).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

from ja_adapt.config import AlpacaConfig
from ja_adapt.core import hub
from ja_adapt.core.charclass import HAN as _HAN
from ja_adapt.core.charclass import KANA as _KANA
from ja_adapt.core.errors import UserError, first_line
from ja_adapt.data.documents import Document
from ja_adapt.data.records import FORMATS as FORMATS_HINT
from ja_adapt.data.records import record_document, record_fields

_HUB_PREFIX = "hf:"


def detect_lang(text: str) -> str:
    """'ja' if the text has any hiragana/katakana, else 'zh' if it has any Han character, else 'en'.

    Deliberately tiny: kana occur only in Japanese, and Chinese is the only other language a
    CJK corpus here mixes in; anything without CJK characters is treated as English.
    """
    if _KANA.search(text):
        return "ja"
    if _HAN.search(text):
        return "zh"
    return "en"


def has_japanese(text: str) -> bool:
    """Whether the text has any kana (the characters that mark Japanese rather than Chinese)."""
    return _KANA.search(text) is not None


def _make_doc(text: str, lang, domain, default_domain: str, source: str, where: str, **structure) -> Document | None:
    """A Document with defaults filled in, or None for a blank text; `where` names file[:line]."""
    for key, value in (("lang", lang), ("domain", domain)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise UserError(f"{where}: field '{key}' must be a non-empty string, got {value!r}")
    if not text.strip():
        return None
    return Document(
        text=text,
        lang=(lang or detect_lang(text)).strip(),
        domain=(domain or default_domain).strip(),
        source=source,
        **structure,
    )


def _record_doc(record: dict, default_domain: str, source: str, where: str, alpaca: AlpacaConfig) -> Document | None:
    """The Document of one JSONL line / dataset row, in any record format (data/records.py)."""

    def make(text, lang, domain, **structure):
        return _make_doc(text, lang, domain, default_domain, source, where, **structure)

    return record_document(record, where, make, alpaca)


def _decode(path: Path, data: bytes, line: int | None = None) -> str:
    """UTF-8 text of `data` (a whole file, or line `line` of one); bad bytes → UserError naming
    the file, the line and the byte offset (in the file, or in the line when `line` is given)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        where = "of the line" if line is not None else "in the file"
        if line is None:
            line = data.count(b"\n", 0, e.start) + 1
        raise UserError(
            f"{path}:{line}: not UTF-8 (byte 0x{data[e.start]:02x} at byte offset "
            f"{e.start} {where}); re-encode the file as UTF-8"
        ) from None


def _read_txt(path: Path, domain: str | None) -> Iterator[Document]:
    text = _decode(path, path.read_bytes()).removeprefix("\ufeff")  # a BOM is not text
    block: list[str] = []
    start = 0
    # A block is a run of lines with non-whitespace; blank (or whitespace-only) lines separate.
    for number, line in enumerate(text.replace("\r\n", "\n").split("\n") + [""], start=1):
        if line.strip():
            if not block:
                start = number
            block.append(line)
        elif block:
            doc = _make_doc(
                "\n".join(block).strip(), None, None, domain or path.stem, f"{path}:{start}", f"{path}:{start}"
            )
            block = []
            if doc is not None:
                yield doc


def _read_jsonl(path: Path, domain: str | None, alpaca: AlpacaConfig) -> Iterator[Document]:
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            line = _decode(path, raw, number)
            if number == 1:
                line = line.removeprefix("\ufeff")
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(
                    f"{where}: not valid JSON ({e.msg} at column {e.colno}); each line must be one JSON object"
                ) from None
            if not isinstance(record, dict):
                raise UserError(
                    f"{where}: expected a JSON object (a record of one of the formats in "
                    f"data/records.py), got {type(record).__name__}"
                )
            doc = _record_doc(record, domain or path.stem, where, where, alpaca)
            if doc is not None:
                yield doc


@dataclass(frozen=True)
class FileFormat:
    """A corpus file type: how its files are read, and what a file needs to hold a document."""

    read: Callable[[Path, str | None, AlpacaConfig], Iterator[Document]]  # (path, domain, alpaca)
    needs: str  # for the empty-corpus message


# Corpus file suffix → its format, the one list of file types: directory scans, the hub-name check
# and every message that names the types follow it. Adding a file type is a reader and a line here.
FILE_FORMATS: dict[str, FileFormat] = {
    ".txt": FileFormat(lambda path, domain, alpaca: _read_txt(path, domain), "non-blank blocks"),
    ".jsonl": FileFormat(_read_jsonl, "non-blank records"),
}
_SUFFIXES = tuple(FILE_FORMATS)
FILE_TYPES = "/".join(FILE_FORMATS)  # ".txt/.jsonl", as messages name them
# ".txt or .jsonl" (".txt, .jsonl or .tsv" with a third type)
_FILE_TYPES_OR = " or ".join([", ".join(_SUFFIXES[:-1]), _SUFFIXES[-1]] if len(_SUFFIXES) > 1 else _SUFFIXES)


def _is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and any((path / n).is_file() for n in ("dataset_info.json", "state.json", "dataset_dict.json"))


def _datasets():
    """The `datasets` module, imported on first use: it is heavy (pyarrow) and only dataset
    sources need it."""
    import datasets

    return datasets


def _read_dataset(ds, name: str, default_domain: str, alpaca: AlpacaConfig) -> Iterator[Document]:
    """Documents of a `datasets.Dataset` (or the 'train' split of a DatasetDict)."""
    datasets = _datasets()
    if isinstance(ds, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        if "train" not in ds:
            raise UserError(f"{name}: dataset has splits {sorted(ds)} but no 'train' split")
        ds = ds["train"]
    columns = list(ds.column_names)
    keep = [c for c in dict.fromkeys(record_fields(alpaca)) if c in columns]
    if not keep or set(keep) <= {"lang", "domain"}:
        raise UserError(
            f"{name}: dataset has no 'text' column nor another record format's "
            f"(columns: {', '.join(columns)}); it needs {FORMATS_HINT}"
        )
    for row, record in enumerate(ds.select_columns(keep)):
        doc = _record_doc(record, default_domain, f"{name}#{row}", f"{name}: row {row}", alpaca)
        if doc is not None:
            yield doc


def _read_saved_dataset(path: Path, domain: str | None, alpaca: AlpacaConfig) -> Iterator[Document]:
    datasets = _datasets()
    try:
        ds = datasets.load_from_disk(str(path))
    except (OSError, ValueError, FileNotFoundError) as e:
        raise UserError(
            f"{path}: cannot load the saved dataset ({first_line(e)}); save it with Dataset.save_to_disk"
        ) from None
    yield from _read_dataset(ds, str(path), domain or path.name, alpaca)


def _hub_name(spec: str) -> str | None:
    """The hub dataset name `spec` stands for (it does not exist locally), or None."""
    if hub.offline():
        return None
    if spec.startswith(_HUB_PREFIX):
        return spec[len(_HUB_PREFIX) :] or None
    return spec if hub.is_hub_id(spec) and not spec.endswith(_SUFFIXES) else None


def _read_hub(name: str, domain: str | None, alpaca: AlpacaConfig) -> Iterator[Document]:
    datasets = _datasets()
    hub.require_reachable(name, "dataset")  # fail now, not after retries
    try:
        ds = datasets.load_dataset(name, split="train")
    except Exception as e:  # noqa: BLE001 - network, auth and format failures all mean "cannot load"
        raise UserError(
            f"{name}: no such file or directory, and loading it as a hub dataset failed "
            f"({first_line(e)}); check the path or the dataset name"
        ) from None
    yield from _read_dataset(ds, name, domain or name.rsplit("/", 1)[-1], alpaca)


def _read_path(spec: str, domain: str | None, alpaca: AlpacaConfig) -> Iterator[Document]:
    path = Path(spec)
    if not path.exists():
        hub_name = _hub_name(spec)
        if hub_name is not None:
            yield from _read_hub(hub_name, domain, alpaca)
            return
        raise UserError(
            f"{spec}: no such file or directory; pass a {FILE_TYPES} file, a directory "
            "of them, a dataset saved with save_to_disk, or (online) a hub dataset "
            "owner/name or hf:name"
        )
    if _is_saved_dataset(path):
        yield from _read_saved_dataset(path, domain, alpaca)
    elif path.is_dir():
        files = sorted(
            (p for p in path.rglob("*") if p.is_file() and p.suffix in _SUFFIXES),
            key=lambda p: p.relative_to(path).as_posix(),
        )
        for file in files:
            yield from _read_file(file, domain, alpaca)
    else:
        yield from _read_file(path, domain, alpaca)


def _read_file(path: Path, domain: str | None, alpaca: AlpacaConfig) -> Iterator[Document]:
    fmt = FILE_FORMATS.get(path.suffix)
    if fmt is None:
        raise UserError(f"{path}: unsupported corpus file type '{path.suffix}'; use {_FILE_TYPES_OR}")
    yield from fmt.read(path, domain, alpaca)


def read_corpus(
    paths: list[str],
    *,
    require_japanese: bool = False,
    domain: str | None = None,
    alpaca: AlpacaConfig = AlpacaConfig(),
) -> list[Document]:
    """All documents of `paths`, in order (see the module docstring for the formats).

    domain: overrides the per-file default domain (a record's own `domain` field still wins).
    alpaca: the field names of Alpaca-style records (data.alpaca).
    require_japanese: raise UserError when no document has any kana.
    Raises UserError for a missing path, bad bytes / JSON / fields, or an empty corpus.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise UserError(f"corpus: no paths given; pass at least one {FILE_TYPES} file or directory")
    docs: list[Document] = []
    for spec in paths:
        before = len(docs)
        docs.extend(_read_path(str(spec), domain, alpaca))
        if len(docs) == before:
            needs = ", ".join(f"a {suffix} needs {fmt.needs}" for suffix, fmt in FILE_FORMATS.items())
            raise UserError(f"{spec}: no documents found (empty corpus); {needs}, a directory needs {FILE_TYPES} files")
    if require_japanese and not any(has_japanese(d.text) for d in docs):
        names = ", ".join(map(str, paths))
        raise UserError(
            f"{names}: no Japanese characters (hiragana/katakana) in {len(docs)} "
            "documents; a Japanese corpus is expected here — check the file"
        )
    return docs


def corpus_fingerprint(docs: list[Document]) -> str:
    """sha256 hex over every document's (text, lang, domain) and, for a supervised record, its
    segments or messages, in order; `source` is not included."""
    h = sha256()
    for d in docs:
        # JSON encoding of the fields keeps their boundaries unambiguous.
        fields = (
            [d.text, d.lang, d.domain]
            + ([d.segments, d.messages] if d.supervised else [])
            + ([d.split] if d.split is not None else [])
        )
        h.update(json.dumps(fields, ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()
