"""Scores of generated continuations: BLEU, chrF, degeneration, and their prompt-bootstrap intervals.

docs/metrics.md#generation and #degeneration. BLEU always uses sacrebleu's `ja-mecab` tokenizer
(MeCab word segmentation; 13a would treat a Japanese sentence as one word); chrF is
character-based and needs no segmentation. Scores are on sacrebleu's 0–100 scale, each with its
signature. Degeneration metrics count characters as produced (whitespace included), so a model
that fills its continuation with spaces or one repeated phrase shows it.
"""

from __future__ import annotations

import functools

import numpy as np
from sacrebleu.metrics import BLEU, CHRF

from ja_adapt.evaluate.bootstrap import CONFIDENCE, percentile_interval, replicates

BLEU_TOKENIZER = "ja-mecab"


@functools.cache
def metric(name: str):
    """One sacrebleu metric object per kind for the process: "bleu" (corpus, ja-mecab), "sentence_bleu"
    (effective order) or "chrf". Why shared: sacrebleu's tokenizers cache calls in a class-level
    lru_cache keyed by the instance, which keeps every instance and its MeCab dictionary (~2 MB)
    alive; a metric built per call grew a long-lived process without bound. The objects hold
    configuration only, so sharing them gives the same scores."""
    if name == "chrf":
        return CHRF()
    return BLEU(tokenize=BLEU_TOKENIZER, effective_order=name == "sentence_bleu")


REPEAT_N = 4  # repeated character n-gram rate: n = 4
_MATMUL_ROWS = 128  # bootstrap rows per [rows, prompts] @ [prompts, ngrams] product


def char_ngrams(text: str, n: int) -> list[str]:
    """The character n-grams of one text, in order (none when it is shorter than n)."""
    return [text[i : i + n] for i in range(len(text) - n + 1)]


def repeated_ngrams(text: str, n: int = REPEAT_N) -> tuple[int, int]:
    """(character n-grams that already occurred earlier in the same text, all its n-grams)."""
    seen, repeated = set(), 0
    grams = char_ngrams(text, n)
    for g in grams:
        repeated += g in seen
        seen.add(g)
    return repeated, len(grams)


def repeat_rate(texts: list[str], n: int = REPEAT_N) -> float | None:
    """Σ repeated n-grams / Σ n-grams over texts (texts shorter than n add nothing); None if none."""
    counts = np.array([repeated_ngrams(t, n) for t in texts], dtype=np.float64).reshape(-1, 2)
    return float(counts[:, 0].sum() / counts[:, 1].sum()) if counts[:, 1].sum() else None


def distinct_n(texts: list[str], n: int) -> float | None:
    """Unique character n-grams over all texts / all their character n-grams (n-grams never cross
    from one text into the next); None when the texts have no n-gram."""
    grams = [g for t in texts for g in char_ngrams(t, n)]
    return len(set(grams)) / len(grams) if grams else None


def length_ratio(hypotheses: list[str], references: list[str]) -> float | None:
    """Σ hypothesis characters / Σ reference characters."""
    ref = sum(len(r) for r in references)
    return sum(len(h) for h in hypotheses) / ref if ref else None


def degeneration(texts: list[str]) -> dict:
    return {
        f"repeat_{REPEAT_N}gram_rate": repeat_rate(texts),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
    }


def bleu_chrf(hypotheses: list[str], references: list[str]) -> dict:
    """Corpus BLEU (ja-mecab) with BLEU-1/BLEU-4 precisions, sentence BLEU mean/std, chrF, and the
    degeneration metrics of the hypotheses (with the references' own values as a yardstick)."""
    if not hypotheses:
        return {"n": 0, "skipped": "no prompts (no Japanese document long enough)"}
    bleu = metric("bleu")
    corpus = bleu.corpus_score(hypotheses, [references])
    sent_metric = metric("sentence_bleu")
    sent = np.array([sent_metric.sentence_score(h, [r]).score for h, r in zip(hypotheses, references)])
    chrf = metric("chrf")
    chrf_score = chrf.corpus_score(hypotheses, [references])
    return {
        "n": len(hypotheses),
        "bleu": corpus.score,
        "bleu_1_precision": corpus.precisions[0],
        "bleu_4_precision": corpus.precisions[3],
        "brevity_penalty": corpus.bp,
        "hyp_len": corpus.sys_len,
        "ref_len": corpus.ref_len,
        "bleu_signature": str(bleu.get_signature()),
        "sentence_bleu_mean": float(sent.mean()),
        "sentence_bleu_std": float(sent.std(ddof=1)) if len(sent) > 1 else None,
        "sentence_bleu_signature": str(sent_metric.get_signature()),
        "chrf": chrf_score.score,
        "chrf_signature": str(chrf.get_signature()),
        **degeneration(hypotheses),
        "length_ratio": length_ratio(hypotheses, references),
        "reference": degeneration(references),
    }


def _multiplicities(idx: np.ndarray, units: int) -> np.ndarray:
    """[rows, units]: how often each unit was drawn in each bootstrap row of idx [rows, n]."""
    rows = idx.shape[0]
    flat = (idx + units * np.arange(rows)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * units).reshape(rows, units).astype(np.float64)


def _ngram_table(texts: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n-gram count of each text [T], presence matrix [T, distinct n-grams] as float32)."""
    grams = [char_ngrams(t, n) for t in texts]
    vocab = {g: i for i, g in enumerate(sorted({g for gs in grams for g in gs}))}
    present = np.zeros((len(texts), max(len(vocab), 1)), dtype=np.float32)
    for i, gs in enumerate(grams):
        present[i, [vocab[g] for g in set(gs)]] = 1.0
    return np.array([len(gs) for gs in grams], dtype=np.float64), present


def prompt_replicates(
    hypotheses: list[str], references: list[str], *, resamples: int, seed: int
) -> dict[str, np.ndarray]:
    """Bootstrap replicates over prompts of every generation metric: prompts are resampled with
    replacement and each corpus metric recomputed on the resample from per-prompt sufficient
    statistics (sacrebleu's own, through its score-from-statistics function, as its paired test
    does); a resample draws a prompt as often as it was picked, so distinct-n counts a duplicated
    hypothesis's n-grams twice in the total but once in the unique set."""
    refs = [references]
    bleu, chrf = metric("bleu"), metric("chrf")
    bleu_stats = np.array(bleu._extract_corpus_statistics(hypotheses, refs), dtype=np.float64)
    chrf_stats = np.array(chrf._extract_corpus_statistics(hypotheses, refs), dtype=np.float64)
    sent_metric = metric("sentence_bleu")
    sent = np.array([sent_metric.sentence_score(h, [r]).score for h, r in zip(hypotheses, references)])
    rep = np.array([repeated_ngrams(h) for h in hypotheses], dtype=np.float64)
    lens = np.array([[len(h), len(r)] for h, r in zip(hypotheses, references)], dtype=np.float64)
    tables = {k: _ngram_table(hypotheses, k) for k in (1, 2)}
    names = (
        "bleu",
        "bleu_1_precision",
        "bleu_4_precision",
        "brevity_penalty",
        "chrf",
        "sentence_bleu_mean",
        f"repeat_{REPEAT_N}gram_rate",
        "distinct_1",
        "distinct_2",
        "length_ratio",
    )
    units = len(hypotheses)

    def stat(idx):
        out = np.empty((len(idx), len(names)))
        for lo in range(0, len(idx), _MATMUL_ROWS):
            c = _multiplicities(idx[lo : lo + _MATMUL_ROWS], units)
            block = out[lo : lo + len(c)]
            for r, s in enumerate(c @ bleu_stats):
                score = bleu._compute_score_from_stats(s.tolist())
                block[r, :4] = (score.score, score.precisions[0], score.precisions[3], score.bp)
            block[:, 4] = [chrf._compute_score_from_stats(s.tolist()).score for s in c @ chrf_stats]
            block[:, 5] = c @ sent / c.sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                rs = c @ rep
                block[:, 6] = np.where(rs[:, 1] > 0, rs[:, 0] / rs[:, 1], np.nan)
                for j, k in ((7, 1), (8, 2)):
                    totals, present = tables[k]
                    total = c @ totals
                    unique = ((c.astype(np.float32) @ present) > 0).sum(axis=1)
                    block[:, j] = np.where(total > 0, unique / total, np.nan)
                ls = c @ lens
                block[:, 9] = np.where(ls[:, 1] > 0, ls[:, 0] / ls[:, 1], np.nan)
        return out

    reps = replicates(units, stat, resamples=resamples, seed=seed)
    return {name: reps[:, j] for j, name in enumerate(names)}


def prompt_intervals(
    hypotheses: list[str], references: list[str], *, resamples: int, seed: int, confidence: float = CONFIDENCE
) -> dict[str, dict]:
    """{metric: percentile interval} by bootstrap over prompts (docs/metrics.md#intervals)."""
    if len(hypotheses) < 2:
        return {}
    reps = prompt_replicates(hypotheses, references, resamples=resamples, seed=seed)
    return {
        name: percentile_interval(v, confidence=confidence, requested=resamples, unit="prompt")
        for name, v in reps.items()
    }
