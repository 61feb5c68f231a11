"""Japanese continuation: prompts cut from held-out documents, batched greedy decoding, scores.

docs/metrics.md#generation. The continuation is judged as produced: decoded without special tokens
and cut to the reference's character length, nothing stripped or normalised (a model that emits
"、" and 23 spaces is scored on those 24 characters). Scores and intervals: genscores.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

from ja_adapt.core.modes import eval_mode
from ja_adapt.data.documents import Document
from ja_adapt.evaluate.genscores import bleu_chrf, prompt_intervals

MAX_BYTES_PER_CHAR = 4  # UTF-8; each text token of a byte-level tokenizer holds >= 1 byte
INCOMPLETE = "\ufffd"  # what a decoder shows for a character whose bytes are not all there yet


@dataclass
class Prompt:
    prompt: str  # the first prefix_chars characters of a document
    reference: str  # the next ref_chars characters
    source: str  # the document's source, for tracing


@dataclass
class Continuation:
    text: str  # decoded continuation, cut to the reference's character length
    stop: str  # "length" (reached the reference's length), "eos" or "budget"
    new_tokens: int  # tokens generated before the stop


def make_prompts(
    docs: list[Document], n_prompts: int, prefix_chars: int, ref_chars: int, seed: int = 0
) -> list[Prompt]:
    """Up to n_prompts prompts from documents with at least prefix_chars + ref_chars characters.

    Documents are drawn in a seeded permutation of the eligible ones, so two models evaluated on the
    same documents and seed get the same prompts.
    """
    eligible = [d for d in docs if len(d.text.strip()) >= prefix_chars + ref_chars]
    order = np.random.default_rng(seed).permutation(len(eligible))
    out = []
    for i in order[:n_prompts]:
        text = eligible[int(i)].text.strip()
        out.append(Prompt(text[:prefix_chars], text[prefix_chars : prefix_chars + ref_chars], eligible[int(i)].source))
    return out


def decoding_budget(prompts: list[Prompt], cap: int) -> int:
    """New-token budget shared by every prompt (so batching cannot change a result): enough for the
    longest reference whatever tokens the model picks (4 UTF-8 bytes per character at most, >= 1
    byte per text token), capped by eval.gen_max_new_tokens. Decoding of a prompt stops earlier,
    as soon as its continuation reaches the reference's character length."""
    longest = max((len(p.reference) for p in prompts), default=0)
    return max(1, min(cap, MAX_BYTES_PER_CHAR * longest))


def _continuation_text(tokenizer, prompt_ids: list[int], ids: list[int], eos: int | None) -> tuple[str, bool]:
    """(the continuation's text up to the first EOS, whether an EOS ended it).

    Decoded together with the prompt and the prompt's own decoding removed, so a tokenizer that drops
    a leading space when decoding from the start (sentencepiece) keeps the space the model produced;
    special tokens are skipped, spaces are not cleaned up.
    """
    hit = eos is not None and eos in ids
    if hit:
        ids = ids[: ids.index(eos)]
    kw = {"skip_special_tokens": True, "clean_up_tokenization_spaces": False}
    head, full = tokenizer.decode(prompt_ids, **kw), tokenizer.decode(prompt_ids + ids, **kw)
    return (full[len(head) :] if full.startswith(head) else tokenizer.decode(ids, **kw)), hit


def _long_enough(text: str, chars: int) -> bool:
    # A trailing U+FFFD is a character still being spelt in bytes: wait for its remaining tokens.
    return len(text[:-1] if text.endswith(INCOMPLETE) else text) >= chars


class _ReachedReference(StoppingCriteria):
    """Per row: stop once the decoded continuation has the reference's character length."""

    def __init__(self, tokenizer, prompts: list[list[int]], start: int, ref_chars: list[int], eos: int | None):
        self.tokenizer, self.prompts, self.start, self.ref_chars, self.eos = tokenizer, prompts, start, ref_chars, eos

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.BoolTensor:
        done = [
            _long_enough(_continuation_text(self.tokenizer, p, row[self.start :].tolist(), self.eos)[0], n)
            for row, p, n in zip(input_ids, self.prompts, self.ref_chars)
        ]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


@contextlib.contextmanager
def inference(model):
    """The model in eval mode under torch.inference_mode; its training flag is restored after."""
    with eval_mode(model), torch.inference_mode():
        yield


def left_padded(
    seqs: list[list[int]], batch_size: int, pad: int, device
) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor, int]]:
    """Batches of token sequences, grouped by length to keep padding small and left-padded with an
    attention mask: (indices into seqs, input ids [B, W], mask [B, W], W)."""
    order = sorted(range(len(seqs)), key=lambda i: (len(seqs[i]), i))
    for lo in range(0, len(order), batch_size):
        rows = order[lo : lo + batch_size]
        width = max(len(seqs[i]) for i in rows)
        ids = torch.tensor([[pad] * (width - len(seqs[i])) + seqs[i] for i in rows], device=device)
        mask = torch.tensor([[0] * (width - len(seqs[i])) + [1] * len(seqs[i]) for i in rows], device=device)
        yield rows, ids, mask, width


def generate(model, tokenizer, prompts: list[Prompt], max_new_tokens: int, batch_size: int = 16) -> list[Continuation]:
    """Greedy continuations (plain argmax: no sampling, beams or repetition penalty), batched.

    Each prompt is BOS (else EOS) + its tokens, as in the likelihood protocol. Batches are left-padded
    with an attention mask (transformers derives each row's position ids from it, so a padded row
    sees the same positions as alone); prompts are batched by length to keep padding small. Results
    equal one-at-a-time decoding (tested); the order of `prompts` is kept.
    """
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else bos
    device = next(model.parameters()).device
    # Explicit neutral values: transformers fills only unset (None) fields from the checkpoint's own
    # generation_config, so a checkpoint's repetition penalty or n-gram ban cannot slip in.
    gen_cfg = GenerationConfig(
        do_sample=False,
        num_beams=1,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        min_new_tokens=0,
        max_new_tokens=max_new_tokens,
        pad_token_id=pad,
        eos_token_id=eos,
        bos_token_id=bos,
    )
    seqs = [[bos] + tokenizer(p.prompt, add_special_tokens=False)["input_ids"] for p in prompts]
    out: list[Continuation | None] = [None] * len(prompts)
    with inference(model):
        for rows, ids, mask, width in left_padded(seqs, batch_size, pad, device):
            refs = [len(prompts[i].reference) for i in rows]
            stop = StoppingCriteriaList([_ReachedReference(tokenizer, [seqs[i] for i in rows], width, refs, eos)])
            gen = model.generate(input_ids=ids, attention_mask=mask, generation_config=gen_cfg, stopping_criteria=stop)
            for r, i in enumerate(rows):
                out[i] = _finish(tokenizer, seqs[i], gen[r, width:].tolist(), refs[r], eos)
    return out


def _finish(tokenizer, prompt_ids: list[int], new_ids: list[int], ref_chars: int, eos: int | None) -> Continuation:
    text, hit_eos = _continuation_text(tokenizer, prompt_ids, new_ids, eos)
    # rows that stopped early are padded by transformers: count the tokens up to the stop only
    n = new_ids.index(eos) if hit_eos else len(new_ids)
    if _long_enough(text, ref_chars):
        n = next(
            k
            for k in range(1, n + 1)
            if _long_enough(_continuation_text(tokenizer, prompt_ids, new_ids[:k], eos)[0], ref_chars)
        )
        reason = "length"
    else:
        reason = "eos" if hit_eos else "budget"
    return Continuation(text[:ref_chars], reason, n)


def evaluate_generation(
    model,
    tokenizer,
    docs: list[Document],
    *,
    n_prompts: int,
    prefix_chars: int,
    ref_chars: int,
    max_new_tokens: int,
    seed: int = 0,
    batch_size: int = 16,
    resamples: int = 1000,
) -> dict:
    """Prompts, greedy continuations, their scores with prompt-bootstrap intervals, and the samples
    (kept for paired tests between models)."""
    prompts = make_prompts(docs, n_prompts, prefix_chars, ref_chars, seed)
    budget = decoding_budget(prompts, max_new_tokens)
    conts = generate(model, tokenizer, prompts, budget, batch_size) if prompts else []
    hyps, refs = [c.text for c in conts], [p.reference for p in prompts]
    out = bleu_chrf(hyps, refs)
    for name, ci in prompt_intervals(hyps, refs, resamples=resamples, seed=seed).items():
        out[f"{name}_ci"] = ci
    out["decoding"] = {
        "greedy": True,
        "max_new_tokens": budget,
        "cap": max_new_tokens,
        "batch_size": batch_size,
        "stopped": {k: sum(c.stop == k for c in conts) for k in ("length", "eos", "budget")},
        "short_hypotheses": sum(len(h) < len(r) for h, r in zip(hyps, refs)),
    }
    out["samples"] = [
        {
            "source": p.source,
            "prompt": p.prompt,
            "reference": p.reference,
            "hypothesis": c.text,
            "stop": c.stop,
            "new_tokens": c.new_tokens,
        }
        for p, c in zip(prompts, conts)
    ]
    return out
