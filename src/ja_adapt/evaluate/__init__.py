"""Japanese-aware evaluation: likelihood (token perplexity, bits per character / byte), per-script
bits and character accuracy, generation (BLEU with ja-mecab, chrF), held-out and cross-domain,
forgetting, complexity buckets, and paired statistics. Definitions: docs/metrics.md.

Entry points: ja_adapt.evaluate.run (evaluate_model, compare_models, write_eval, the CLI) and
ja_adapt.evaluate.likelihood.corpus_likelihood.
"""
