"""Supervised record formats (TRL's dataset conventions) → `Document`s, and their rendering.

One record (a JSONL line or a dataset row) is one of:
  {"text": ...}                                    language modelling: every token carries loss
  {"prompt": ..., "completion": ...}               the completion carries loss, the prompt does not
  {"messages": [{"role": ..., "content": ...}]}    a conversation, rendered with the tokenizer's chat
                                                   template; only the assistant turns carry loss
  Alpaca-style {"instruction", "input", "output"}  (field names: data.alpaca) → prompt
                                                   "instruction\\n\\ninput\\n" (no input: "instruction\\n")
                                                   and completion = output
plus the optional `lang`, `domain` and `split` (train / val / test: a split fixed upstream, which the
pipeline keeps instead of hashing the text) of every record. Prompt and completion are joined as they are
(no separator added, as in TRL): end the prompt with the separator the model should see.

Masking rule (`render_segments`): a prompt→completion record is (prompt, masked) + (completion,
trained), and the EOS the token store appends after it is trained (the model learns to stop). A
conversation is rendered turn by turn: everything up to and including the generation prompt of an
assistant turn (`<|im_start|>assistant\\n` in ChatML) is masked; the assistant's content and its
end-of-turn token (`<|im_end|>`) are trained; what the template writes after that token (a newline)
and the appended EOS are masked.
"""

from __future__ import annotations

import functools

from ja_adapt.config import AlpacaConfig
from ja_adapt.core.errors import UserError
from ja_adapt.data.documents import Document

ROLES = ("system", "user", "assistant", "tool")  # roles TRL and chat templates know
FORMATS = '{"text"}, {"prompt", "completion"}, {"messages"} or instruction/input/output'


def _string(record: dict, key: str, where: str, *, empty_ok: bool = False) -> str:
    if key not in record:
        raise UserError(f"{where}: no '{key}' field{keys_hint(record)}")
    value = record[key]
    if not isinstance(value, str):
        raise UserError(f"{where}: field '{key}' must be a string, got {type(value).__name__}")
    if not empty_ok and not value.strip():
        raise UserError(f"{where}: field '{key}' is empty; give it text or drop the record")
    return value


def keys_hint(record: dict) -> str:
    keys = ", ".join(sorted(map(str, record))[:5])
    return f" (fields: {keys})" if keys else ""


def _messages(record: dict, where: str) -> tuple[tuple[str, str], ...]:
    turns = record["messages"]
    if not isinstance(turns, list) or not turns:
        raise UserError(f'{where}: field \'messages\' must be a non-empty list of {{"role", "content"}} objects')
    out = []
    for i, turn in enumerate(turns):
        at = f"{where}: messages[{i}]"
        if not isinstance(turn, dict):
            raise UserError(f"{at}: expected an object with 'role' and 'content', got {type(turn).__name__}")
        role = _string(turn, "role", at)
        if role not in ROLES:
            raise UserError(f"{at}: unknown role '{role}'; use one of {', '.join(ROLES)}")
        content = _string(turn, "content", at, empty_ok=role != "assistant")
        out.append((role, content))
    if not any(role == "assistant" for role, _ in out):
        raise UserError(
            f"{where}: the conversation has no assistant turn, so nothing to learn; add one or drop the record"
        )
    return tuple(out)


def alpaca_prompt(instruction: str, input_text: str = "") -> str:
    return f"{instruction}\n\n{input_text}\n" if input_text.strip() else f"{instruction}\n"


def record_fields(alpaca: AlpacaConfig) -> tuple[str, ...]:
    """Every field a record may use (a dataset's columns to read)."""
    return (
        "text",
        "prompt",
        "completion",
        "messages",
        alpaca.instruction,
        alpaca.input,
        alpaca.output,
        "lang",
        "domain",
        "split",
    )


def record_document(record: dict, where: str, make_doc, alpaca: AlpacaConfig = AlpacaConfig()) -> Document | None:
    """The Document of one record (see the module docstring), or None for a blank text record.

    make_doc(text, lang, domain, **structure) builds it with the source's defaults (sources.py).
    Raises UserError naming `where` (file:line or dataset row) and the field for a bad record.
    """
    lang, domain = record.get("lang"), record.get("domain")
    split = record.get("split")
    if split is not None and split not in ("train", "val", "test"):
        raise UserError(
            f"{where}: field 'split' must be train, val or test, got {split!r}; or leave "
            "it out to split by a hash of the text"
        )
    if split is not None:  # a split fixed upstream (e.g. by the English source)
        make_doc = functools.partial(make_doc, split=split)
    if "text" in record and record["text"] is not None:
        return make_doc(_string(record, "text", where, empty_ok=True), lang, domain)
    if "messages" in record and record["messages"] is not None:
        turns = _messages(record, where)
        return make_doc("\n".join(c for _, c in turns), lang, domain, messages=turns)
    if any(record.get(k) is not None for k in ("prompt", "completion")):
        prompt = _string(record, "prompt", where)
        completion = _string(record, "completion", where)
        return make_doc(prompt + completion, lang, domain, segments=((prompt, False), (completion, True)))
    if any(record.get(k) is not None for k in (alpaca.instruction, alpaca.output)):
        instruction = _string(record, alpaca.instruction, where)
        output = _string(record, alpaca.output, where)
        extra = record.get(alpaca.input)
        if extra is not None and not isinstance(extra, str):
            raise UserError(f"{where}: field '{alpaca.input}' must be a string, got {type(extra).__name__}")
        prompt = alpaca_prompt(instruction, extra or "")
        return make_doc(prompt + output, lang, domain, segments=((prompt, False), (output, True)))
    raise UserError(
        f"{where}: no 'text' field{keys_hint(record)} nor another record format; each "
        f"record needs {FORMATS} (Alpaca field names: data.alpaca)"
    )


# --- rendering (needs the tokenizer) ------------------------------------------------------------


def _chat(tokenizer, turns, where: str, *, generation_prompt: bool) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(
            f"{where}: a 'messages' record needs a tokenizer with a chat template, and "
            f"{getattr(tokenizer, 'name_or_path', '') or 'this tokenizer'} has none; use "
            "prompt/completion records or a tokenizer with one (e.g. Qwen2.5-Instruct's)"
        )
    return tokenizer.apply_chat_template(
        [{"role": r, "content": c} for r, c in turns], tokenize=False, add_generation_prompt=generation_prompt
    )


def end_of_turn(tokenizer) -> str:
    """The token a chat template closes a turn with: `<|im_end|>` when the tokenizer has it
    (ChatML, Qwen2.5), else its EOS."""
    specials = set(getattr(tokenizer, "all_special_tokens", []) or [])
    return "<|im_end|>" if "<|im_end|>" in specials or "<|im_end|>" in tokenizer.get_vocab() else tokenizer.eos_token


def chat_prompt(tokenizer, turns, where: str = "messages") -> str:
    """The text a model continues to answer after `turns` (the template's generation prompt)."""
    return _chat(tokenizer, turns, where, generation_prompt=True)


def render_segments(doc: Document, tokenizer) -> list[tuple[str, bool]]:
    """(text, carries loss) pieces of a document (module docstring: the masking rule)."""
    if doc.segments:
        return list(doc.segments)
    if not doc.messages:
        return [(doc.text, True)]
    where, stop = doc.source or "messages", end_of_turn(tokenizer)
    pieces: list[tuple[str, bool]] = []
    done = ""
    for i, (role, _) in enumerate(doc.messages):
        if role != "assistant":
            continue
        prefix = _chat(tokenizer, doc.messages[:i], where, generation_prompt=True)
        full = _chat(tokenizer, doc.messages[: i + 1], where, generation_prompt=False)
        if not (prefix.startswith(done) and full.startswith(prefix)):
            raise UserError(
                f"{where}: the tokenizer's chat template does not render a conversation "
                "as a prefix of its continuation, so assistant turns cannot be masked "
                "apart; use a ChatML-style template"
            )
        answer = full[len(prefix) :]
        cut = answer.find(stop)
        cut = len(answer) if cut < 0 else cut + len(stop)
        pieces += [(prefix[len(done) :], False), (answer[:cut], True)]
        done = prefix + answer[:cut]
    rest = _chat(tokenizer, doc.messages, where, generation_prompt=False)[len(done) :]
    pieces.append((rest, False))
    return [(t, trained) for t, trained in pieces if t]
