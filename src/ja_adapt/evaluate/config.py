"""Evaluation settings: the `eval.*` keys of an experiment config."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ja_adapt.errors import UserError
from ja_adapt.evaluate import buckets as bk


@dataclass
class EvalConfig:
    max_length: int = 256             # tokens per likelihood window
    stride: int = 128                 # tokens between window starts; later windows give >= max_length-stride context
    batch_size: int = 8               # windows per forward pass
    chunk_size: int = 0               # rows per fp32 logits chunk (0 = all at once); bounds [rows, vocab] memory
    gen_prompts: int = 32             # generation prompts cut from Japanese documents (0 = skip generation)
    gen_prefix_chars: int = 64        # prompt: the first this many characters of a document
    gen_ref_chars: int = 64           # reference: the next this many characters
    gen_max_new_tokens: int = 64      # greedy decoding budget in tokens
    bootstrap_resamples: int = 1000   # paired-bootstrap resamples (per-document CI and sacrebleu)
    seed: int = 0                     # prompt selection and bootstrap seed
    target_lang: str = "ja"           # the adapted language: scripts, generation, buckets
    forgetting_langs: list[str] = field(default_factory=lambda: ["en", "zh"])  # languages for retention
    bucket_long_chars: int = 40       # complexity rule: "long" sentence length in characters
    bucket_min_commas: int = 2        # complexity rule: 、/， count for "clause-rich"
    bucket_kanji_ratio: float = 0.4   # complexity rule: kanji share for "kanji-dense"
    bucket_min_criteria: int = 2      # complexity rule: criteria met for "complex"

    def check(self) -> None:
        """Raise UserError naming the first invalid key."""
        for key in ("max_length", "batch_size", "bootstrap_resamples", "bucket_min_criteria"):
            if getattr(self, key) < 1:
                raise UserError(f"eval.{key}: must be >= 1 (got {getattr(self, key)})")
        if not 1 <= self.stride < self.max_length:
            raise UserError(f"eval.stride: must be in 1..max_length-1 (got {self.stride} with "
                            f"max_length {self.max_length}); otherwise tokens would go unscored")
        for key in ("chunk_size", "gen_prompts", "gen_prefix_chars", "gen_ref_chars", "gen_max_new_tokens"):
            if getattr(self, key) < 0:
                raise UserError(f"eval.{key}: must be >= 0 (got {getattr(self, key)})")
        if self.gen_prompts and min(self.gen_prefix_chars, self.gen_ref_chars, self.gen_max_new_tokens) < 1:
            raise UserError("eval.gen_prefix_chars / gen_ref_chars / gen_max_new_tokens: must be >= 1 "
                            "when eval.gen_prompts > 0")
        if not 0 < self.bucket_kanji_ratio <= 1:
            raise UserError(f"eval.bucket_kanji_ratio: must be in (0, 1] (got {self.bucket_kanji_ratio})")

    def light(self) -> "EvalConfig":
        """Likelihood only (no generation): for per-checkpoint curves."""
        return dataclasses.replace(self, gen_prompts=0)

    def buckets(self) -> bk.BucketConfig:
        return bk.BucketConfig(self.bucket_long_chars, self.bucket_min_commas, self.bucket_kanji_ratio,
                               self.bucket_min_criteria)
