"""Supervised evaluation: held-out prompt→completion and chat examples, per domain.

docs/metrics.md#supervised. Each example is a prompt and its reference response:
  prompt→completion   the prompt as written; the reference is the completion
  messages            the conversation up to its last assistant turn, rendered by the chat template
                      with its generation prompt; the reference is that turn's content
The model sees what training showed it: EOS (the separator before every packed document, or BOS
when the tokenizer has one) + the prompt's tokens. Responses are decoded greedily by default
(eval.sft_do_sample turns on sampling with eval.sft_temperature / sft_top_p, seeded with eval.seed
plus the batch's first row for each batch) and stop at the first stop token: EOS, and the template's end-of-turn token
(`<|im_end|>`) when there is one. Scores: BLEU (ja-mecab) and chrF with signatures
(genscores.bleu_chrf), exact match (the response equals the reference after stripping surrounding
whitespace), and the teacher-forced response bits/char: the NLL of the reference's tokens and its
stop token given the prompt, in bits, over the reference's characters. Intervals: bootstrap over
examples. The generated samples are kept, for paired tests between models (compare.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from transformers import GenerationConfig

from ja_adapt.data.documents import Document
from ja_adapt.data.packing import IGNORE
from ja_adapt.data.records import chat_prompt, end_of_turn
from ja_adapt.evaluate.bootstrap import percentile_interval, ratio_interval, replicates
from ja_adapt.evaluate.generation import inference, left_padded
from ja_adapt.evaluate.genscores import bleu_chrf, prompt_intervals
from ja_adapt.train.loss import token_nll

DEFINITION = "docs/metrics.md#supervised"


@dataclass
class Example:
    prompt: str  # the text the model continues
    reference: str  # the response it should produce
    domain: str
    source: str
    stop: str = ""  # the token training put after the response: EOS, or the chat's end of turn


def examples_of(docs: list[Document], tokenizer) -> list[Example]:
    """The evaluation example of each supervised document (text documents are skipped)."""
    out = []
    for d in docs:
        if d.segments:
            cut = max(i for i, (_, trained) in enumerate(d.segments) if trained)
            out.append(
                Example(
                    "".join(t for t, _ in d.segments[:cut]), d.segments[cut][0], d.domain, d.source, tokenizer.eos_token
                )
            )
        elif d.messages:
            last = max(i for i, (role, _) in enumerate(d.messages) if role == "assistant")
            out.append(
                Example(
                    chat_prompt(tokenizer, d.messages[:last], d.source or "messages"),
                    d.messages[last][1],
                    d.domain,
                    d.source,
                    end_of_turn(tokenizer),
                )
            )
    return out


def stop_ids(tokenizer) -> list[int]:
    """Token ids that end a response: EOS and the chat template's end-of-turn token."""
    ids = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(end_of_turn(tokenizer))]
    return list(dict.fromkeys(i for i in ids if i is not None))


def _start_id(tokenizer) -> int:
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def generate_responses(
    model,
    tokenizer,
    examples: list[Example],
    *,
    max_new_tokens: int,
    batch_size: int = 16,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
) -> list[dict]:
    """{"text", "stop", "new_tokens"} per example, in order: decoded up to the first stop token
    (special tokens skipped), left-padded batches of similar lengths (greedy results do not depend
    on the batching; sampled ones depend on it and on the seed)."""
    stops = stop_ids(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    device = next(model.parameters()).device
    gen_cfg = GenerationConfig(
        do_sample=do_sample,
        num_beams=1,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        min_new_tokens=0,
        max_new_tokens=max_new_tokens,
        pad_token_id=pad,
        eos_token_id=stops,
        **({"temperature": temperature, "top_p": top_p, "top_k": 0} if do_sample else {}),
    )
    seqs = [[_start_id(tokenizer)] + _encode(tokenizer, e.prompt) for e in examples]
    out: list[dict | None] = [None] * len(seqs)
    with inference(model):
        for b, (rows, ids, mask, width) in enumerate(left_padded(seqs, batch_size, pad, device)):
            if do_sample:
                torch.manual_seed(seed + b * batch_size)
            gen = model.generate(input_ids=ids, attention_mask=mask, generation_config=gen_cfg)
            for r, i in enumerate(rows):
                new = gen[r, width:].tolist()
                cut = next((k for k, t in enumerate(new) if t in stops), None)
                kept = new if cut is None else new[:cut]
                out[i] = {
                    "text": tokenizer.decode(kept, skip_special_tokens=True, clean_up_tokenization_spaces=False),
                    "stop": "budget" if cut is None else "stop_token",
                    "new_tokens": len(kept),
                }
    return out


def response_nll(model, tokenizer, examples: list[Example], *, batch_size: int = 8) -> list[float]:
    """Teacher-forced NLL in nats of each reference's tokens and its stop token (the one training
    put after it: EOS after a completion, the end-of-turn token after an assistant turn), given the
    prompt."""
    device = next(model.parameters()).device
    rows = []
    for e in examples:
        prompt = [_start_id(tokenizer)] + _encode(tokenizer, e.prompt)
        stop = tokenizer.convert_tokens_to_ids(e.stop or tokenizer.eos_token)
        rows.append((prompt + _encode(tokenizer, e.reference) + [stop], len(prompt)))
    out = []
    with inference(model):
        for lo in range(0, len(rows), batch_size):
            part = rows[lo : lo + batch_size]
            width = max(len(ids) for ids, _ in part)
            input_ids = torch.full((len(part), width), tokenizer.eos_token_id, dtype=torch.long)
            targets = torch.full((len(part), width), IGNORE, dtype=torch.long)
            for r, (ids, n_prompt) in enumerate(part):
                input_ids[r, : len(ids)] = torch.tensor(ids)
                # position j predicts token j + 1: targets are the response tokens and the stop
                targets[r, n_prompt - 1 : len(ids) - 1] = torch.tensor(ids[n_prompt:])
            # right padding comes after every real token, so causal attention never sees it
            batch = {
                "input_ids": input_ids.to(device),
                "targets": targets.to(device),
                "position_ids": torch.arange(width).expand(len(part), width).to(device),
            }
            out += token_nll(model, batch).sum(-1).tolist()
    return out


def _scores(samples: list[dict], *, resamples: int, seed: int) -> dict:
    hyps, refs = [s["hypothesis"] for s in samples], [s["reference"] for s in samples]
    out = {k: v for k, v in bleu_chrf(hyps, refs).items() if k != "reference"}
    for name, ci in prompt_intervals(hyps, refs, resamples=resamples, seed=seed).items():
        if name in ("bleu", "chrf"):
            out[f"{name}_ci"] = {**ci, "unit": "example"}
    exact = np.array([s["exact_match"] for s in samples], dtype=np.float64)
    out["exact_match"] = float(exact.mean())
    if len(samples) > 1:
        reps = replicates(len(exact), lambda idx: exact[idx].mean(axis=1), resamples=resamples, seed=seed)
        out["exact_match_ci"] = percentile_interval(reps, requested=resamples, unit="example")
    nll = np.array([s["nll"] for s in samples]) / math.log(2)
    chars = np.array([s["chars"] for s in samples], dtype=np.float64)
    out["response_bits_per_char"] = float(nll.sum() / chars.sum()) if chars.sum() else None
    if len(samples) > 1:
        out["response_bits_per_char_ci"] = {
            **ratio_interval(nll, chars, resamples=resamples, seed=seed),
            "unit": "example",
        }
    return out


def exact_match(hypothesis: str, reference: str) -> bool:
    return hypothesis.strip() == reference.strip()


def evaluate_supervised(model, tokenizer, docs: list[Document], cfg) -> dict:
    """The `supervised` section of eval.json: per domain and overall (cfg: EvalConfig)."""
    if not cfg.supervised:
        return {"definition": DEFINITION, "n": 0, "skipped": "eval.supervised = false"}
    examples = examples_of(docs, tokenizer)
    if cfg.sft_examples:
        examples = [
            examples[int(i)]
            for i in sorted(np.random.default_rng(cfg.seed).permutation(len(examples))[: cfg.sft_examples])
        ]
    if not examples:
        return {"definition": DEFINITION, "n": 0, "skipped": "no supervised examples"}
    gen = generate_responses(
        model,
        tokenizer,
        examples,
        max_new_tokens=cfg.sft_max_new_tokens,
        batch_size=cfg.gen_batch_size,
        do_sample=cfg.sft_do_sample,
        temperature=cfg.sft_temperature,
        top_p=cfg.sft_top_p,
        seed=cfg.seed,
    )
    nll = response_nll(model, tokenizer, examples, batch_size=cfg.batch_size)
    samples = [
        {
            "domain": e.domain,
            "source": e.source,
            "prompt": e.prompt,
            "reference": e.reference,
            "hypothesis": g["text"],
            "exact_match": exact_match(g["text"], e.reference),
            "stop": g["stop"],
            "new_tokens": g["new_tokens"],
            "nll": n,
            "chars": len(e.reference),
        }
        for e, g, n in zip(examples, gen, nll)
    ]
    kw = {"resamples": cfg.bootstrap_resamples, "seed": cfg.seed}
    domains = sorted({s["domain"] for s in samples})
    return {
        "definition": DEFINITION,
        "scale": "0-100 (sacrebleu); exact match and bits/char as ratios",
        "decoding": {
            "do_sample": cfg.sft_do_sample,
            "temperature": cfg.sft_temperature,
            "top_p": cfg.sft_top_p,
            "seed": cfg.seed,
            "max_new_tokens": cfg.sft_max_new_tokens,
            "stop_tokens": tokenizer.convert_ids_to_tokens(stop_ids(tokenizer)),
        },
        "n": len(samples),
        "overall": _scores(samples, **kw),
        "by_domain": {d: _scores([s for s in samples if s["domain"] == d], **kw) for d in domains},
        "samples": samples,
    }
