"""Token files: a tokenized corpus as one memory-mapped uint32 array, cached on disk.

Layout of a store directory `<cache_dir>/<key>/`:
  tokens.bin       uint32, all documents concatenated, each followed by EOS (when append_eos)
  loss_mask.bin    uint8 per token: 1 = the token carries loss as a target (every token of a text
                   document; a supervised record's completion / assistant tokens, data/records.py)
  doc_offsets.npy  int64 [n_docs + 1]: document i is tokens[doc_offsets[i]:doc_offsets[i + 1]]
  doc_meta.npy     int32 [n_docs, 2]: (lang id, domain id) into meta.json's `langs` / `domains`
  meta.json        format version, fingerprints, counts, eos / pad ids, lang and domain names
`key` = sha256(format version, tokenizer fingerprint, chat template, corpus fingerprint, EOS
setting), so a changed tokenizer or corpus gets a new directory and an unchanged one is reused
without re-tokenizing. A supervised record's pieces (data/records.py `render_segments`) are
tokenized one by one and concatenated, so a prompt has the same tokens in training as when it is
given alone for generation.

The build streams: documents are tokenized in chunks (in a process pool when num_workers > 1,
results kept in order) and appended to tokens.bin as they come, so memory stays flat however
large the token file grows. It writes into a temporary directory that is renamed into place only
when complete, so a killed build never leaves a half cache that looks finished.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from hashlib import sha256
from itertools import chain
from pathlib import Path

import numpy as np

from ja_adapt.core.errors import UserError
from ja_adapt.core.jsonio import write_json
from ja_adapt.data.documents import Document
from ja_adapt.data.records import render_segments
from ja_adapt.data.sources import corpus_fingerprint

FORMAT_VERSION = 2
_CHUNK_DOCS = 256  # documents per tokenization task: big enough to amortize IPC, small for memory


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of the fast tokenizer's full JSON (vocab, merges, normalizer, added tokens), or of
    the sorted vocabulary plus special tokens for a tokenizer without a Rust backend."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        text = backend.to_str()
    else:
        text = json.dumps(
            [sorted(tokenizer.get_vocab().items()), sorted(map(str, getattr(tokenizer, "all_special_tokens", [])))],
            ensure_ascii=False,
        )
    return sha256(text.encode("utf-8")).hexdigest()


@dataclass
class TokenStore:
    """A tokenized corpus on disk. tokens: np.memmap uint32 [n_tokens] (read-only)."""

    path: Path
    tokens: np.ndarray
    doc_offsets: np.ndarray  # int64 [n_docs + 1]
    doc_lang_ids: np.ndarray  # int32 [n_docs], index into lang_names
    doc_domain_ids: np.ndarray  # int32 [n_docs], index into domain_names
    lang_names: list[str]
    domain_names: list[str]
    loss_mask: np.ndarray  # uint8 [n_tokens] (read-only): 1 = carries loss as a target
    eos_id: int | None  # appended after every document, None when append_eos=False
    pad_id: int  # the tokenizer's pad id, else its EOS id (for padding rows)
    meta: dict

    @property
    def n_docs(self) -> int:
        return len(self.doc_offsets) - 1

    @property
    def n_tokens(self) -> int:
        return int(self.doc_offsets[-1])

    @property
    def doc_lengths(self) -> np.ndarray:
        """int64 [n_docs]: tokens per document (EOS included)."""
        return np.diff(self.doc_offsets)

    @property
    def doc_langs(self) -> list[str]:
        """Public API: the language of each document, in store order (meta.json keeps them)."""
        return [self.lang_names[i] for i in self.doc_lang_ids]

    @property
    def doc_domains(self) -> list[str]:
        """Public API: the domain of each document, in store order."""
        return [self.domain_names[i] for i in self.doc_domain_ids]

    def doc_tokens(self, i: int) -> np.ndarray:
        """uint32 [len_i]: the tokens of document i (a view into the memmap)."""
        return self.tokens[self.doc_offsets[i] : self.doc_offsets[i + 1]]

    @classmethod
    def open(cls, path: str | Path) -> TokenStore:
        """Reopen a finished store directory (memory-maps tokens.bin read-only)."""
        path = Path(path)
        try:
            meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"{path}: not a token store ({type(e).__name__}); delete it and rebuild") from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise UserError(
                f"{path}: token store format {meta.get('format_version')}, this version "
                f"reads {FORMAT_VERSION}; delete it and rebuild"
            )
        offsets = np.load(path / "doc_offsets.npy", allow_pickle=False)
        doc_meta = np.load(path / "doc_meta.npy", allow_pickle=False)
        n_tokens = int(offsets[-1])
        if (path / "tokens.bin").stat().st_size != 4 * n_tokens:
            raise UserError(f"{path / 'tokens.bin'}: size does not match meta.json; delete the store and rebuild")
        tokens = np.memmap(path / "tokens.bin", dtype=np.uint32, mode="r", shape=(n_tokens,))
        loss_mask = np.memmap(path / "loss_mask.bin", dtype=np.uint8, mode="r", shape=(n_tokens,))
        return cls(
            path=path,
            tokens=tokens,
            loss_mask=loss_mask,
            doc_offsets=offsets,
            doc_lang_ids=doc_meta[:, 0],
            doc_domain_ids=doc_meta[:, 1],
            lang_names=meta["langs"],
            domain_names=meta["domains"],
            eos_id=meta["eos_id"],
            pad_id=meta["pad_id"],
            meta=meta,
        )


# --- tokenization workers -------------------------------------------------------------------
# Workers rebuild the Rust tokenizer from its JSON string (no pickled Python objects), and both
# the in-process and the pool path call the same `_encode_chunk`, so results never depend on
# num_workers.
_worker_backend = None


def _init_worker(tokenizer_json: str) -> None:
    global _worker_backend
    from tokenizers import Tokenizer  # in the spawned worker process only

    _worker_backend = Tokenizer.from_str(tokenizer_json)


def _encode_chunk(texts: list[str], backend=None, tokenizer=None) -> list[list[int]]:
    """Token ids of each text, no special tokens added (EOS is appended by the caller)."""
    backend = backend if backend is not None else _worker_backend
    if backend is not None:
        return [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]
    return [tokenizer.encode(t, add_special_tokens=False) for t in texts]


def _pool_encode(texts: list[str]) -> list[list[int]]:
    return _encode_chunk(texts)


Layout = list[list[bool]]  # per document of a chunk: the loss flag of each of its pieces


def _chunks(docs: list[Document], tokenizer) -> Iterator[tuple[list[str], Layout]]:
    """Chunks of documents as (their pieces' texts, flat; the pieces' loss flags per document)."""
    for start in range(0, len(docs), _CHUNK_DOCS):
        texts, layout = [], []
        for d in docs[start : start + _CHUNK_DOCS]:
            pieces = render_segments(d, tokenizer)
            texts += [t for t, _ in pieces]
            layout.append([trained for _, trained in pieces])
        yield texts, layout


def _assemble(encoded: list[list[int]], layout: Layout) -> list[tuple[list[int], list[int]]]:
    """(token ids, loss flags) per document from its pieces' encodings."""
    out, i = [], 0
    for flags in layout:
        ids, mask = [], []
        for trained in flags:
            ids += encoded[i]
            mask += [int(trained)] * len(encoded[i])
            i += 1
        out.append((ids, mask))
    return out


def _encoded_chunks(docs: list[Document], tokenizer, num_workers: int) -> Iterator[list[tuple[list[int], list[int]]]]:
    """(token ids, loss flags) per document, chunk by chunk, in order; with num_workers > 1 the
    encoding runs in a process pool."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if num_workers <= 1 or backend is None:  # a Python-only tokenizer cannot be shipped: 1 process
        for texts, layout in _chunks(docs, tokenizer):
            yield _assemble(_encode_chunk(texts, backend, tokenizer), layout)
        return
    # spawn: workers start clean (no forked torch / Rust thread state) and import only this module.
    # A hand-bounded window of futures keeps memory flat (Executor.map would submit every chunk at
    # once), and a worker that dies raises BrokenProcessPool instead of hanging as Pool does.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        num_workers, mp_context=ctx, initializer=_init_worker, initargs=(backend.to_str(),)
    ) as pool:
        window: deque = deque()
        for texts, layout in _chunks(docs, tokenizer):
            window.append((pool.submit(_pool_encode, texts), layout))
            if len(window) >= 2 * num_workers:
                future, done_layout = window.popleft()
                yield _assemble(future.result(), done_layout)
        while window:
            future, done_layout = window.popleft()
            yield _assemble(future.result(), done_layout)


def _store_key(tok_fp: str, template: str | None, data_fp: str, eos_id: int | None) -> str:
    text = json.dumps(
        {"format": FORMAT_VERSION, "tokenizer": tok_fp, "chat_template": template, "data": data_fp, "eos": eos_id}
    )
    return sha256(text.encode()).hexdigest()[:32]


def build_token_store(
    docs: list[Document], tokenizer, cache_dir: Path, *, num_workers: int = 1, append_eos: bool = True
) -> TokenStore:
    """Tokenize `docs` into `<cache_dir>/<key>/` and open it; reuse that directory if it exists.

    Each document becomes its tokens (no BOS / special tokens) followed by EOS when append_eos;
    the EOS carries loss when the document's last piece does (text, a completion).
    """
    if not docs:
        raise UserError("corpus: no documents to tokenize; check the data paths")
    if num_workers < 1:
        raise UserError(f"data.num_workers: must be >= 1, got {num_workers}")
    eos_id = tokenizer.eos_token_id if append_eos else None
    if append_eos and eos_id is None:
        raise UserError(
            "tokenizer: has no eos_token, needed to separate packed documents; use a tokenizer with an EOS token"
        )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise UserError("tokenizer: has neither a pad nor an eos token to pad rows with")
    tok_fp, data_fp = tokenizer_fingerprint(tokenizer), corpus_fingerprint(docs)
    cache_dir = Path(cache_dir)
    template = getattr(tokenizer, "chat_template", None)
    final = cache_dir / _store_key(tok_fp, template if isinstance(template, str) else None, data_fp, eos_id)
    if (final / "meta.json").is_file():
        return TokenStore.open(final)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=cache_dir))
    tmp.chmod(0o755)  # mkdtemp makes it private; the finished cache is an ordinary directory
    try:
        _write_store(
            tmp,
            docs,
            tokenizer,
            num_workers,
            eos_id,
            pad_id,
            {"tokenizer_fingerprint": tok_fp, "corpus_fingerprint": data_fp},
        )
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "meta.json").is_file():  # not a concurrent build that won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return TokenStore.open(final)


def _write_store(
    out: Path, docs: list[Document], tokenizer, num_workers: int, eos_id: int | None, pad_id: int, fingerprints: dict
) -> None:
    offsets = np.zeros(len(docs) + 1, dtype=np.int64)
    langs: dict[str, int] = {}
    domains: dict[str, int] = {}
    doc_meta = np.array(
        [(langs.setdefault(d.lang, len(langs)), domains.setdefault(d.domain, len(domains))) for d in docs],
        dtype=np.int32,
    ).reshape(len(docs), 2)
    suffix = [eos_id] if eos_id is not None else []
    i, total = 0, 0
    with open(out / "tokens.bin", "wb") as f, open(out / "loss_mask.bin", "wb") as fm:
        for encoded in _encoded_chunks(docs, tokenizer, num_workers):
            lengths = np.fromiter((len(ids) + len(suffix) for ids, _ in encoded), dtype=np.int64, count=len(encoded))
            count = int(lengths.sum())
            flat = np.fromiter(chain.from_iterable(ids + suffix for ids, _ in encoded), dtype=np.uint32, count=count)
            # the EOS after a document is learnt as its last piece is: text and completions stop
            mask = np.fromiter(
                chain.from_iterable(m + [m[-1] if m else 1] * len(suffix) for _, m in encoded),
                dtype=np.uint8,
                count=count,
            )
            offsets[i + 1 : i + 1 + len(encoded)] = total + np.cumsum(lengths)
            total += count
            i += len(encoded)
            f.write(flat.tobytes())
            fm.write(mask.tobytes())
    if total == 0:
        raise UserError("corpus: tokenized to zero tokens; check the documents and tokenizer")
    np.save(out / "doc_offsets.npy", offsets, allow_pickle=False)
    np.save(out / "doc_meta.npy", doc_meta, allow_pickle=False)
    meta = {
        "format_version": FORMAT_VERSION,
        **fingerprints,
        "n_docs": len(docs),
        "n_tokens": total,
        "eos_id": eos_id,
        "pad_id": pad_id,
        "vocab_size": len(tokenizer),
        "langs": list(langs),
        "domains": list(domains),
    }
    # meta.json last: its presence is what marks a store complete.
    write_json(out / "meta.json", meta, strict=False)
