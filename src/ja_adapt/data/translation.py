"""English→Japanese translation pairs from installed message catalogs, split by the English source.

Mercurial's Japanese catalog (hg.mo) and JupyterLab's Japanese language pack carry real,
human-translated msgid → msgstr pairs. A pair is kept when both sides are non-empty, differ, and
the Japanese side has kana (a few msgstrs are untranslated English). Format placeholders (`%s`,
`{0}`, `%1`) are kept as they are: a translation must carry them over. A gettext context
(`ctx\\x04msgid`) is dropped from the English side; surrounding whitespace is stripped from both.
Plural entries contribute their singular form. A repeated English source keeps its first pair.

The split is by a hash of the English source (`splits.doc_hash_unit` with its own salt), so a pair
never moves when other pairs are added, and one English string never sits on two sides of it.
`held_out_japanese` gives the Japanese sides of the evaluation pairs; any training text that
contains one of them must be decontaminated (the continued-pretraining corpus uses these very
catalogs' Japanese sides): `drop_held_out` removes them from text documents unit by unit.
"""

from __future__ import annotations

import dataclasses
import gettext
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ja_adapt.core.charclass import KANA
from ja_adapt.data.dedup import DedupConfig, find_contaminated, ngrams, normalize
from ja_adapt.data.documents import Document
from ja_adapt.data.splits import doc_hash_unit

SALT = "ja-adapt-translation"

# name → (import name of the package, catalog folder inside it)
CATALOGS: dict[str, tuple[str, str]] = {
    "mercurial": ("mercurial", "locale/ja/LC_MESSAGES"),
    "jupyterlab": ("jupyterlab_language_pack_ja_JP", "locale/ja_JP/LC_MESSAGES"),
}


@dataclass(frozen=True)
class TranslationPair:
    en: str  # the English source (msgid)
    ja: str  # its human translation (msgstr)
    catalog: str  # a CATALOGS key


def _catalog_files(name: str) -> list[Path]:
    module, rel = CATALOGS[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted((Path(next(iter(spec.submodule_search_locations))) / rel).glob("*.mo"))


def _pairs_of(catalog: dict, name: str) -> list[TranslationPair]:
    """The kept pairs of one parsed catalog (stdlib gettext's `_catalog`: msgid → msgstr, plural
    entries keyed (msgid, n)), in msgid order so the result does not depend on dict order."""
    out = []
    for key in sorted(catalog, key=lambda k: k if isinstance(k, tuple) else (k, -1)):
        msgid, form = key if isinstance(key, tuple) else (key, 0)
        value = catalog[key]
        if form != 0 or not isinstance(value, str) or not isinstance(msgid, str):
            continue
        en = msgid.rsplit("\x04", 1)[-1].strip()
        ja = value.strip()
        if en and ja and en != ja and KANA.search(ja):
            out.append(TranslationPair(en, ja, name))
    return out


def catalog_pairs(names: Iterable[str] = tuple(CATALOGS), *, max_chars: int | None = None) -> list[TranslationPair]:
    """Every kept pair of the named catalogs (a catalog whose package is absent gives none).

    `max_chars` drops pairs whose English or Japanese side is longer (help paragraphs run to
    thousands of characters; a short-context model translates strings). Deterministic order.
    """
    seen: set[str] = set()
    pairs: list[TranslationPair] = []
    for name in names:
        for f in _catalog_files(name):
            with f.open("rb") as fp:
                catalog = gettext.GNUTranslations(fp)._catalog  # stdlib parser; long-stable attribute
            for p in _pairs_of(catalog, name):
                if p.en in seen or (max_chars is not None and max(len(p.en), len(p.ja)) > max_chars):
                    continue
                seen.add(p.en)
                pairs.append(p)
    return pairs


def split_of(pair: TranslationPair, val_fraction: float = 0.05, test_fraction: float = 0.1) -> str:
    """'val', 'test' or 'train', by the hash of the English source alone."""
    u = doc_hash_unit(pair.en, SALT)
    if u < val_fraction:
        return "val"
    if u >= 1 - test_fraction:
        return "test"
    return "train"


def split_pairs(
    pairs: Iterable[TranslationPair], val_fraction: float = 0.05, test_fraction: float = 0.1
) -> dict[str, list[TranslationPair]]:
    """{"train", "val", "test"} → pairs, each in input order."""
    out: dict[str, list[TranslationPair]] = {"train": [], "val": [], "test": []}
    for p in pairs:
        out[split_of(p, val_fraction, test_fraction)].append(p)
    return out


def held_out_japanese(
    val_fraction: float = 0.05, test_fraction: float = 0.1, names: Iterable[str] = tuple(CATALOGS)
) -> set[str]:
    """The Japanese sides of every non-train pair (any length): text no training set may contain."""
    return {p.ja for p in catalog_pairs(names) if split_of(p, val_fraction, test_fraction) != "train"}


PROMPT_TEMPLATE = "Translate into Japanese:\n{en}\n"


def prompt_completion(pair: TranslationPair) -> dict[str, str]:
    """The pair as a TRL prompt→completion record."""
    return {"prompt": PROMPT_TEMPLATE.format(en=pair.en), "completion": pair.ja}


def drop_held_out(
    docs: list[Document], held_out: Iterable[str], *, joiner: str = "\n\n", config: DedupConfig | None = None
) -> tuple[list[Document], dict]:
    """(docs without the units that hold a held-out Japanese side, report).

    A unit is a `joiner`-separated piece of a document (one catalog message in the .mo corpora of
    data/corpora.py). A unit is removed when, once normalised (data/dedup.py), it equals a held-out
    side, or when a held-out side is contained in it by the decontamination rule of data/dedup.py
    (the share of the side's character n-grams found in the unit reaches the threshold). A side
    shorter than the n-gram length can only be matched exactly. Documents left without units are
    dropped; the others keep their fields, with the remaining units joined again.
    """
    cfg = config or DedupConfig()
    sides = sorted(set(held_out))
    exact = {normalize(x) for x in sides}
    judged = [Document(x) for x in sides if ngrams(x, cfg.ngram)]
    units = [(i, u) for i, d in enumerate(docs) for u in d.text.split(joiner)]
    dropped = {k for k, (_, u) in enumerate(units) if normalize(u) in exact}
    while judged:
        # find_contaminated names one unit per side (the one sharing the most n-grams): drop it and
        # look again, until no unit holds any side
        alive = [k for k in range(len(units)) if k not in dropped]
        matches = find_contaminated(judged, [Document(units[k][1]) for k in alive], cfg)
        if not matches:
            break
        dropped |= {alive[m.train_index] for m in matches}
    kept: dict[int, list[str]] = {}
    for k, (i, u) in enumerate(units):
        if k not in dropped:
            kept.setdefault(i, []).append(u)
    out = [
        dataclasses.replace(d, text=joiner.join(kept[i]))
        for i, d in enumerate(docs)
        if i in kept and joiner.join(kept[i]).strip()
    ]
    report = {
        "held_out_sides": len(sides),
        "units": len(units),
        "removed_units": len(dropped),
        "removed_chars": sum(len(units[k][1]) for k in dropped),
        "docs": len(docs),
        "kept_docs": len(out),
        "rule": f"unit equal to a held-out side (normalised), or containing one at "
        f">= {cfg.threshold} of its {cfg.ngram}-grams",
    }
    return out, report


def multiple_choice_items(pairs: list[TranslationPair], n_choices: int = 4) -> list[dict]:
    """Multiple-choice items {"en", "choices", "label", "catalog"}: each pair's English source with
    its own translation among n_choices, the others the translations of the pairs nearest to it in
    Japanese length (ties: English source order), so length alone does not give the answer away.
    The answer's position comes from a hash of the English source (stable as pairs are added).
    Distractors equal to the answer are skipped. Pairs in input order; fewer than n_choices
    distinct translations give no items."""
    if len({p.ja for p in pairs}) < n_choices:
        return []
    by_length = sorted(pairs, key=lambda p: (len(p.ja), p.en))
    rank = {p.en: i for i, p in enumerate(by_length)}
    items = []
    for p in pairs:
        i, distractors, step = rank[p.en], [], 1
        while len(distractors) < n_choices - 1:  # nearest in length: alternate below and above
            for j in (i - step, i + step):
                if 0 <= j < len(by_length) and len(distractors) < n_choices - 1:
                    ja = by_length[j].ja
                    if ja != p.ja and ja not in distractors:
                        distractors.append(ja)
            step += 1
        label = int(doc_hash_unit(p.en, SALT + "-choice") * n_choices)
        choices = distractors[:label] + [p.ja] + distractors[label:]
        items.append({"en": p.en, "choices": choices, "label": label, "catalog": p.catalog})
    return items
