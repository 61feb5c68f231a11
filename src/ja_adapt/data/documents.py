"""The document record every source yields and every later stage consumes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Document:
    """One unit of a corpus: plain text (continued pretraining) or a supervised record.

    A supervised record keeps its structure so the loss can skip what the model is not to learn
    (data/records.py): `segments` for prompt→completion text, `messages` for a conversation (the
    chat template that turns it into text belongs to the tokenizer, so it is applied at
    tokenization). `text` is always the record's text (prompt + completion, or the turns' contents
    joined by newlines): what splitting, deduplication, decontamination and fingerprints read.
    """

    text: str
    lang: str = "ja"  # ISO 639-1: ja, en, zh
    domain: str = "general"  # e.g. news, conversation, docs
    source: str = ""  # where it came from: a file path (with line for JSONL) or a package
    segments: tuple[tuple[str, bool], ...] = ()  # (text, carries loss) pieces; () = plain text
    messages: tuple[tuple[str, str], ...] = ()  # (role, content) turns of a conversation
    split: str | None = None  # a record's own "split" (train/val/test) pins it; None: split by hash

    @property
    def kind(self) -> str:
        """'text', 'prompt_completion' or 'messages'."""
        return "messages" if self.messages else "prompt_completion" if self.segments else "text"

    @property
    def supervised(self) -> bool:
        return bool(self.segments or self.messages)

    @property
    def response_text(self) -> str:
        """What a supervised record teaches (its completion, or its assistant turns joined by
        newlines); the text itself for plain text."""
        if self.segments:
            return "".join(t for t, trained in self.segments if trained)
        if self.messages:
            return "\n".join(c for role, c in self.messages if role == "assistant")
        return self.text
