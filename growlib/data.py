"""Corpora, the tokenizer, and the batches every phase trains and evaluates on.

Taught in notebook 01. Three sources:

- ``tinystories``: ``roneneldan/TinyStories`` through ``datasets`` when the hub
  (or its local cache) can serve it;
- a path: any local ``.txt`` (stories separated by blank lines) or ``.jsonl``
  (one ``{"text": ...}`` per line) file;
- ``bundled``: the synthetic stories of :mod:`growlib.storygen`, made here.

``auto`` tries TinyStories and falls back to ``bundled``. Offline is noticed
within ~1.5 s (``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` are honoured
first), never through the hub client's retry loop.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .storygen import generate_stories

DATA_DIR = Path(os.environ.get("GROWLIB_DATA_DIR", Path(__file__).resolve().parent.parent / "data"))
CACHE_DIR = DATA_DIR / "cache"
HUB_HOST = "huggingface.co"
TINYSTORIES = "roneneldan/TinyStories"
BUNDLED_STORIES = 20000  # ~7.5 MB of text, ~0.2 s to generate


@dataclass
class Corpus:
    """Documents plus where they came from (printed wherever the corpus is used)."""

    docs: list[str]
    source: str  # "tinystories" | "bundled" | a path
    label: str  # human description, e.g. "synthetic stories (growlib.storygen, offline default)"

    @property
    def n_chars(self) -> int:
        return sum(len(d) for d in self.docs)


def hub_reachable(timeout: float = 1.5) -> bool:
    """True when the Hugging Face hub answers a TCP connect within ``timeout`` seconds."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return False
    result: list[bool] = []

    def probe() -> None:  # DNS itself can hang: run the whole probe in a thread
        try:
            with socket.create_connection((HUB_HOST, 443), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _tinystories_cached() -> bool:
    root = Path(os.environ.get("HF_DATASETS_CACHE", Path.home() / ".cache" / "huggingface" / "datasets"))
    return any(root.glob("roneneldan___tiny_stories*"))


def load_tinystories(max_docs: int = 50000) -> Corpus:
    """The first ``max_docs`` training stories of TinyStories (hub or local cache).

    Raises ``RuntimeError`` when neither can serve; :func:`load_corpus` catches it.
    """
    online = hub_reachable()
    if not online and not _tinystories_cached():
        raise RuntimeError(f"the Hugging Face hub ({HUB_HOST}) is unreachable and TinyStories is not cached")
    if not online:
        os.environ["HF_DATASETS_OFFLINE"] = "1"  # read the cache without touching the network
        os.environ["HF_HUB_OFFLINE"] = "1"
    import datasets  # imported late: it is slow to import and not needed offline

    try:
        stream = datasets.load_dataset(TINYSTORIES, split="train", streaming=online)
        docs = []
        for row in stream:
            text = row["text"].strip()
            if text:
                docs.append(text)
            if len(docs) >= max_docs:
                break
    except Exception as exc:  # the hub client raises many types; report it, do not hide it
        raise RuntimeError(f"TinyStories could not be loaded: {type(exc).__name__}: {exc}") from exc
    return Corpus(docs, "tinystories", f"TinyStories ({TINYSTORIES}, first {len(docs):,} training stories)")


def load_text_file(path: str | os.PathLike) -> Corpus:
    """Stories from a local file: ``.jsonl`` rows with "text", or plain text split on blank lines."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"data file {str(p)!r} does not exist: accepted an existing .txt or .jsonl file, "
                         f"'auto', 'bundled' or 'tinystories'")
    if not p.is_file():
        raise ValueError(f"data path {str(p)!r} is not a file: accepted a .txt or .jsonl file")
    raw = p.read_bytes()
    if b"\x00" in raw[:65536]:
        raise ValueError(f"data file {str(p)!r} looks binary (NUL bytes): accepted UTF-8 text or JSONL")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"data file {str(p)!r} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if p.suffix == ".jsonl":
        docs = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    docs.append(str(json.loads(line)["text"]).strip())
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise ValueError(f"data file {str(p)!r} line {n}: expected a JSON object with a "
                                     f"'text' field") from exc
    else:
        docs = [d.strip() for d in text.replace("\r\n", "\n").split("\n\n")]
    docs = [d for d in docs if d]
    if not docs:
        raise ValueError(f"data file {str(p)!r} is empty: accepted a file with at least one story")
    return Corpus(docs, str(p), f"local file {p.name} ({len(docs):,} documents)")


def bundled_corpus(n: int = BUNDLED_STORIES, seed: int = 0) -> Corpus:
    return Corpus(generate_stories(n, seed), "bundled",
                  f"synthetic stories (growlib.storygen, {n:,} generated offline; not TinyStories)")


def load_corpus(spec: str = "auto", verbose: bool = True) -> Corpus:
    """``auto`` | ``bundled`` | ``tinystories`` | a file path -> :class:`Corpus`."""
    say = print if verbose else (lambda *a, **k: None)
    if spec == "bundled":
        corpus = bundled_corpus()
    elif spec in ("auto", "tinystories"):
        try:
            corpus = load_tinystories()
        except RuntimeError as exc:
            if spec == "tinystories":
                raise ValueError(f"--data tinystories: {exc}; use --data bundled or a file path") from exc
            say(f"  [data] {exc}; falling back to the bundled synthetic stories")
            corpus = bundled_corpus()
    else:
        corpus = load_text_file(spec)
    say(f"  [data] corpus: {corpus.label}, {corpus.n_chars / 1e6:.2f} M characters")
    return corpus


# ---------------------------------------------------------------- tokenizer

def train_tokenizer(corpus: Corpus, vocab_size: int):
    """A byte-level BPE trained on the corpus, cached under ``data/cache`` by content and size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    digest = hashlib.sha256()
    for d in corpus.docs:
        digest.update(d.encode("utf-8"))
        digest.update(b"\x00")
    path = CACHE_DIR / f"bpe-{vocab_size}-{digest.hexdigest()[:16]}.json"
    if path.exists():
        return Tokenizer.from_file(str(path))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus.docs, trainer=trainer)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")  # per process: notebooks run in parallel in CI
    tok.save(str(tmp))
    os.replace(tmp, path)
    return tok


def load_tokenizer(corpus: Corpus, vocab_size: int, verbose: bool = True):
    """GPT-Neo's tokenizer (50257) from the hub for TinyStories when it fits, else a trained BPE."""
    say = print if verbose else (lambda *a, **k: None)
    if corpus.source == "tinystories" and vocab_size >= 50257:
        try:
            from tokenizers import Tokenizer
            tok = Tokenizer.from_pretrained("EleutherAI/gpt-neo-125M")
            say("  [data] tokenizer: GPT-Neo (EleutherAI/gpt-neo-125M), 50,257 tokens")
            return tok
        except Exception as exc:  # offline or missing: train our own instead
            say(f"  [data] GPT-Neo tokenizer unavailable ({type(exc).__name__}); training a byte-level BPE")
    tok = train_tokenizer(corpus, vocab_size)
    say(f"  [data] tokenizer: byte-level BPE trained on the corpus, {tok.get_vocab_size():,} tokens")
    return tok


# ---------------------------------------------------------------- batches

class TokenData:
    """The corpus as one token stream, split into train and held-out validation by document.

    Training batches are random windows drawn from a generator seeded by
    (seed, stream, step): the same step of a stream always sees the same batch,
    which makes resumed runs repeat the uninterrupted one exactly. Each phase
    draws its own stream (growlib.train.PhaseSchedule). Validation batches are
    fixed windows, identical for every evaluation.
    """

    def __init__(self, corpus: Corpus, tokenizer, seq_len: int, val_fraction: float = 0.05) -> None:
        self.corpus, self.tokenizer, self.seq_len = corpus, tokenizer, seq_len
        eot = tokenizer.token_to_id("<|endoftext|>")
        n_val = max(1, int(len(corpus.docs) * val_fraction))
        encodings = tokenizer.encode_batch(corpus.docs)
        ids: list[list[int]] = [e.ids + ([eot] if eot is not None else []) for e in encodings]
        # one array per split, without a Python int per token
        flat = lambda rows: torch.from_numpy(np.concatenate([np.asarray(r, dtype=np.int64) for r in rows]))
        self.val = flat(ids[:n_val])  # the first documents are held out
        self.train = flat(ids[n_val:])
        need = seq_len + 2
        for name, stream in (("training", self.train), ("validation", self.val)):
            if len(stream) < need:
                raise ValueError(f"the {name} split of {corpus.label} has {len(stream)} tokens: "
                                 f"need at least {need} for seq_len={seq_len}; use a larger data file")

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def train_batch(self, batch_size: int, seed: int, stream: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets), each [batch, seq_len], for this (seed, stream, step)."""
        gen = torch.Generator().manual_seed((seed * 1_000_003 + stream) * 1_000_003 + step)
        starts = torch.randint(0, len(self.train) - self.seq_len - 1, (batch_size,), generator=gen)
        return self._windows(self.train, starts)

    def val_batches(self, n_batches: int, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``n_batches`` fixed validation batches, evenly spaced through the held-out stream."""
        n = n_batches * batch_size
        span = len(self.val) - self.seq_len - 1
        starts = torch.linspace(0, span, n).long()
        return [self._windows(self.val, starts[i * batch_size:(i + 1) * batch_size]) for i in range(n_batches)]

    def _windows(self, stream: torch.Tensor, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        offsets = torch.arange(self.seq_len + 1)
        chunk = stream[starts[:, None] + offsets]  # [B, T+1]
        return chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous()

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor(self.tokenizer.encode(text).ids, dtype=torch.long)

    def decode(self, ids) -> str:
        return self.tokenizer.decode(list(ids))
