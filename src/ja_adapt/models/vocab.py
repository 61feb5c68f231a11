"""Vocabulary extension (`vocab.extend=N`): new Japanese tokens for a model's tokenizer, and their rows.

What is learnt: a BPE model (HF `tokenizers`) trained on the training split only (never the
validation or test split, nor an evaluation corpus), with the base tokenizer's own normaliser,
pre-tokeniser and decoder, so its pieces are strings the base tokenizer's pre-tokeniser produces.
Its vocabulary in merge order (frequent pairs merge first) gives the candidates; a candidate is kept
when it decodes to whole characters, all of them Japanese script (hiragana, katakana, kanji:
charclass.py), at least two, occurring at least `vocab.min_frequency` times, and the base tokenizer
cuts it into two or more tokens. The first N become tokens of the run's tokenizer.

Why added tokens and not new BPE merges: a merge must compose two existing pieces, so a learnt
token would need its whole merge chain grafted into the base's ranks; `add_tokens` needs none,
works for every fast tokenizer (byte-level BPE, SentencePiece), is matched before the model's own
pieces (longest first) and is saved in tokenizer.json, so `AutoTokenizer` loads it as it is.

Initialisation: the embedding row of a new token (and its output-head row, when the head is not
tied to the embedding) is the mean of the rows of the pieces the base tokenizer cut its text into,
so that before training the model reads the new token roughly as it read the old pieces.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from ja_adapt.core.charclass import script_of
from ja_adapt.core.errors import UserError
from ja_adapt.core.jsonio import write_json
from ja_adapt.data.pipeline import training_splits
from ja_adapt.models.load import load_tokenizer, tokenizer_for

JAPANESE_SCRIPTS = ("hiragana", "katakana", "kanji")
INIT_RULE = "mean of the embedding (and untied output-head) rows of the base tokenizer's pieces of the token's text"


def _is_japanese_word(text: str) -> bool:
    return len(text) >= 2 and all(script_of(c) in JAPANESE_SCRIPTS for c in text)


def _learner(base_backend: Tokenizer) -> tuple[Tokenizer, list[str]]:
    """An untrained BPE with the base's normaliser, pre-tokeniser and decoder; its initial alphabet
    (the 256 byte symbols when the base pre-tokenises to bytes, so no byte is ever unknown)."""
    learner = Tokenizer(models.BPE())
    learner.normalizer = base_backend.normalizer
    learner.pre_tokenizer = base_backend.pre_tokenizer
    learner.decoder = base_backend.decoder
    byte_level = '"ByteLevel"' in json.dumps(json.loads(base_backend.to_str()).get("pre_tokenizer"))
    return learner, (pre_tokenizers.ByteLevel.alphabet() if byte_level else [])


def learn_tokens(base_tokenizer, texts: list[str], n: int, min_frequency: int = 2) -> list[str]:
    """The first `n` Japanese tokens learnt on `texts` that the base tokenizer lacks (module
    docstring); UserError naming vocab.extend when the text holds fewer."""
    if not getattr(base_tokenizer, "is_fast", False):
        raise UserError(
            f"config: key 'vocab.extend' needs a fast tokenizer (tokenizer.json); "
            f"'{getattr(base_tokenizer, 'name_or_path', '')}' cannot be extended"
        )
    known = set(base_tokenizer.get_vocab())
    size, found = 1024 + 4 * n, []
    for _ in range(4):  # a larger BPE until it yields n candidates (or stops growing)
        learner, alphabet = _learner(base_tokenizer.backend_tokenizer)
        learner.train_from_iterator(
            texts,
            trainers.BpeTrainer(
                vocab_size=size, min_frequency=min_frequency, initial_alphabet=alphabet, show_progress=False
            ),
        )
        found = []
        for piece, _ in sorted(learner.get_vocab().items(), key=lambda kv: kv[1]):  # merge order
            text = learner.decoder.decode([piece]) if learner.decoder is not None else piece
            if text in known or not _is_japanese_word(text) or text in found:
                continue
            if len(base_tokenizer(text, add_special_tokens=False)["input_ids"]) >= 2:
                found.append(text)
        if len(found) >= n or learner.get_vocab_size() < size:
            break
        size *= 2
    if len(found) < n:
        raise UserError(
            f"config: key 'vocab.extend' is {n}, but the training split yields only "
            f"{len(found)} new Japanese tokens occurring {min_frequency}+ times; lower "
            "vocab.extend or vocab.min_frequency, or train on more Japanese text"
        )
    return found[:n]


def extend_tokenizer(base_tokenizer, texts: list[str], n: int, min_frequency: int = 2):
    """A copy of `base_tokenizer` with `n` learnt Japanese tokens added (the base is unchanged)."""
    tokens = learn_tokens(base_tokenizer, texts, n, min_frequency)
    tokenizer = copy.deepcopy(base_tokenizer)
    if tokenizer.add_tokens(tokens) != n:
        raise UserError(
            f"config: key 'vocab.extend': the tokenizer '{base_tokenizer.name_or_path}' "
            "refused some new tokens; it cannot be extended"
        )
    return tokenizer


def new_tokens(tokenizer, base_tokenizer) -> list[tuple[str, int]]:
    """(text, id) of every token `tokenizer` has that `base_tokenizer` lacks, by id."""
    base = set(base_tokenizer.get_vocab())
    return sorted(((t, i) for t, i in tokenizer.get_vocab().items() if t not in base), key=lambda x: x[1])


def fit_rows(model: torch.nn.Module, rows: int) -> None:
    """Grow the embedding (and output head) to `rows` when it has fewer; new rows' values are the
    caller's to set (an adapter's trained rows, or `fit_embeddings`' initialisation)."""
    if model.get_input_embeddings().weight.shape[0] < rows:
        model.resize_token_embeddings(rows, mean_resizing=False)


def fit_embeddings(model: torch.nn.Module, tokenizer, base_tokenizer) -> list[int]:
    """Resize `model` to `tokenizer` and initialise the rows of its new tokens (module docstring);
    returns their ids (empty: nothing new)."""
    added = new_tokens(tokenizer, base_tokenizer)
    if not added:
        return []
    fit_rows(model, len(tokenizer))
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    untied = head.weight if head is not None and head.weight is not emb else None
    with torch.no_grad():
        for text, i in added:
            pieces = base_tokenizer(text, add_special_tokens=False)["input_ids"]
            emb[i] = emb[pieces].mean(0)
            if untied is not None:
                untied[i] = untied[pieces].mean(0)
    return [i for _, i in added]


def trainable_rows(model: torch.nn.Module, ids: list[int]) -> list[int] | dict[str, list[int]]:
    """peft's `trainable_token_indices` for the rows `ids`: a list when the output head is tied to
    the embedding (peft ties the head's rows to it), else the rows of both modules by name."""
    emb, head = model.get_input_embeddings(), model.get_output_embeddings()
    if head is None or head.weight is emb.weight:
        return list(ids)
    names = {m: n for n, m in model.named_modules()}
    return {names[emb]: list(ids), names[head]: list(ids)}


def check_fits(model: torch.nn.Module, tokenizer, where: str) -> None:
    """A tokenizer with more tokens than the model has embedding rows: one line naming `where`."""
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        raise UserError(
            f"{where}: the tokenizer has {len(tokenizer)} tokens but the model's embedding "
            f"has {rows} rows; load the tokenizer saved with these weights"
        )


def record(tokenizer, base_tokenizer, cfg) -> dict:
    """What vocab.json says about a run's extension."""
    added = new_tokens(tokenizer, base_tokenizer)
    return {
        "extend": cfg.vocab.extend,
        "min_frequency": cfg.vocab.min_frequency,
        "base_tokens": len(base_tokenizer),
        "tokens": len(tokenizer),
        "learnt_on": "the training split of data.paths",
        "init": INIT_RULE,
        "added": [{"id": i, "text": t} for t, i in added],
    }


def run_tokenizers(cfg, run_dir: Path | None = None):
    """(the run's tokenizer, the model's own tokenizer when the run's extends it, else None).
    With vocab.extend the extension is learnt on the training split, unless `run_dir` already holds
    it (RUN/tokenizer, written by `save_extension`): a resumed run reads the tokens it trained with."""
    base = tokenizer_for(cfg)
    if not cfg.vocab.extend:
        return base, None
    saved = Path(run_dir) / "tokenizer" if run_dir is not None else None
    if saved is not None and (saved / "tokenizer.json").is_file():
        tokenizer = load_tokenizer(saved)
        if len(new_tokens(tokenizer, base)) != cfg.vocab.extend:
            raise UserError(
                f"{saved}: holds {len(new_tokens(tokenizer, base))} added tokens, but "
                f"vocab.extend is {cfg.vocab.extend}; resume with the config that wrote it"
            )
        return tokenizer, base
    _, splits = training_splits(cfg)
    texts = [d.text for d in splits["train"]]
    return extend_tokenizer(base, texts, cfg.vocab.extend, cfg.vocab.min_frequency), base


def save_extension(run_dir: Path, tokenizer, base_tokenizer, cfg) -> None:
    """RUN/tokenizer (the extended tokenizer) and RUN/vocab.json (what was added, and how)."""
    tokenizer.save_pretrained(str(Path(run_dir) / "tokenizer"))
    write_json(Path(run_dir) / "vocab.json", record(tokenizer, base_tokenizer, cfg))
