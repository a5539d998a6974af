"""``python -m growlib prepare``: tokenize a corpus once, ahead of the runs that will read it."""

from __future__ import annotations

import json
from pathlib import Path

from ..config import get_preset
from ..data import open_corpus
from ..sources import open_source


def prepare_command(preset: str, data: str, max_docs: int | None = None, workers: int | None = None,
                    json_path: str | None = None) -> dict:
    """Open ``data``, get the preset's tokenizer, write (or find) its token files; report what it cost."""
    p = get_preset(preset)  # a bad preset or source fails before any tokenizing
    if json_path is not None and not Path(json_path).parent.is_dir():
        raise ValueError(f"--json {json_path!r}: its folder does not exist")
    _, files, stats = open_corpus(open_source(data, max_docs=max_docs), p.model.vocab_size, workers)
    report = {"preset": p.name, "data": data, "folder": str(files.folder), "dtype": files.manifest["dtype"],
              "train_tokens": files.tokens("train"), "validation_tokens": files.tokens("validation"),
              **stats.to_json()}
    if stats.reused:
        print("  [data] already prepared: nothing tokenized (delete the folder to prepare it again)")
    else:
        print(f"  [data] peak resident memory {stats.peak_rss_gb:.2f} GB")
    if json_path is not None:
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n")
    return report
