"""The batches every phase trains and evaluates on: windows of the prepared token files.

Taught in notebook 01. The text comes from :mod:`growlib.sources`, becomes ids
through :mod:`growlib.tokenizer`, and is written once into token files by
:mod:`growlib.tokenfiles`; here those files are read through ``np.memmap``, so
the memory a run holds for data does not grow with the corpus.
"""

from __future__ import annotations

import numpy as np
import torch

from .sources import Source, open_source
from .tokenfiles import PrepareStats, TokenFiles, prepare
from .tokenizer import load_tokenizer


class TokenData:
    """The prepared token files of a corpus: random training windows and fixed validation windows.

    Training batches are random windows drawn from a generator seeded by
    (seed, stream, step): the same step of a stream always sees the same batch,
    which makes resumed runs repeat the uninterrupted one exactly. Each phase
    draws its own stream (growlib.train.PhaseSpec). Validation batches are
    fixed windows, identical for every evaluation.
    """

    def __init__(self, files: TokenFiles, tokenizer, seq_len: int, source: Source) -> None:
        self.files, self.tokenizer, self.seq_len, self.source = files, tokenizer, seq_len, source
        self.train = files.open("train")  # [tokens], uint16 or uint32, paged in from disk
        self.val = files.open("validation")
        need = seq_len + 2
        for name, stream in (("training", self.train), ("validation", self.val)):
            if len(stream) < need:
                raise ValueError(f"the {name} split of {source.label} has {len(stream)} tokens: "
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

    def _windows(self, stream: np.memmap, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = starts.numpy()[:, None] + np.arange(self.seq_len + 1)  # [B, T+1] positions in the stream
        chunk = torch.from_numpy(stream[rows].astype(np.int64))  # reads only these windows from disk
        return chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous()

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor(self.tokenizer.encode(text).ids, dtype=torch.long)

    def decode(self, ids) -> str:
        return self.tokenizer.decode(list(ids))


def open_corpus(source: Source, vocab_size: int, workers: int | None = None,
                verbose: bool = True) -> tuple[object, TokenFiles, PrepareStats]:
    """An opened source -> its tokenizer -> its token files (prepared on first use, reused afterwards).

    A tokenizer larger than the model's vocabulary (``vocab_size``) fails before any file is
    written. Callers open the source first (:func:`growlib.sources.open_source`), so that a bad
    source fails before anything else is checked or made.
    """
    tokenizer = load_tokenizer(source, vocab_size, verbose=verbose)
    if tokenizer.get_vocab_size() > vocab_size:
        raise ValueError(f"ModelConfig.vocab_size = {vocab_size} is smaller than the tokenizer's "
                         f"{tokenizer.get_vocab_size()}: accepted a vocab of at least {tokenizer.get_vocab_size()}")
    files, stats = prepare(source, tokenizer, workers=workers, verbose=verbose)  # made once per corpus and tokenizer
    return tokenizer, files, stats


def load_token_data(spec: str, vocab_size: int, seq_len: int, max_docs: int | None = None,
                    workers: int | None = None, verbose: bool = True) -> TokenData:
    """The batches of a run: the source ``spec`` opened, tokenized (:func:`open_corpus`), cut into windows."""
    source = open_source(spec, max_docs=max_docs, verbose=verbose)
    tokenizer, files, _ = open_corpus(source, vocab_size, workers, verbose)
    return TokenData(files, tokenizer, seq_len, source)
