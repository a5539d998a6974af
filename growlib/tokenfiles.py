"""Tokenize a corpus once into flat token files; read training windows from them through ``np.memmap``.

``prepare`` turns each split of a :class:`~growlib.sources.Source` into one file
of token ids, every document followed by the end-of-text token: ``uint16`` when
the vocabulary fits in 16 bits, else ``uint32``. Beside them a ``manifest.json``
records the source and tokenizer fingerprints, the counts and the dtype. The
folder is named by both fingerprints, so a run on the same text with the same
tokenizer reuses it; it appears complete or not at all (written to a temporary
folder, then renamed), and a file lock makes the processes of one run wait for
the one that prepares.

Tokenizing runs through ``datasets.map`` (batched, over ``workers`` processes);
the ids are then copied split by split from its Arrow columns into the token
file, so memory holds one Arrow chunk at a time, whatever the corpus size.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cache import cache_dir, exclusive, temporary_beside
from .process_memory import lifetime_peak_rss
from .sources import Source
from .tokenizer import EOT, tokenizer_fingerprint

SPLITS = ("train", "validation")
MANIFEST = "manifest.json"
FORMAT = 1  # bump when the files' layout changes: older folders are then prepared again
SMALL_CORPUS_DOCS = 20_000  # below this, worker processes cost more to start than they save


@dataclass(frozen=True)
class TokenFiles:
    """A prepared folder: one token file per split and its manifest."""

    folder: Path
    manifest: dict

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.manifest["dtype"])

    def tokens(self, split: str) -> int:
        return self.manifest["splits"][split]["tokens"]

    def open(self, split: str) -> np.memmap:
        """The split's token ids, [tokens], read-only and paged in from disk as they are used."""
        if self.tokens(split) == 0:  # an empty file cannot be mapped
            return np.zeros(0, dtype=self.dtype)
        return np.memmap(self.folder / f"{split}.bin", dtype=self.dtype, mode="r", shape=(self.tokens(split),))


@dataclass(frozen=True)
class PrepareStats:
    """What preparing cost (``prepare --json`` writes these keys)."""

    tokens: int  # both splits
    documents: int
    tokenize_seconds: float  # datasets.map alone
    seconds: float  # everything: tokenizing, copying into the token files, the manifest
    workers: int
    peak_rss_gb: float  # this process and its workers, the larger
    reused: bool  # the folder existed: nothing was tokenized

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.tokenize_seconds if self.tokenize_seconds else 0.0

    def to_json(self) -> dict:
        return {"tokens": self.tokens, "documents": self.documents,
                "tokens_per_second": round(self.tokens_per_second), "tokenize_seconds": round(self.tokenize_seconds, 3),
                "seconds": round(self.seconds, 3), "workers": self.workers,
                "peak_rss_gb": round(self.peak_rss_gb, 3), "reused": self.reused}


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def folder_for(source: Source, tokenizer) -> Path:
    from hashlib import sha256

    key = sha256(f"{FORMAT}:{source.fingerprint}:{tokenizer_fingerprint(tokenizer)}".encode()).hexdigest()
    return cache_dir() / f"tokens-{key[:16]}"


def peak_rss_gb() -> float:
    """The largest resident set of this process or of any tokenizing worker it waited for, in GB."""
    return lifetime_peak_rss(children=True) / 1e9


def read_manifest(folder: Path) -> TokenFiles | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return TokenFiles(folder, manifest) if manifest.get("format") == FORMAT else None


def _encode(batch: dict, tokenizer, eot: int | None) -> dict:
    """A batch of documents -> their ids, each followed by the end-of-text token (empty documents dropped)."""
    texts = [t.strip() for t in batch["text"] if t and t.strip()]
    tail = [eot] if eot is not None else []
    ids = [e.ids + tail for e in tokenizer.encode_batch(texts)]
    return {"ids": ids}


def prepare(source: Source, tokenizer, workers: int | None = None, verbose: bool = True,
            progress: bool | None = None) -> tuple[TokenFiles, PrepareStats]:
    """The token files of ``source`` under ``tokenizer``: made on first use, reused afterwards."""
    say = print if verbose else (lambda *a, **k: None)
    start = time.perf_counter()
    folder = folder_for(source, tokenizer)
    with exclusive(folder.with_name(folder.name + ".lock")):
        done = read_manifest(folder)
        if done is not None:
            m = done.manifest
            say(f"  [data] token files: {os.path.relpath(folder)} (reused: {m['tokens']:,} tokens, {m['dtype']})")
            return done, PrepareStats(m["tokens"], m["documents"], 0.0, time.perf_counter() - start, 0,
                                      peak_rss_gb(), reused=True)
        files, stats = _prepare(source, tokenizer, folder, workers, say,
                                sys.stderr.isatty() if progress is None else progress)
    return files, stats


def _prepare(source: Source, tokenizer, folder: Path, workers: int | None, say, progress: bool):
    start = time.perf_counter()
    dtype = token_dtype(tokenizer.get_vocab_size())
    n_docs = len(source.train) + len(source.validation)
    if workers is None:
        workers = 1 if n_docs < SMALL_CORPUS_DOCS else min(os.cpu_count() or 1, 8)
    if workers > 1:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # each worker tokenizes on one thread
    tmp = temporary_beside(folder)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    say(f"  [data] tokenizing {n_docs:,} documents ({workers} process{'es' if workers > 1 else ''}) "
        f"into {os.path.relpath(folder)}")
    splits, tokenize_seconds = _tokenize_splits(source, tokenizer, folder, tmp, workers, dtype, progress)
    for f in tmp.glob("*.arrow"):  # tokenized Arrow tables: their ids are in the token files now
        f.unlink()
    tokens = sum(s["tokens"] for s in splits.values())
    manifest = {"format": FORMAT, "source": source.spec, "source_label": source.label,
                "source_fingerprint": source.fingerprint, "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer),
                "vocab_size": tokenizer.get_vocab_size(), "eot": EOT, "dtype": dtype.name,
                "tokens": tokens, "documents": sum(s["documents"] for s in splits.values()), "splits": splits}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(folder, ignore_errors=True)  # an incomplete folder from an older format
    os.replace(tmp, folder)
    stats = PrepareStats(tokens, manifest["documents"], tokenize_seconds, time.perf_counter() - start,
                         workers, peak_rss_gb(), reused=False)
    say(f"  [data] {tokens:,} tokens ({dtype.name}) in {stats.seconds:.1f} s; tokenizing "
        f"{stats.tokens_per_second:,.0f} tokens/s")
    return TokenFiles(folder, manifest), stats


def _tokenize_splits(source: Source, tokenizer, folder: Path, tmp: Path, workers: int, dtype: np.dtype,
                     progress: bool) -> tuple[dict, float]:
    """Each split tokenized with ``datasets.map`` into ``tmp``'s token files; (split figures, seconds tokenizing)."""
    import datasets
    from datasets import Features, Sequence, Value

    features = Features({"ids": Sequence(Value(dtype.name))})
    was_enabled = datasets.is_progress_bar_enabled()
    (datasets.enable_progress_bars if progress else datasets.disable_progress_bars)()
    splits, tokenize_seconds = {}, 0.0
    try:
        for split in SPLITS:
            t0 = time.perf_counter()
            with same_environ_object():
                mapped = getattr(source, split).map(
                    _encode, batched=True, batch_size=1000, num_proc=workers if workers > 1 else None,
                    remove_columns=["text"], features=features, fn_kwargs={"tokenizer": tokenizer,
                                                                           "eot": tokenizer.token_to_id(EOT)},
                    cache_file_name=str(tmp / f"{split}.arrow"), load_from_cache_file=False,
                    new_fingerprint=f"{folder.name}-{split}", desc=f"tokenizing {split}")
            tokenize_seconds += time.perf_counter() - t0
            splits[split] = {"documents": len(mapped), "tokens": _write_tokens(mapped, tmp / f"{split}.bin", dtype)}
            del mapped
    finally:
        (datasets.enable_progress_bars if was_enabled else datasets.disable_progress_bars)()
    return splits, tokenize_seconds


@contextmanager
def same_environ_object():
    """Keep ``os.environ`` the same object through the block, with the contents the block left.

    ``datasets.Dataset.map(num_proc=N)`` rebinds ``os.environ``, once its worker pool has started,
    to a deep copy taken on entry, and never binds the original back. Whoever still holds the
    original (pytest's ``monkeypatch``, a caller that saved it) then edits a mapping that
    ``os.environ.get`` no longer reads: a variable it removes stays set for the rest of the
    process. Here the original is put back, holding what the copy holds.
    """
    original = os.environ
    try:
        yield
    finally:
        if os.environ is not original:
            contents = dict(os.environ)
            os.environ = original
            for name in set(original) - set(contents):
                del original[name]
            original.update(contents)


def _write_tokens(mapped, path: Path, dtype: np.dtype) -> int:
    """Copy the ``ids`` column into one flat file, chunk by chunk, in document order; returns the count."""
    column = mapped.data.column("ids")  # a chunked Arrow list array, memory-mapped from the cache file
    total = 0
    with open(path, "wb") as out:
        for chunk in column.chunks:
            flat = chunk.flatten().to_numpy(zero_copy_only=False).astype(dtype, copy=False)
            out.write(flat.tobytes())
            total += len(flat)
    return total
