"""Japanese continuation: prompts cut from held-out documents, greedy decoding, BLEU and chrF.

docs/metrics.md#generation. BLEU always uses sacrebleu's `ja-mecab` tokenizer (MeCab word
segmentation; 13a would treat a Japanese sentence as one word); chrF is character-based and needs
no segmentation. Scores are on sacrebleu's 0–100 scale; each result carries its signature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sacrebleu.metrics import BLEU, CHRF

from ja_adapt.data.documents import Document

BLEU_TOKENIZER = "ja-mecab"


@dataclass
class Prompt:
    prompt: str       # the first prefix_chars characters of a document
    reference: str    # the next ref_chars characters
    source: str       # the document's source, for tracing


def make_prompts(docs: list[Document], n_prompts: int, prefix_chars: int, ref_chars: int,
                 seed: int = 0) -> list[Prompt]:
    """Up to n_prompts prompts from documents with at least prefix_chars + ref_chars characters.

    Documents are drawn in a seeded permutation of the eligible ones, so two models evaluated on the
    same documents and seed get the same prompts.
    """
    eligible = [d for d in docs if len(d.text.strip()) >= prefix_chars + ref_chars]
    order = np.random.default_rng(seed).permutation(len(eligible))
    out = []
    for i in order[:n_prompts]:
        text = eligible[int(i)].text.strip()
        out.append(Prompt(text[:prefix_chars], text[prefix_chars:prefix_chars + ref_chars],
                          eligible[int(i)].source))
    return out


def generate(model, tokenizer, prompts: list[Prompt], max_new_tokens: int) -> list[str]:
    """Greedy continuations, one prompt at a time (no padding, so results don't depend on batching).

    Each prompt is BOS (else EOS) + its tokens, as in the likelihood protocol; the continuation is
    decoded without special tokens and cut to the reference's character length (docs/metrics.md).
    """
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    hyps = []
    try:
        with torch.inference_mode():
            for p in prompts:
                ids = [bos] + tokenizer(p.prompt, add_special_tokens=False)["input_ids"]
                x = torch.tensor([ids], device=device)
                out = model.generate(input_ids=x, attention_mask=torch.ones_like(x),
                                     max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=tokenizer.eos_token_id,
                                     eos_token_id=tokenizer.eos_token_id)
                text = tokenizer.decode(out[0, len(ids):].tolist(), skip_special_tokens=True)
                hyps.append(text.strip()[:len(p.reference)])
    finally:
        model.train(was_training)
    return hyps


def bleu_chrf(hypotheses: list[str], references: list[str]) -> dict:
    """Corpus BLEU (ja-mecab) with BLEU-1/BLEU-4 precisions, sentence BLEU mean/std, chrF."""
    if not hypotheses:
        return {"n": 0, "skipped": "no prompts (no Japanese document long enough)"}
    bleu = BLEU(tokenize=BLEU_TOKENIZER)
    corpus = bleu.corpus_score(hypotheses, [references])
    sent_metric = BLEU(tokenize=BLEU_TOKENIZER, effective_order=True)
    sent = np.array([sent_metric.sentence_score(h, [r]).score for h, r in zip(hypotheses, references)])
    chrf = CHRF()
    chrf_score = chrf.corpus_score(hypotheses, [references])
    return {
        "n": len(hypotheses),
        "bleu": corpus.score, "bleu_1_precision": corpus.precisions[0],
        "bleu_4_precision": corpus.precisions[3], "brevity_penalty": corpus.bp,
        "hyp_len": corpus.sys_len, "ref_len": corpus.ref_len,
        "bleu_signature": str(bleu.get_signature()),
        "sentence_bleu_mean": float(sent.mean()),
        "sentence_bleu_std": float(sent.std(ddof=1)) if len(sent) > 1 else None,
        "sentence_bleu_signature": str(sent_metric.get_signature()),
        "chrf": chrf_score.score, "chrf_signature": str(chrf.get_signature()),
    }


def evaluate_generation(model, tokenizer, docs: list[Document], *, n_prompts: int, prefix_chars: int,
                        ref_chars: int, max_new_tokens: int, seed: int = 0) -> dict:
    """Prompts, greedy continuations and their scores; samples kept for paired bootstrap tests."""
    prompts = make_prompts(docs, n_prompts, prefix_chars, ref_chars, seed)
    hyps = generate(model, tokenizer, prompts, max_new_tokens)
    out = bleu_chrf(hyps, [p.reference for p in prompts])
    out["samples"] = [{"source": p.source, "prompt": p.prompt, "reference": p.reference,
                       "hypothesis": h} for p, h in zip(prompts, hyps)]
    return out
