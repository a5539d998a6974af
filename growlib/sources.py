"""Where the text comes from: every corpus opened through ``datasets``, as a train and a validation split.

Taught in notebook 01. A source is named by ``--data``:

- ``tinystories``: ``roneneldan/TinyStories`` from the Hugging Face hub (or its
  local cache), with the dataset's own validation split; ``max_docs`` keeps the
  first N training stories;
- a local ``.txt`` (stories separated by blank lines), ``.jsonl`` / ``.json``
  (one ``{"text": ...}`` per row) or ``.parquet`` file (a ``text`` column), read
  with ``load_dataset("text" | "json" | "parquet", data_files=...)``;
- a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``,
  read with ``load_from_disk`` (a ``validation`` split is used when it has one);
- ``bundled``: the synthetic stories of :mod:`growlib.storygen`, written once to
  a text file under ``data/cache`` and then read like any ``.txt``.

``auto`` tries TinyStories and falls back to ``bundled``. Offline is noticed
within ~1.5 s (``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` are honoured
first), never through the hub client's retry loop. A source without a
validation split holds out its first ``VAL_FRACTION`` of documents.

A bad source fails here, with one line naming it and what is accepted, before
any tokenizing or training.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from .cache import cache_dir, written_in_place
from .storygen import generate_stories
from .storyworld import WORLD_SIZE, generate_world_stories

if TYPE_CHECKING:
    import datasets

HUB_HOST = "huggingface.co"
TINYSTORIES = "roneneldan/TinyStories"
BUNDLED_STORIES = 20000  # ~7.5 MB of text, ~0.2 s to generate
VAL_FRACTION = 0.05  # held out from sources that have no validation split of their own
FILE_KINDS = {".txt": "text", ".text": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
ACCEPTED = ("'auto', 'bundled', 'world', 'tinystories', a .txt/.jsonl/.json/.parquet file, "
            "or a folder written by save_to_disk")


@dataclass
class Source:
    """A corpus as two ``datasets.Dataset`` splits with a ``text`` column, and where it came from."""

    train: datasets.Dataset  # imported late where it is used: it is slow to import
    validation: datasets.Dataset
    spec: str  # what --data said: "bundled", "tinystories", a path
    label: str  # what a person reads, e.g. "local file sample.txt (1,000 documents)"
    fingerprint: str  # changes when the text changes: names the tokenizer and token files made from it

    def documents(self, n: int, split: str = "train") -> list[str]:
        """The first ``n`` non-empty documents of a split, stripped (for showing a few stories)."""
        rows = getattr(self, split)
        out: list[str] = []
        for batch in rows.iter(batch_size=64):
            out += [t.strip() for t in batch["text"] if t and t.strip()]
            if len(out) >= n:
                break
        return out[:n]

    def texts(self, split: str = "train", max_chars: int | None = None, batch_size: int = 1000) -> Iterator[list[str]]:
        """A split's text in batches of documents, stopping after ``max_chars`` characters if given."""
        seen = 0
        for batch in getattr(self, split).iter(batch_size=batch_size):
            yield batch["text"]
            seen += sum(map(len, batch["text"]))
            if max_chars is not None and seen >= max_chars:
                return


OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def offline_variable() -> str | None:
    """The first of :data:`OFFLINE_VARS` that is set to a true value (the hub is then not tried), or None."""
    return next((var for var in OFFLINE_VARS
                 if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")), None)


def hub_reachable(timeout: float = 1.5) -> bool:
    """True when the Hugging Face hub answers a TCP connect within ``timeout`` seconds."""
    if offline_variable():
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


def tinystories_cached() -> bool:
    """True when TinyStories is in the ``datasets`` cache (it then loads offline)."""
    root = Path(os.environ.get("HF_DATASETS_CACHE", Path.home() / ".cache" / "huggingface" / "datasets"))
    return any(root.glob("roneneldan___tiny_stories*"))


def _quiet_datasets():
    """``datasets``, imported here (slow to import), with its per-file progress bars off."""
    import datasets

    datasets.disable_progress_bars()  # prepare shows its own progress; loading a cached file needs none
    return datasets


def open_tinystories(max_docs: int | None = None) -> Source:
    """TinyStories' train split (all of it, or the first ``max_docs`` stories) and its validation split.

    Raises ``RuntimeError`` when neither the hub nor the local cache can serve it.
    """
    online = hub_reachable()
    if not online and not tinystories_cached():
        raise RuntimeError(f"the Hugging Face hub ({HUB_HOST}) is unreachable and TinyStories is not cached")
    if not online:
        os.environ["HF_DATASETS_OFFLINE"] = "1"  # read the cache without touching the network
        os.environ["HF_HUB_OFFLINE"] = "1"
    datasets = _quiet_datasets()
    train_split = "train" if max_docs is None else f"train[:{max_docs}]"
    try:
        train = datasets.load_dataset(TINYSTORIES, split=train_split)
        validation = datasets.load_dataset(TINYSTORIES, split="validation")
    except Exception as exc:  # the hub client raises many types; report it, do not hide it
        raise RuntimeError(f"TinyStories could not be loaded: {type(exc).__name__}: {exc}") from exc
    which = "all" if max_docs is None else f"first {len(train):,}"
    return Source(train, validation, "tinystories",
                  f"TinyStories ({TINYSTORIES}: {which} training stories, {len(validation):,} validation stories)",
                  _digest(f"{TINYSTORIES}:{train._fingerprint}:{validation._fingerprint}"))


def bundled_text_file(n: int = BUNDLED_STORIES, seed: int = 0, world: bool = False) -> Path:
    """The synthetic stories (``world``: the story world's) as a text file under ``data/cache``, blank-line separated."""
    stories = generate_world_stories(n, seed) if world else generate_stories(n, seed)
    text = "\n\n".join(stories) + "\n"
    path = cache_dir() / f"{'world' if world else 'bundled'}-{n}-{seed}-{_digest(text)[:12]}.txt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with written_in_place(path) as tmp:  # per process: notebooks run in parallel
            tmp.write_text(text, encoding="utf-8")
    return path


def open_bundled(n: int = BUNDLED_STORIES, seed: int = 0) -> Source:
    source = open_local(bundled_text_file(n, seed))
    source.spec = "bundled"
    source.label = f"synthetic stories (growlib.storygen, {n:,} generated offline; not TinyStories)"
    return source


def open_world(n: int = BUNDLED_STORIES, seed: int = 0) -> Source:
    """The story world (growlib.storyworld): a fixed cast whose facts a model must remember."""
    source = open_local(bundled_text_file(n, seed, world=True))
    source.spec = "world" if n == BUNDLED_STORIES else f"world:{n}"
    source.label = (f"synthetic story world (growlib.storyworld, {n:,} stories about {WORLD_SIZE} characters "
                    "generated offline; not TinyStories)")
    return source


def _check_text_file(p: Path) -> None:
    """A text file that is not UTF-8 text or holds nothing fails here, with its path and byte offset."""
    with open(p, "rb") as f:
        head = f.read(1 << 16)
        if b"\x00" in head:
            raise ValueError(f"data file {str(p)!r} looks binary (NUL bytes): accepted UTF-8 text or JSON lines")
        decoder = codecs.getincrementaldecoder("utf-8")()
        offset, chunk, nonblank = 0, head, False
        while chunk:
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                raise ValueError(f"data file {str(p)!r} is not UTF-8 text "
                                 f"({exc.reason} at byte {offset + exc.start})") from exc
            nonblank = nonblank or bool(text.strip())
            offset += len(chunk)
            chunk = f.read(1 << 20)
    if not nonblank:
        raise ValueError(f"data file {str(p)!r} is empty: accepted a file with at least one story")


def open_local(path: str | os.PathLike) -> Source:
    """A local file or ``save_to_disk`` folder through ``datasets``."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"data path {str(p)!r} does not exist: accepted {ACCEPTED}")
    datasets = _quiet_datasets()
    if p.is_dir():
        if not ((p / "dataset_info.json").exists() or (p / "dataset_dict.json").exists()):
            raise ValueError(f"data folder {str(p)!r} was not written by save_to_disk "
                             f"(no dataset_info.json or dataset_dict.json): accepted {ACCEPTED}")
        try:
            loaded = datasets.load_from_disk(str(p))
        except Exception as exc:
            raise ValueError(f"data folder {str(p)!r} could not be read by load_from_disk: "
                             f"{type(exc).__name__}: {exc}") from exc
        kind = "save_to_disk folder"
    else:
        builder = FILE_KINDS.get(p.suffix.lower())
        if builder is None:
            raise ValueError(f"data file {str(p)!r} has an unknown extension {p.suffix!r}: accepted {ACCEPTED}")
        if builder in ("text", "json"):
            _check_text_file(p)
        options = {"sample_by": "paragraph"} if builder == "text" else {}  # a story per blank-line-separated block
        try:
            loaded = datasets.load_dataset(builder, data_files=str(p), split="train",
                                           cache_dir=str(cache_dir() / "datasets"), **options)
        except Exception as exc:  # a malformed JSON line or parquet file: one line, naming the file
            root = exc.__cause__ or exc  # datasets wraps the parser's error in its own
            reason = f"{type(root).__name__}: {str(root).strip()}".splitlines()[0]
            raise ValueError(f"data file {str(p)!r} could not be read as {builder}: {reason}") from exc
        kind = "local file"
    train, validation = _splits(loaded, p)
    fingerprint = _digest(f"{_content_digest(p)}:{len(train)}:{len(validation)}")
    return Source(train, validation, str(p), f"{kind} {p.name} ({len(train) + len(validation):,} documents)",
                  fingerprint)


def _splits(loaded, p: Path):
    """(train, validation) from a Dataset or DatasetDict; the first VAL_FRACTION held out when needed."""
    import datasets

    if isinstance(loaded, datasets.DatasetDict):
        if "train" not in loaded:
            raise ValueError(f"data folder {str(p)!r} has splits {sorted(loaded)}: accepted one with a 'train' split")
        if "validation" in loaded:
            return _with_text(loaded["train"], p), _with_text(loaded["validation"], p)
        loaded = loaded["train"]
    ds = _with_text(loaded, p)
    if len(ds) < 2:
        raise ValueError(f"data {str(p)!r} has {len(ds)} document(s): accepted at least two "
                         f"(one is held out for validation)")
    n_val = max(1, int(len(ds) * VAL_FRACTION))
    return ds.select(range(n_val, len(ds))), ds.select(range(n_val))  # the first documents are held out


def _with_text(ds, p: Path):
    if "text" not in ds.column_names:
        raise ValueError(f"data {str(p)!r} has columns {ds.column_names}: accepted a 'text' column")
    if len(ds) == 0:
        raise ValueError(f"data {str(p)!r} is empty: accepted at least one story")
    return ds.select_columns(["text"])


def _content_digest(p: Path) -> str:
    """sha256 of a file's bytes, or of every file in a folder with its relative name."""
    h = hashlib.sha256()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _world_size(spec: str) -> int:
    """``world`` -> the bundled size; ``world:N`` -> N stories (a clear error for anything else)."""
    if spec == "world":
        return BUNDLED_STORIES
    raw = spec.split(":", 1)[1]
    if not raw.isdigit() or int(raw) < 100:
        raise ValueError(f"--data {spec!r} is invalid: accepted world, or world:N with N >= 100 stories")
    return int(raw)


def open_source(spec: str = "auto", max_docs: int | None = None, verbose: bool = True) -> Source:
    """``auto`` | ``bundled`` | ``world`` (``world:N``: N stories) | ``tinystories`` | a file or folder -> :class:`Source`."""
    say = print if verbose else (lambda *a, **k: None)
    if max_docs is not None and max_docs < 1:
        raise ValueError(f"--max-docs {max_docs} is invalid: accepted a positive number of training stories")
    if spec == "bundled":
        source = open_bundled()
    elif spec == "world" or spec.startswith("world:"):
        source = open_world(_world_size(spec))
    elif spec in ("auto", "tinystories"):
        try:
            source = open_tinystories(max_docs)
        except RuntimeError as exc:
            if spec == "tinystories":
                raise ValueError(f"--data tinystories: {exc}; use --data bundled or a file path") from exc
            say(f"  [data] {exc}; falling back to the bundled synthetic stories")
            source = open_bundled()
    else:
        source = open_local(spec)
    if max_docs is not None and len(source.train) > max_docs and source.spec != "tinystories":
        source.train = source.train.select(range(max_docs))
        source.label += f", first {max_docs:,} training documents"
        source.fingerprint = _digest(f"{source.fingerprint}:first:{max_docs}")
    say(f"  [data] corpus: {source.label}")
    return source
