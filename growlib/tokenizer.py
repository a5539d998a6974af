"""Text to integers: GPT-Neo's tokenizer for TinyStories at the recipe's vocabulary, else a byte-level BPE.

Taught in notebook 01. The BPE is trained on the source's text, validation
split included (it only learns which character sequences are frequent; the
model never sees that text in training), at most its first ``TRAIN_CHARS``
characters: all of the bundled corpus and of the TinyStories sample. It is
cached under ``data/cache`` by the source's fingerprint and the vocabulary size.
"""

from __future__ import annotations

import hashlib
from typing import Iterator

from .cache import cache_dir, exclusive, written_in_place
from .sources import Source

EOT = "<|endoftext|>"  # appended after every document: the model learns where a story ends
TRAIN_CHARS = 64_000_000  # characters of training text the BPE is trained on, at most
GPT_NEO = "EleutherAI/gpt-neo-125M"
GPT_NEO_VOCAB = 50257


def _documents(source: Source) -> Iterator[list[str]]:
    """Validation then training documents, in batches, until ``TRAIN_CHARS`` characters have been read."""
    left = TRAIN_CHARS
    for split in ("validation", "train"):
        for batch in source.texts(split, max_chars=left):
            docs = [t.strip() for t in batch if t and t.strip()]
            left -= sum(map(len, docs))
            yield docs
        if left <= 0:
            return


def train_tokenizer(source: Source, vocab_size: int):
    """A byte-level BPE of at most ``vocab_size`` tokens, trained on the source's text (cached)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    path = cache_dir() / f"bpe-{vocab_size}-{source.fingerprint[:16]}.json"
    with exclusive(path.with_name(path.name + ".lock")):  # one process trains, the others wait and read it
        if path.exists():
            return Tokenizer.from_file(str(path))
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
        tok.train_from_iterator(_documents(source), trainer=trainer)
        path.parent.mkdir(parents=True, exist_ok=True)
        with written_in_place(path) as tmp:
            tok.save(str(tmp))
        return tok


def load_tokenizer(source: Source, vocab_size: int, verbose: bool = True):
    """GPT-Neo's tokenizer (50,257 tokens) from the hub for TinyStories when it fits, else a trained BPE."""
    say = print if verbose else (lambda *a, **k: None)
    if source.spec == "tinystories" and vocab_size >= GPT_NEO_VOCAB:
        try:
            from tokenizers import Tokenizer
            tok = Tokenizer.from_pretrained(GPT_NEO)
            say(f"  [data] tokenizer: GPT-Neo ({GPT_NEO}), {GPT_NEO_VOCAB:,} tokens")
            return tok
        except Exception as exc:  # offline or missing: train our own instead
            say(f"  [data] GPT-Neo tokenizer unavailable ({type(exc).__name__}); training a byte-level BPE")
    tok = train_tokenizer(source, vocab_size)
    say(f"  [data] tokenizer: byte-level BPE trained on the corpus, {tok.get_vocab_size():,} tokens")
    return tok


def tokenizer_fingerprint(tok) -> str:
    """Changes when the tokenizer would give other ids: names the token files made with it."""
    return hashlib.sha256(tok.to_str().encode("utf-8")).hexdigest()
