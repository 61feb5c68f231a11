"""Train a small Qwen2-style byte-level BPE tokenizer for the embedded demo's tiny model.

The pipeline copies Qwen2's (transformers' `Qwen2Tokenizer`): NFC normaliser, the Qwen2 split
regex (isolated), `ByteLevel(add_prefix_space=False, use_regex=False)` and a ByteLevel decoder,
so any UTF-8 text is encodable (no unknown token) and `decode(encode(x)) == NFC(x)`. The BPE
merges are learnt with the `tokenizers` library on the demo's corpora. Special tokens come
first in the vocabulary: "<|endoftext|>" (id 0; eos and pad, as in Qwen2), "<|im_start|>",
"<|im_end|>" (Qwen2's chat markers), and the tokenizer carries Qwen2's ChatML chat template (no
default system prompt): a conversation in `messages` format written for the demo renders as it
would for Qwen2.5-Instruct, and the template is saved with the tokenizer (and so with every adapter,
model and merged model directory). Training is deterministic: same texts → same tokenizer
(checked with `ja_adapt.data.tokens.tokenizer_fingerprint`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from ja_adapt.core.errors import UserError
from ja_adapt.data.documents import Document

# Qwen2's pre-tokenisation pattern, as in transformers/models/qwen2/tokenization_qwen2.py.
QWEN2_SPLIT_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"""
    r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
EOS = "<|endoftext|>"
END_OF_TURN = "<|im_end|>"
# ChatML, as Qwen2-Instruct writes it (Qwen2.5's template adds a default system prompt and tools).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass
class TokenizerConfig:
    vocab_size: int = 8192  # target vocabulary incl. 256 byte symbols and specials
    min_frequency: int = 2  # a pair must occur this often to be merged
    special_tokens: tuple[str, ...] = (EOS, "<|im_start|>", END_OF_TURN)  # ids 0, 1, 2
    chat_template: str = CHATML_TEMPLATE  # how `messages` records are rendered (apply_chat_template)
    model_max_length: int = 4096  # the tiny preset's max_position_embeddings


def _backend() -> Tokenizer:
    """An untrained BPE tokenizer with Qwen2's normaliser, pre-tokeniser and decoder."""
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    return tok


def _texts(items: Iterable[Document | str]) -> Iterator[str]:
    for item in items:
        yield item.text if isinstance(item, Document) else item


def train_tokenizer(
    docs: Iterable[Document | str], vocab_size: int = 8192, *, out_dir: str | Path | None = None, min_frequency: int = 2
) -> PreTrainedTokenizerFast:
    """Learn byte-level BPE merges on `docs` (Documents or strings) and wrap them for transformers.

    Returns a fast tokenizer with eos = pad = "<|endoftext|>", no BOS (Qwen2 has none) and the
    ChatML chat template; its
    length is at most `vocab_size` (less when the texts allow fewer merges). With `out_dir` the
    tokenizer is also saved there (tokenizer.json + tokenizer_config.json), loadable with
    `AutoTokenizer.from_pretrained(out_dir)`.
    """
    cfg = TokenizerConfig(vocab_size=vocab_size, min_frequency=min_frequency)
    floor = 256 + len(cfg.special_tokens)
    if vocab_size < floor:
        raise UserError(
            f"tokenizer.vocab_size: must be at least {floor} (256 byte symbols + "
            f"{len(cfg.special_tokens)} special tokens), got {vocab_size}"
        )
    texts = [t for t in _texts(docs) if t]
    if not texts:
        raise UserError("tokenizer: no text to train on; check the corpora")
    backend = _backend()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        show_progress=False,
        special_tokens=list(cfg.special_tokens),
        # every byte is in the vocabulary, so no text is ever out of vocabulary
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(texts, trainer=trainer, length=len(texts))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS,
        pad_token=EOS,
        unk_token=None,
        bos_token=None,
        additional_special_tokens=list(cfg.special_tokens[1:]),
        model_max_length=cfg.model_max_length,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = cfg.chat_template
    if out_dir is not None:
        tokenizer.save_pretrained(str(out_dir))
    return tokenizer
