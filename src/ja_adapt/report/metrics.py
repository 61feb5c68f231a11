"""The metric registry: every metric the report compares, defined once.

A Metric says what a flat key is (its readable name, direction and unit), where its value and its
bootstrap interval sit in eval.json (or summary.json), and which question of the headline tests it.
The evaluation summary (quality.quality), the headline (sections/headline.py), the trade-off table,
the methods table and results.json's definitions all read it. Adding a metric already computed in
eval.json is one entry here (and the schema, where results.json gains a key).
"""

from __future__ import annotations

from dataclasses import dataclass

from ja_adapt.core.charclass import SCRIPTS

# The headline's questions (Holm families), in the order the summary answers them, with their words.
QUESTIONS = {
    "japanese_quality": "Japanese quality",
    "forgetting": "forgetting of English and Chinese",
    "supervised_task": "the supervised task (held-out responses)",
    "cost": "cost",
}


@dataclass(frozen=True)
class Metric:
    key: str  # flat key: quality.quality(eval.json) or summary.json
    name: str  # readable name in the headline
    lower_is_better: bool
    unit: str = "num"  # how values print: fmt.UNITS (num, bytes, seconds, count)
    eval_path: tuple = ()  # where the value sits in eval.json (summary.json for source "summary")
    ci_path: tuple = ()  # where its 95% bootstrap interval sits (empty: none)
    question: str | None = None  # the headline question testing it (QUESTIONS); None: not in the headline
    source: str = "quality"  # quality (eval.json, per seed) or summary (summary.json)
    reference: str | None = None  # its name in the trade-off table and the definitions; None: not there
    lead: int | None = None  # named (1st, 2nd) in the summary when its question resolves nothing

    @property
    def direction(self) -> str:
        return "lower" if self.lower_is_better else "higher"


_HELD = ("domains", "held_out")


def _script(s: str) -> Metric:
    name = "character accuracy (all scripts)" if s == "overall" else f"{s} accuracy"
    path = ("scripts", "overall", s)
    return Metric(
        f"char_accuracy_{s}",
        name,
        False,
        eval_path=(*path, "char_accuracy"),
        ci_path=(*path, "char_accuracy_ci"),
        question="japanese_quality",
        reference=name if s == "overall" else f"{s} character accuracy",
    )


def _sft(key: str, name: str, lower: bool, reference: str, lead: int | None = None) -> Metric:
    path = ("supervised", "overall")
    return Metric(
        f"sft_{key}",
        name,
        lower,
        eval_path=(*path, key),
        ci_path=(*path, f"{key}_ci"),
        question="supervised_task",
        reference=reference,
        lead=lead,
    )


def _forgetting(lang: str, word: str, lead: int) -> tuple[Metric, Metric]:
    path = ("forgetting", "by_lang", lang)
    return (
        Metric(
            f"{lang}_retention",
            f"{word} retention",
            False,
            eval_path=(*path, "retention"),
            reference=f"{word} retention (base bpb / adapted bpb)",
        ),
        Metric(
            f"{lang}_bpb_increase",
            f"{word} bits/byte increase over the base",
            True,
            eval_path=(*path, "bpb_increase"),
            question="forgetting",
            lead=lead,
        ),
    )


def _summary(key: str, name: str, lower: bool, unit: str = "num", lead: int | None = None) -> Metric:
    return Metric(key, name, lower, unit, eval_path=(key,), question="cost", source="summary", lead=lead)


# In the headline's order (its rows, question by question).
METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric(
            "ja_bits_per_char",
            "Japanese held-out bits/char",
            True,
            eval_path=(*_HELD, "bits_per_char"),
            ci_path=(*_HELD, "bits_per_char_ci"),
            question="japanese_quality",
            reference="Japanese held-out bits/char",
            lead=1,
        ),
        Metric(
            "ja_bits_per_byte",
            "Japanese held-out bits/byte",
            True,
            eval_path=(*_HELD, "bits_per_byte"),
            reference="Japanese held-out bits/byte",
        ),
        Metric(
            "ja_token_ppl",
            "Japanese held-out token perplexity",
            True,
            eval_path=(*_HELD, "token_ppl"),
            reference="Japanese held-out token perplexity",
        ),
        Metric(
            "cross_domain_bits_per_char",
            "cross-domain Japanese bits/char",
            True,
            eval_path=("domains", "cross_domain_mean_bits_per_char"),
            question="japanese_quality",
            reference="cross-domain Japanese bits/char (mean over domains)",
        ),
        *(_script(s) for s in ("overall", *(s for s in SCRIPTS if s != "other"))),
        Metric(
            "chrf",
            "chrF (continuations)",
            False,
            eval_path=("generation", "chrf"),
            ci_path=("generation", "chrf_ci"),
            question="japanese_quality",
            reference="continuation chrF",
        ),
        Metric(
            "bleu",
            "BLEU (continuations, ja-mecab)",
            False,
            eval_path=("generation", "bleu"),
            ci_path=("generation", "bleu_ci"),
            question="japanese_quality",
            reference="continuation BLEU (ja-mecab)",
        ),
        Metric(
            "repeat_4gram_rate",
            "repeated 4-gram rate of continuations",
            True,
            eval_path=("generation", "repeat_4gram_rate"),
            ci_path=("generation", "repeat_4gram_rate_ci"),
            question="japanese_quality",
        ),
        _sft("bleu", "supervised task BLEU (ja-mecab)", False, "supervised task BLEU (ja-mecab)", lead=2),
        _sft("chrf", "supervised task chrF", False, "supervised task chrF", lead=1),
        _sft("exact_match", "supervised task exact match", False, "supervised task exact match"),
        _sft(
            "response_bits_per_char",
            "supervised task response bits/char",
            True,
            "supervised task response bits/char (teacher-forced)",
        ),
        *_forgetting("en", "English", 1),
        *_forgetting("zh", "Chinese", 2),
        _summary("peak_mem_bytes", "peak memory", True, "bytes", lead=1),
        _summary("time_per_step_s", "time per step", True, "seconds", lead=2),
        _summary("tokens_per_s", "training tokens/s", False),
        _summary("params_trainable", "trainable parameters", True, "count"),
    )
}

HEADLINE = tuple(m for m in METRICS.values() if m.question)
# The reference chapter's trade-off table and the definitions, in its order (BLEU before chrF, where
# the headline leads with chrF); each needs a `reference` name (a test checks).
REFERENCE = tuple(
    METRICS[k]
    for k in (
        "ja_bits_per_char",
        "ja_bits_per_byte",
        "ja_token_ppl",
        "cross_domain_bits_per_char",
        "char_accuracy_overall",
        *(f"char_accuracy_{s}" for s in SCRIPTS if s != "other"),
        "bleu",
        "chrf",
        "sft_bleu",
        "sft_chrf",
        "sft_exact_match",
        "sft_response_bits_per_char",
        "en_retention",
        "zh_retention",
    )
)


def lead_metrics(question: str) -> list[str]:
    """The keys the summary names for a question with no resolved difference, in order."""
    return [m.key for m in sorted((m for m in HEADLINE if m.question == question and m.lead), key=lambda m: m.lead)]


@dataclass(frozen=True)
class Column:
    """A column of a per-model table read from one eval.json section."""

    key: str  # flat key (quality.quality)
    source: str | None  # its key in that eval.json section (None: computed elsewhere)
    header: str
    unit: str = "num"


# eval.json `generation` (continuations of held-out text): the continuation table's columns
GENERATION = (
    Column("bleu", "bleu", "BLEU"),
    Column("chrf", "chrf", "chrF"),
    Column("bleu_1_precision", "bleu_1_precision", "BLEU-1 precision"),
    Column("bleu_4_precision", "bleu_4_precision", "BLEU-4 precision"),
    Column("sentence_bleu_mean", "sentence_bleu_mean", "sentence BLEU mean"),
    Column("sentence_bleu_std", "sentence_bleu_std", "sentence BLEU sd"),
    Column("repeat_4gram_rate", "repeat_4gram_rate", "repeated 4-grams"),
    Column("distinct_1", "distinct_1", "distinct-1"),
    Column("distinct_2", "distinct_2", "distinct-2"),
    Column("length_ratio", "length_ratio", "length ratio"),
    Column("gen_prompts", "n", "prompts", "count"),
)

# eval.json `supervised.overall` (responses to held-out prompts): the supervised table's columns
SUPERVISED = (
    Column("sft_bleu", "bleu", "BLEU (ja-mecab)"),
    Column("sft_chrf", "chrf", "chrF"),
    Column("sft_exact_match", "exact_match", "exact match"),
    Column("sft_response_bits_per_char", "response_bits_per_char", "response bits/char"),
    Column("sft_examples", None, "examples", "count"),
)  # supervised.n
