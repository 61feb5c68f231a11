"""Shared fixtures: a tiny byte-level BPE tokenizer and a handful of documents, built on the fly."""

from __future__ import annotations

import pytest
from tiny_text import SENTENCES

from ja_adapt.data.documents import Document


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A PreTrainedTokenizerFast: byte-level BPE (vocab 512) trained on a few sentences,
    eos_token and pad_token "<|endoftext|>" (as in Qwen2.5)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(SENTENCES * 4, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


@pytest.fixture
def tiny_docs() -> list[Document]:
    """Ten short documents in three domains (Japanese news / conversation, one English doc)."""
    news = [Document(s, "ja", "news") for s in SENTENCES[:4]]
    chat = [Document(s + " " + s, "ja", "conversation") for s in SENTENCES[4:6] + SENTENCES[7:]]
    chat.append(Document("はい、そうです。", "ja", "conversation"))
    docs = [Document(SENTENCES[6], "en", "docs"), Document("犬が走る。", "ja", "docs")]
    return news + chat + docs


@pytest.fixture(scope="session")
def saved_tiny_model(tmp_path_factory, tiny_tokenizer):
    """A tiny Qwen2 checkpoint + tokenizer saved to disk (loaded back like a hub model), and a small
    Japanese JSONL corpus in two domains from the registry-package corpora."""
    import json
    import os

    from ja_adapt.data.corpora import load_sources
    from ja_adapt.models.load import load_model

    root = tmp_path_factory.mktemp("tiny")
    model_dir = root / "tiny-model"
    load_model("tiny", vocab_size=len(tiny_tokenizer), seed=0).save_pretrained(model_dir)
    tiny_tokenizer.save_pretrained(model_dir)
    docs, _ = load_sources(["hironsan-news", "chatterbot-ja"], max_chars_per_source=6000)
    corpus = root / "ja.jsonl"
    corpus.write_text(
        "".join(json.dumps({"text": d.text, "domain": d.domain}, ensure_ascii=False) + "\n" for d in docs),
        encoding="utf-8",
    )
    os.environ.setdefault("JA_ADAPT_CACHE", str(root / "cache"))
    return root, model_dir, corpus


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module: on a couple of shared cores torch's thread pool stalls on
    contention (use with `pytestmark = pytest.mark.usefixtures("one_thread")`)."""
    import torch  # here, not at the top: most tests need no torch to collect

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- peak resident memory of every process the suite runs ---------------------------------------
# Each test starts with this process's peak RSS reset (Linux: writing 5 to /proc/self/clear_refs
# resets VmHWM), so VmHWM after it is that test's own peak; children (subprocesses, process pools)
# are read from getrusage(RUSAGE_CHILDREN), the largest peak of any child waited for so far (a
# forked child counts the pages it shares with this process). After each test module, gc and
# malloc_trim hand freed memory back to the OS, so one module's arena is not the next one's peak.
# The summary names the largest, and what each module kept; above the limit the run fails.
RSS_LIMIT_GIB = float(__import__("os").environ.get("JA_ADAPT_RSS_LIMIT_GIB", "6"))
_rss: dict[str, tuple[int, int]] = {}  # test id -> (own peak, largest child peak so far), bytes
_kept: dict[str, int] = {}  # test module -> resident bytes it left behind (after trim)
_release_s = [0.0]


def _status_bytes(field: str) -> int | None:
    from ja_adapt.train.telemetry import proc_status_bytes

    return proc_status_bytes(field)


def _reset_hwm() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _release_memory() -> None:
    from ja_adapt.train.telemetry import release_freed_heap  # gc + malloc_trim, the one definition

    release_freed_heap()


@pytest.fixture(autouse=True)
def _peak_rss(request):
    import resource

    _reset_hwm()
    yield
    own = _status_bytes("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    _rss[request.node.nodeid] = (own, children)


@pytest.fixture(autouse=True, scope="module")
def _release_between_modules(request):
    """gc + malloc_trim once per test module (per test cost 4 minutes of the suite): what a module
    leaves resident after it is what it keeps alive, reported as "left resident"."""
    import time

    start = time.perf_counter()
    _release_memory()
    before = _status_bytes("VmRSS") or 0
    _release_s[0] += time.perf_counter() - start
    yield
    start = time.perf_counter()
    _release_memory()
    _release_s[0] += time.perf_counter() - start
    _kept[request.node.nodeid] = (_status_bytes("VmRSS") or 0) - before


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def pytest_terminal_summary(terminalreporter):
    if not _rss:
        return
    top = sorted(_rss.items(), key=lambda kv: -kv[1][0])[:3]
    child_test, (_, child) = max(_rss.items(), key=lambda kv: kv[1][1])
    first_child = next((t for t, (_, c) in _rss.items() if c == child), child_test)
    terminalreporter.write_sep("=", "peak resident memory per process")
    for test, (own, _) in top:
        terminalreporter.write_line(f"pytest process {_gib(own)}  {test}")
    terminalreporter.write_line(f"largest child process {_gib(child)}  (first reached in {first_child})")
    for test, kept in sorted(_kept.items(), key=lambda kv: -kv[1])[:5]:
        terminalreporter.write_line(f"left resident {_gib(kept)}  {test}")
    terminalreporter.write_line(
        f"limit {RSS_LIMIT_GIB} GiB (JA_ADAPT_RSS_LIMIT_GIB); gc + malloc_trim between tests: {_release_s[0]:.1f} s"
    )


def pytest_sessionfinish(session, exitstatus):
    worst = max((max(v) for v in _rss.values()), default=0)
    if worst > RSS_LIMIT_GIB * 2**30 and exitstatus == 0:
        session.exitstatus = 1
        print(
            f"\nja-adapt tests: a process reached {_gib(worst)} of resident memory, above the "
            f"{RSS_LIMIT_GIB} GiB limit (see 'peak resident memory per process')"
        )
