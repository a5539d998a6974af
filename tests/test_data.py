"""Corpora, the offline fallback, the tokenizer and deterministic batches."""

import time

import pytest
import torch

from growlib.data import TokenData, bundled_corpus, hub_reachable, load_corpus, load_text_file, train_tokenizer
from growlib.storygen import generate_stories


def test_offline_fallback_is_fast_and_named(capsys):
    start = time.perf_counter()
    corpus = load_corpus("auto")
    elapsed = time.perf_counter() - start
    out = capsys.readouterr().out
    assert corpus.source == "bundled"
    assert "falling back to the bundled synthetic stories" in out and "synthetic" in out
    assert elapsed < 2.0, f"offline fallback took {elapsed:.2f}s"


def test_unreachable_hub_is_noticed_within_the_timeout(monkeypatch):
    # no offline variable: the TCP probe itself must give up quickly (no network on build machines)
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    start = time.perf_counter()
    hub_reachable(timeout=1.0)
    assert time.perf_counter() - start < 1.5


def test_tinystories_only_when_asked_gives_a_clear_error():
    with pytest.raises(ValueError, match="--data tinystories: .*unreachable.*--data bundled"):
        load_corpus("tinystories", verbose=False)


def test_bundled_stories_are_deterministic_varied_and_labelled():
    assert generate_stories(50, seed=1) == generate_stories(50, seed=1)
    stories = generate_stories(2000, seed=0)
    assert len(set(stories)) == 2000
    assert all(s.count(".") >= 5 for s in stories)
    assert "synthetic" in bundled_corpus(100).label


def test_text_and_jsonl_files(tmp_path):
    txt = tmp_path / "s.txt"
    txt.write_text("One day a cat sat.\n\nThe end of a story.\n\n\n")
    assert load_text_file(txt).docs == ["One day a cat sat.", "The end of a story."]
    jl = tmp_path / "s.jsonl"
    jl.write_text('{"text": "A dog ran."}\n\n{"text": "A bird sang."}\n')
    assert load_text_file(jl).docs == ["A dog ran.", "A bird sang."]


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"), (b"", "is empty"), (b"\n\n  \n", "is empty"),
    (b"\x00\x01\x02binary", "looks binary"), (b"\xff\xfe\xfa text", "not UTF-8"),
])
def test_bad_data_files(tmp_path, content, message):
    path = tmp_path / "data.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_text_file(path)


def test_batches_repeat_per_step_and_validation_is_fixed():
    corpus = bundled_corpus(300)
    data = TokenData(corpus, train_tokenizer(corpus, 300), seq_len=32)
    a = data.train_batch(4, seed=0, stream=1, step=7)
    b = data.train_batch(4, seed=0, stream=1, step=7)
    c = data.train_batch(4, seed=0, stream=1, step=8)
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])
    assert torch.equal(a[0][:, 1:], a[1][:, :-1])  # targets are inputs shifted by one
    v1, v2 = data.val_batches(2, 4), data.val_batches(2, 4)
    assert all(torch.equal(x[0], y[0]) for x, y in zip(v1, v2))
    assert data.vocab_size <= 300


def test_too_little_text_is_a_clear_error(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("A cat.\n\nA dog.")
    corpus = load_text_file(path)
    with pytest.raises(ValueError, match="need at least"):
        TokenData(corpus, train_tokenizer(corpus, 260), seq_len=64)
