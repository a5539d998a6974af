"""Sources through datasets, the offline fallback, the tokenizer, token files and deterministic batches."""

import json
import multiprocessing as mp
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from growlib.data import load_token_data
from growlib.sources import VAL_FRACTION, hub_reachable, open_local, open_source, open_tinystories
from growlib.storygen import generate_stories
from growlib.tokenfiles import prepare, token_dtype
from growlib.tokenizer import EOT, train_tokenizer


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Each test prepares into a cache of its own (tokenizers, token files, datasets' Arrow files)."""
    monkeypatch.setenv("GROWLIB_DATA_DIR", str(tmp_path / "data"))


def stories_file(path, n, seed=0):
    path.write_text("\n\n".join(generate_stories(n, seed)) + "\n", encoding="utf-8")
    return path


def test_offline_is_noticed_fast_and_auto_falls_back_by_name(capsys):
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="unreachable"):
        open_tinystories()
    assert time.perf_counter() - start < 2.0
    source = open_source("auto")
    out = capsys.readouterr().out
    assert source.spec == "bundled"
    assert "falling back to the bundled synthetic stories" in out and "synthetic" in out


def test_unreachable_hub_is_noticed_within_the_timeout(monkeypatch):
    # no offline variable: the TCP probe itself must give up quickly (no network on build machines)
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    start = time.perf_counter()
    hub_reachable(timeout=1.0)
    assert time.perf_counter() - start < 1.5


def test_tinystories_only_when_asked_gives_a_clear_error():
    with pytest.raises(ValueError, match="--data tinystories: .*unreachable.*--data bundled"):
        open_source("tinystories", verbose=False)


def test_bundled_stories_are_deterministic_varied_and_labelled():
    assert generate_stories(50, seed=1) == generate_stories(50, seed=1)
    stories = generate_stories(2000, seed=0)
    assert len(set(stories)) == 2000
    assert all(s.count(".") >= 5 for s in stories)
    source = open_source("bundled", verbose=False)
    assert "synthetic" in source.label
    assert source.documents(3, "validation") == generate_stories(20000, 0)[:3]  # the first 5% held out


def test_text_jsonl_and_parquet_files_hold_the_same_documents(tmp_path):
    import datasets

    docs = [f"Story {i}: a cat sat on mat number {i}." for i in range(40)]
    txt = tmp_path / "s.txt"
    txt.write_text("\n\n".join(docs) + "\n\n\n")
    jl = tmp_path / "s.jsonl"
    jl.write_text("\n".join(json.dumps({"text": d}) for d in docs) + "\n")
    pq = tmp_path / "s.parquet"
    datasets.Dataset.from_dict({"text": docs, "id": list(range(40))}).to_parquet(str(pq))
    n_val = max(1, int(40 * VAL_FRACTION))
    for path in (txt, jl, pq):
        source = open_local(path)
        assert source.documents(100, "validation") == docs[:n_val], path.suffix
        assert source.documents(100, "train") == docs[n_val:], path.suffix
        assert source.train.column_names == ["text"]


def test_save_to_disk_folders_with_and_without_a_validation_split(tmp_path):
    import datasets

    train = [f"Train story {i}." for i in range(30)]
    val = [f"Held-out story {i}." for i in range(5)]
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": train}),
                          "validation": datasets.Dataset.from_dict({"text": val})}).save_to_disk(tmp_path / "dict")
    source = open_local(tmp_path / "dict")
    assert source.documents(100, "train") == train and source.documents(100, "validation") == val
    datasets.Dataset.from_dict({"text": train}).save_to_disk(tmp_path / "one")
    source = open_local(tmp_path / "one")
    assert source.documents(100, "validation") == train[:1] and source.documents(100, "train") == train[1:]


def test_max_docs_keeps_the_first_training_documents(tmp_path):
    path = stories_file(tmp_path / "s.txt", 200)
    whole, first = open_local(path), open_source(str(path), max_docs=50, verbose=False)
    assert len(first.train) == 50 and first.documents(50) == whole.documents(50)
    assert first.fingerprint != whole.fingerprint  # other token files


@pytest.mark.parametrize("name, content, message", [
    ("missing.txt", None, "does not exist"), ("data.txt", b"", "is empty"), ("data.txt", b"\n\n  \n", "is empty"),
    ("data.txt", b"\x00\x01\x02binary", "looks binary"), ("data.txt", b"\xff\xfe\xfa text", "not UTF-8"),
    ("data.csv", b"text\nA cat.\n", "unknown extension '.csv'"),
    ("data.jsonl", b'{"text": "A cat."}\n{"text": \n', "could not be read as json"),
    ("data.jsonl", b'{"story": "A cat."}\n{"story": "A dog."}\n', "accepted a 'text' column"),
])
def test_bad_sources_fail_with_one_line_naming_them(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as err:
        open_source(str(path), verbose=False)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_folder_not_written_by_save_to_disk_is_refused(tmp_path):
    (tmp_path / "notes").mkdir()
    with pytest.raises(ValueError, match="not written by save_to_disk"):
        open_source(str(tmp_path / "notes"), verbose=False)


def test_token_files_hold_every_document_then_the_end_of_text_token(tmp_path):
    path = stories_file(tmp_path / "s.txt", 300)
    source = open_local(path)
    tok = train_tokenizer(source, 300)
    files, stats = prepare(source, tok, verbose=False)
    eot = tok.token_to_id(EOT)
    for split in ("train", "validation"):
        expected = np.concatenate([np.asarray(e.ids + [eot]) for e in tok.encode_batch(source.documents(10**6, split))])
        assert np.array_equal(files.open(split), expected), split
    m = files.manifest
    assert m["dtype"] == "uint16" and m["tokens"] == stats.tokens == files.tokens("train") + files.tokens("validation")
    assert m["source_fingerprint"] == source.fingerprint and m["documents"] == 300 and not stats.reused
    again, stats2 = prepare(open_local(path), train_tokenizer(open_local(path), 300), verbose=False)
    assert stats2.reused and again.folder == files.folder  # the second run reads what the first wrote
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32 and token_dtype(50257) == np.uint16


def test_tokenizing_in_worker_processes_keeps_os_environ_the_same_object(tmp_path, monkeypatch):
    # datasets' map(num_proc=N) rebinds os.environ to a copy: a variable set and then removed through
    # the original object (as monkeypatch does) would stay set for the rest of the process
    import os

    monkeypatch.setenv("GROWLIB_DATA_DIR", str(tmp_path / "data"))
    original = os.environ
    source = open_local(stories_file(tmp_path / "s.txt", 300))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GROWLIB_SET_DURING_PREPARE", "1")
        files, stats = prepare(source, train_tokenizer(source, 300), workers=2, verbose=False)
    assert stats.workers == 2 and files.tokens("train") > 0
    assert os.environ is original and "GROWLIB_SET_DURING_PREPARE" not in os.environ
    child = "import os, sys; sys.exit('GROWLIB_SET_DURING_PREPARE' in os.environ)"  # the process's own environment
    assert subprocess.run([sys.executable, "-c", child]).returncode == 0


def _prepare_in_a_process(args):
    path, data_dir = args
    import os

    os.environ["GROWLIB_DATA_DIR"] = data_dir
    source = open_local(path)
    files, stats = prepare(source, train_tokenizer(source, 300), workers=1, verbose=False)
    return str(files.folder), stats.reused


def test_processes_preparing_the_same_corpus_wait_for_the_one_that_prepares(tmp_path):
    path = stories_file(tmp_path / "s.txt", 2000)
    with mp.get_context("spawn").Pool(3) as pool:
        results = pool.map(_prepare_in_a_process, [(str(path), str(tmp_path / "data"))] * 3)
    assert len({folder for folder, _ in results}) == 1
    assert sorted(reused for _, reused in results) == [False, True, True]  # tokenized once


def test_batches_are_windows_of_the_token_stream_repeated_per_step(tmp_path):
    data = load_token_data(str(stories_file(tmp_path / "s.txt", 300)), 300, seq_len=32, verbose=False)
    a = data.train_batch(4, seed=0, stream=1, step=7)
    b = data.train_batch(4, seed=0, stream=1, step=7)
    c = data.train_batch(4, seed=0, stream=1, step=8)
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])
    assert torch.equal(a[0][:, 1:], a[1][:, :-1])  # targets are inputs shifted by one
    gen = torch.Generator().manual_seed((0 * 1_000_003 + 1) * 1_000_003 + 7)  # the (seed, stream, step) keying
    starts = torch.randint(0, len(data.train) - 33, (4,), generator=gen)
    stream = torch.from_numpy(np.asarray(data.train, dtype=np.int64))
    assert torch.equal(a[0], torch.stack([stream[s:s + 32] for s in starts]))
    v1, v2 = data.val_batches(2, 4), data.val_batches(2, 4)
    assert all(torch.equal(x[0], y[0]) for x, y in zip(v1, v2))
    assert data.vocab_size <= 300


def test_too_little_text_is_a_clear_error(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("A cat.\n\nA dog.")
    with pytest.raises(ValueError, match="need at least"):
        load_token_data(str(path), 260, seq_len=64, verbose=False)


RSS_PROBE = textwrap.dedent("""
    import json, sys
    from growlib.data import load_token_data

    def rss_mb():  # anonymous memory only: pages of the memory-mapped token file are the page cache's
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("RssAnon")) / 1024

    data = load_token_data(sys.argv[1], 1024, seq_len=64, verbose=False)  # prepared already: reused
    for step in range(20):  # first calls allocate what every later batch reuses
        data.train_batch(8, seed=0, stream=1, step=step)
    before = rss_mb()
    for step in range(200):
        data.train_batch(8, seed=0, stream=1, step=step)
    data.val_batches(8, 8)
    print(json.dumps({"rss_mb": rss_mb(), "growth_mb": rss_mb() - before, "tokens": len(data.train)}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_memory_for_data_is_flat_in_corpus_size(tmp_path):
    small = stories_file(tmp_path / "small.txt", 1000)
    large = tmp_path / "large.txt"
    large.write_text(small.read_text() * 10)  # 10x the text (and 10x the tokens)
    for path in (small, large):
        load_token_data(str(path), 1024, seq_len=64, verbose=False)  # prepare both first
    probe = tmp_path / "probe.py"
    probe.write_text(RSS_PROBE)
    runs = [json.loads(subprocess.run([sys.executable, str(probe), str(p)], capture_output=True, text=True,
                                      check=True).stdout) for p in (small, large)]
    assert runs[1]["tokens"] > 9 * runs[0]["tokens"]
    # the tokens stay on disk: 10x the corpus adds (almost) nothing to the process's own memory
    # (holding them as int64 tensors, as a list-of-documents loader does, would add ~10 MB here)
    assert runs[1]["rss_mb"] - runs[0]["rss_mb"] < 3, runs
    assert runs[1]["growth_mb"] < 3, runs


def test_a_notebook_session_names_its_corpus_once(tmp_path, monkeypatch, capsys):
    """The data layer's "[data] corpus:" line is the only one (notebook 01 used to show three)."""
    from growlib.harness import notebook

    monkeypatch.setattr(notebook, "RUNS_DIR", tmp_path / "runs")
    monkeypatch.setenv(notebook.STEPS_VAR, "2")
    notebook.notebook_session(preset="tiny", data=str(stories_file(tmp_path / "s.txt", 300)))
    out = capsys.readouterr().out
    assert [line.strip() for line in out.splitlines() if "corpus:" in line] == [
        "[data] corpus: local file s.txt (300 documents)"]
