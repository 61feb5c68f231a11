"""Japanese-aware evaluation: likelihood (token perplexity, bits per character / byte, top-1),
per-script bits and character accuracy, generation (BLEU with ja-mecab, chrF, degeneration),
held-out and cross-domain, forgetting, complexity buckets, bootstrap intervals, and paired and
seed-level statistics. Definitions: docs/metrics.md.

Entry points: ja_adapt.evaluate.run (evaluate_model, write_eval), ja_adapt.evaluate.compare
(compare_models), ja_adapt.evaluate.stats.seed_compare and
ja_adapt.evaluate.likelihood.corpus_likelihood. The `ja-adapt eval` command line is apps/cli/evaluate.py.
"""
